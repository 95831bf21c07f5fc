//! Hosts (docs/design.md#host): hostname globs, TLS resolution, the insecure action, mapping
//! selectors, the synthesized default Host, and glob compatibility for Mapping association.

use std::collections::BTreeMap;

use crate::api::Origin;
use crate::api::common::LabelSelector;
use crate::api::host::{HostSpec, InsecureAction};
use crate::ir::{DownstreamTls, StringMatch};

use super::load::{Meta, Obj, Version};
use super::tls::Store;
use super::{Errors, Options};

/// A Host that passed its checks.
#[derive(Debug, Clone)]
pub(crate) struct HostPlan {
    pub meta: Meta,
    pub hostname: String,
    /// The hostname without `:port`, for SNI.
    pub sni: String,
    pub tls: Option<HostTls>,
    pub insecure: InsecureAction,
    pub selector: Option<LabelSelector>,
}

/// Termination for a Host; Hosts sharing an SNI must share `identity`.
#[derive(Debug, Clone)]
pub(crate) struct HostTls {
    /// `namespace/name` of the TLSContext used (or the synthesized `<host>-context`).
    pub identity: String,
    pub tls: DownstreamTls,
}

/// Checks every Host (in hostname order); synthesizes `default-host` when there are none.
pub(crate) fn plan_all(
    hosts: &[Obj<HostSpec>],
    store: &Store,
    options: &Options,
    errs: &mut Errors,
) -> Vec<HostPlan> {
    let mut plans: Vec<HostPlan> = Vec::new();
    let mut by_hostname: BTreeMap<String, String> = BTreeMap::new();
    for h in hosts {
        let Some(plan) = plan(h, store, errs) else {
            continue;
        };
        if let Some(first) = by_hostname.get(&plan.hostname) {
            errs.push(h.meta.error(
                "spec.hostname",
                format!("{:?} is already served by Host {first}", plan.hostname),
            ));
            continue;
        }
        by_hostname.insert(plan.hostname.clone(), h.meta.id());
        plans.push(plan);
    }
    if hosts.is_empty() {
        errs.global(
            "no Host defined: using a cleartext default Host for \"*\" (insecure action Route)",
            true,
        );
        plans.push(HostPlan {
            meta: Meta {
                origin: Origin::Builtin,
                kind: "Host",
                name: "default-host".into(),
                namespace: options.ambassador_namespace.clone(),
                labels: BTreeMap::new(),
                version: Version::V3,
            },
            hostname: "*".into(),
            sni: "*".into(),
            tls: None,
            insecure: InsecureAction::Route,
            selector: None,
        });
    }
    plans.sort_by(|a, b| (&a.hostname, a.meta.order_key()).cmp(&(&b.hostname, b.meta.order_key())));
    plans
}

fn plan(h: &Obj<HostSpec>, store: &Store, errs: &mut Errors) -> Option<HostPlan> {
    let s = &h.spec;
    let meta = &h.meta;
    let hostname = s.hostname.clone().unwrap_or_else(|| "*".into());
    if let Err(m) = check_glob(&hostname) {
        errs.push(meta.error("spec.hostname", m));
        return None;
    }
    let sni = hostname
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(hostname.as_str(), |(h, _)| h)
        .to_string();
    let insecure = s.request_policy.as_ref().and_then(|r| r.insecure.as_ref());
    if insecure.and_then(|i| i.additional_port).is_some() {
        errs.push(meta.warning(
            "spec.requestPolicy.insecure.additionalPort",
            "has no effect (as in Emissary); bind a Listener to that port instead",
        ));
    }
    for (field, set) in [
        ("spec.acmeProvider", s.acme_provider.is_some()),
        ("spec.previewUrl", s.preview_url.is_some()),
    ] {
        if set {
            errs.push(meta.warning(field, "Edge Stack feature, ignored"));
        }
    }
    let selector = s.mapping_selector.clone().or_else(|| {
        s.selector.clone().inspect(|_| {
            errs.push(meta.warning("spec.selector", "deprecated: use mappingSelector"));
        })
    });
    if let Some(sel) = &selector {
        super::load::unknown(meta, "spec.mappingSelector", &sel.extra, errs);
    }
    let tls = match tls(h, &hostname, store, errs) {
        Ok(t) => t,
        Err((field, msg)) => {
            errs.push(meta.error(&field, msg));
            return None;
        }
    };
    Some(HostPlan {
        meta: meta.clone(),
        hostname,
        sni,
        tls,
        insecure: insecure
            .and_then(|i| i.action)
            .unwrap_or(InsecureAction::Redirect),
        selector,
    })
}

