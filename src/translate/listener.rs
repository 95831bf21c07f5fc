//! Phase 3, plan Listeners: each Listener checked and turned into a [`ListenerPlan`] (its
//! port, protocol stack, security model and Host binding); Emissary's default listeners are
//! added when enabled. The assembly turns them into IR listeners.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::common::LabelSelector;
use crate::api::listener::ListenerSpec;

use super::host::HostPlan;
use super::load::{Meta, Obj, Version};
use super::{Errors, Options};

/// How a Listener treats `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    Xfp,
    Secure,
    Insecure,
}

/// A Listener that passed its checks.
#[derive(Debug, Clone)]
pub(crate) struct ListenerPlan {
    pub meta: Meta,
    /// Envoy name: `metadata.name`, or `name.namespace` when another namespace took the name.
    pub name: String,
    pub port: u16,
    pub http: bool,
    pub tls: bool,
    pub proxy: bool,
    pub security: Security,
    pub all_namespaces: bool,
    pub selector: Option<LabelSelector>,
    pub l7_depth: u32,
    pub stats_prefix: String,
    pub http2_max_concurrent_streams: Option<u32>,
}

impl ListenerPlan {
    /// Does the Listener take the Host (namespace and label selector)?
    pub fn binds(&self, h: &HostPlan) -> bool {
        (self.all_namespaces || h.meta.namespace == self.meta.namespace)
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&h.meta.labels))
    }
}

type Fail = (String, String);

pub(crate) fn plan_all(
    objs: &[Obj<ListenerSpec>],
    options: &Options,
    errs: &mut Errors,
) -> Vec<ListenerPlan> {
    let mut out: Vec<ListenerPlan> = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    let mut all: Vec<Obj<ListenerSpec>> = objs.to_vec();
    if options.default_listeners {
        all.extend(default_listeners(options));
    }
    for o in &all {
        let mut p = match plan(o, errs) {
            Ok(p) => p,
            Err((f, m)) => {
                errs.push(o.meta.error(&f, m));
                continue;
            }
        };
        if let Some(first) = ports.get(&p.port) {
            if o.meta.origin != crate::api::Origin::Builtin {
                errs.push(o.meta.error(
                    "spec.port",
                    format!("port {} is already used by Listener {first}", p.port),
                ));
            }
            continue;
        }
        if names.contains(&p.name) {
            p.name = format!("{}.{}", p.meta.name, p.meta.namespace);
        }
        names.insert(p.name.clone());
        ports.insert(p.port, p.meta.id());
        out.push(p);
    }
    out
}

/// Emissary's Helm `createDefaultListeners`: 8080/HTTP and 8443/HTTPS, XFP, from ALL.
fn default_listeners(options: &Options) -> Vec<Obj<ListenerSpec>> {
    [
        ("ambassador-http-8080", 8080, "HTTP"),
        ("ambassador-https-8443", 8443, "HTTPS"),
    ]
    .into_iter()
    .map(|(name, port, protocol)| Obj {
        meta: Meta {
            origin: crate::api::Origin::Builtin,
            kind: "Listener",
            name: name.into(),
            namespace: options.ambassador_namespace.clone(),
            labels: BTreeMap::new(),
            version: Version::V3,
        },
        spec: ListenerSpec {
            port: Some(port),
            protocol: Some(protocol.into()),
            security_model: Some("XFP".into()),
            host_binding: Some(crate::api::listener::HostBinding {
                namespace: Some(crate::api::listener::NamespaceBinding {
                    from: Some("ALL".into()),
                }),
                selector: None,
            }),
            ..ListenerSpec::default()
        },
    })
    .collect()
}

fn plan(o: &Obj<ListenerSpec>, errs: &mut Errors) -> Result<ListenerPlan, Fail> {
    let s = &o.spec;
    let f = |field: &str, m: String| (format!("spec.{field}"), m);
    let port = match s.port {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => return Err(f("port", format!("{p} is not in 1-65535"))),
        None => return Err(f("port", "required".into())),
    };
    let stack: Vec<String> = match (&s.protocol, &s.protocol_stack) {
        (Some(_), Some(stack)) => {
            errs.push(o.meta.warning(
                "spec.protocol",
                "both protocol and protocolStack set: protocolStack is used",
            ));
            stack.clone()
        }
        (None, Some(stack)) => stack.clone(),
        (Some(p), None) => match p.as_str() {
            "HTTP" => vec!["HTTP", "TCP"],
            "HTTPS" => vec!["TLS", "HTTP", "TCP"],
            "HTTPPROXY" => vec!["PROXY", "HTTP", "TCP"],
            "HTTPSPROXY" => vec!["TLS", "PROXY", "HTTP", "TCP"],
            "TCP" => vec!["TCP"],
            "TLS" => vec!["TLS", "TCP"],
            other => {
                return Err(f(
                    "protocol",
                    format!("{other:?} is not HTTP, HTTPS, HTTPPROXY, HTTPSPROXY, TCP or TLS"),
                ));
            }
        }
        .into_iter()
        .map(String::from)
        .collect(),
        (None, None) => {
            return Err(f(
                "protocol",
                "protocol or protocolStack is required".into(),
            ));
        }
    };
    if let Some(bad) = stack
        .iter()
        .find(|e| !["HTTP", "TLS", "PROXY", "TCP", "UDP"].contains(&e.as_str()))
    {
        return Err(f("protocolStack", format!("unknown element {bad:?}")));
    }
    match stack.last().map(String::as_str) {
        Some("TCP") => {}
        Some("UDP") => {
            return Err(f(
                "protocolStack",
                "UDP (HTTP/3) listeners are not supported yet".into(),
            ));
        }
        _ => return Err(f("protocolStack", "must end in TCP or UDP".into())),
    }
    let has = |e: &str| stack.iter().any(|x| x == e);
    let security = match s.security_model.as_deref() {
        Some("XFP") => Security::Xfp,
        Some("SECURE") => Security::Secure,
        Some("INSECURE") => Security::Insecure,
        Some(other) => {
            return Err(f(
                "securityModel",
                format!("{other:?} is not XFP, SECURE or INSECURE"),
            ));
        }
        None => return Err(f("securityModel", "required".into())),
    };
    let binding = s
        .host_binding
        .as_ref()
        .ok_or_else(|| f("hostBinding", "required".into()))?;
    let all_namespaces = match binding.namespace.as_ref().and_then(|n| n.from.as_deref()) {
        Some("ALL") => true,
        Some("SELF") | None => false,
        Some("SELECTOR") => {
            errs.push(o.meta.warning(
                "spec.hostBinding.namespace.from",
                "SELECTOR is not supported: acts as SELF",
            ));
            false
        }
        Some(other) => {
            return Err(f(
                "hostBinding.namespace.from",
                format!("{other:?} is not ALL or SELF"),
            ));
        }
    };
    if let Some(sel) = &binding.selector
        && sel.match_labels.is_none()
    {
        return Err(f(
            "hostBinding.selector",
            "only matchLabels is supported, and it is missing".into(),
        ));
    }
    // Envoy refuses 0 (and with it every listener), so a 0 is not passed on as "unset".
    if let Some(n) = s.http2_max_concurrent_streams
        && !(1..=2_147_483_647).contains(&n)
    {
        return Err(f(
            "http2MaxConcurrentStreams",
            format!("{n} is not in 1-2147483647"),
        ));
    }
    let http = has("HTTP");
    let tls = has("TLS");
    let stats_prefix = s.stats_prefix.clone().unwrap_or_else(|| match (http, tls) {
        (true, true) => "ingress_https".into(),
        (true, false) => "ingress_http".into(),
        (false, true) => format!("ingress_tls_{port}"),
        (false, false) => format!("ingress_tcp_{port}"),
    });
    Ok(ListenerPlan {
        meta: o.meta.clone(),
        name: o.meta.name.clone(),
        port,
        http,
        tls,
        proxy: has("PROXY"),
        security,
        all_namespaces,
        selector: binding.selector.clone(),
        l7_depth: s.l7_depth.unwrap_or(0),
        stats_prefix,
        http2_max_concurrent_streams: s.http2_max_concurrent_streams,
    })
}