/// docs/design.md#host-tls-resolution: a context whose `hosts` do not list the Host is used, with a
/// warning; `tlsContext`/`tls` without `tlsSecret` is reported (and the Host stays cleartext).
fn tls(
    h: &Obj<HostSpec>,
    hostname: &str,
    store: &Store,
    errs: &mut Errors,
) -> Result<Option<HostTls>, (String, String)> {
    let s = &h.spec;
    let meta = &h.meta;
    let Some(secret) = &s.tls_secret else {
        if s.tls_context.is_some() || s.tls.is_some() {
            errs.push(meta.warning(
                "spec.tlsSecret",
                "tlsContext/tls have no effect without tlsSecret: the Host is cleartext only",
            ));
        }
        return Ok(None);
    };
    let key = (
        secret.namespace.clone().unwrap_or(meta.namespace.clone()),
        secret.name.clone(),
    );
    if !store.has_secret(&key.0, &key.1) {
        return Err((
            "spec.tlsSecret".into(),
            format!("Secret {}/{} not found (or not a TLS Secret)", key.0, key.1),
        ));
    }
    if !store.has_certificate(&key.0, &key.1) {
        return Err((
            "spec.tlsSecret".into(),
            format!("Secret {}/{} has no tls.key", key.0, key.1),
        ));
    }
    if s.tls_context.is_some() && s.tls.is_some() {
        return Err(("spec.tls".into(), "tlsContext and tls are exclusive".into()));
    }
    let implicit = format!("{}-context", meta.name);
    let ctx = if let Some(inline) = &s.tls {
        let ctx = store
            .check_with(meta, inline, Some(key.clone()), errs)
            .map_err(|(f, m)| (f.replacen("spec.", "spec.tls.", 1), m))?;
        return Ok(Some(HostTls {
            identity: format!("{}/{implicit}", meta.namespace),
            tls: Store::downstream(&ctx, &key),
        }));
    } else if let Some(named) = &s.tls_context {
        Some(
            store
                .context(&named.name, &meta.namespace)
                .cloned()
                .ok_or_else(|| {
                    (
                        "spec.tlsContext".into(),
                        format!("TLSContext {} not found (or invalid)", named.name),
                    )
                })?,
        )
    } else {
        store.context(&implicit, &meta.namespace).cloned()
    };
    let Some(ctx) = ctx else {
        return Ok(Some(HostTls {
            identity: format!("{}/{implicit}", meta.namespace),
            tls: DownstreamTls::new(Store::certificate_name(&key)),
        }));
    };
    if let Some(c) = &ctx.cert
        && *c != key
    {
        return Err((
            "spec.tlsContext".into(),
            format!(
                "TLSContext {} serves Secret {}/{}, not the tlsSecret {}/{}",
                ctx.meta.id(),
                c.0,
                c.1,
                key.0,
                key.1
            ),
        ));
    }
    if !ctx.hosts().is_empty() && !ctx.hosts().iter().any(|x| x == hostname || *x == meta.name) {
        errs.push(meta.warning(
            "spec.tlsContext",
            format!(
                "TLSContext {} does not list {hostname:?} in hosts; used anyway",
                ctx.meta.id()
            ),
        ));
    }
    if ctx.spec.sni.is_some() {
        errs.push(meta.warning(
            "spec.tlsContext",
            format!(
                "sni of TLSContext {} is ignored for termination",
                ctx.meta.id()
            ),
        ));
    }
    Ok(Some(HostTls {
        identity: ctx.meta.id(),
        tls: Store::downstream(&ctx, &key),
    }))
}

/// A hostname glob: DNS characters, `*` as a whole label, an optional `:port`.
pub(crate) fn check_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("is empty".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | ':');
    if !glob.chars().all(ok) {
        return Err(format!("{glob:?} is not a hostname glob"));
    }
    Ok(())
}

/// Could one hostname match both globs? (docs/design.md#glob-compatibility)
pub(crate) fn globs_compatible(a: &str, b: &str) -> bool {
    // Lower-cased copies only when needed: this runs for every Mapping on every Host.
    let (a, b) = (lowercase(a), lowercase(b));
    let (a, b) = (a.as_ref(), b.as_ref());
    if a == "*" || b == "*" {
        return true;
    }
    if a.starts_with('.') || b.starts_with('.') {
        return false;
    }
    let shape = |g: &str| -> (bool, bool) { (g.starts_with('*'), g.ends_with('*')) };
    match (shape(a), shape(b)) {
        ((true, true), _) | (_, (true, true)) => a == b,
        ((false, false), (false, false)) => a == b,
        ((true, false), (false, false)) => b.len() > a.len() - 1 && b.ends_with(&a[1..]),
        ((false, false), (true, false)) => globs_compatible(b, a),
        ((false, true), (false, false)) => {
            b.len() > a.len() - 1 && b.starts_with(&a[..a.len() - 1])
        }
        ((false, false), (false, true)) => globs_compatible(b, a),
        ((true, false), (true, false)) => a.ends_with(&b[1..]) || b.ends_with(&a[1..]),
        ((false, true), (false, true)) => {
            a.starts_with(&b[..b.len() - 1]) || b.starts_with(&a[..a.len() - 1])
        }
        // A leading-`*` glob and a trailing-`*` glob can always share a name.
        _ => true,
    }
}

fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// The `:authority` matcher of a Mapping host glob inside a vhost; `None` for `*`
/// (docs/design.md#associating-mappings-with-hosts).
pub(crate) fn authority_matcher(glob: &str) -> Option<StringMatch> {
    if glob == "*" {
        None
    } else if let Some(rest) = glob.strip_prefix('*') {
        Some(StringMatch::Suffix(rest.to_string()))
    } else if let Some(rest) = glob.strip_suffix('*') {
        Some(StringMatch::Prefix(rest.to_string()))
    } else {
        Some(StringMatch::Exact(glob.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_compatibility_follows_the_reference() {
        let yes = [
            ("*", "anything.com"),
            ("*.example.com", "foo.example.com"),
            ("*.example.com", "a.b.example.com"),
            ("*.example.com", "*.foo.example.com"),
            ("*.example.com", "foo.*"),
            ("foo.*", "foo.example.com"),
            ("a.com", "A.com"),
        ];
        let no = [
            ("*.example.com", "example.com"),
            ("*.com", "*.org"),
            ("*.example.*", "a.example.com"),
            (".example.com", "a.example.com"),
            ("a.example.com:8443", "a.example.com"),
            ("foo.*", "bar.example.com"),
        ];
        for (a, b) in yes {
            assert!(globs_compatible(a, b), "{a} ~ {b}");
            assert!(globs_compatible(b, a), "{b} ~ {a}");
        }
        for (a, b) in no {
            assert!(!globs_compatible(a, b), "{a} !~ {b}");
            assert!(!globs_compatible(b, a), "{b} !~ {a}");
        }
        assert!(globs_compatible("*.example.*", "*.example.*"));
    }

    #[test]
    fn authority_matchers() {
        assert_eq!(authority_matcher("*"), None);
        assert_eq!(
            authority_matcher("*.x.com"),
            Some(StringMatch::Suffix(".x.com".into()))
        );
        assert_eq!(
            authority_matcher("x.*"),
            Some(StringMatch::Prefix("x.".into()))
        );
        assert_eq!(
            authority_matcher("a.*.com"),
            Some(StringMatch::Exact("a.*.com".into()))
        );
    }
}
