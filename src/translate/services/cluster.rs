//! The cluster of an AuthService or RateLimitService (docs/design.md#service-clusters): named
//! like Emissary's (`cluster_<marker>_<service>[_otls[_<context>]]_<namespace>`), found by
//! DNS, HTTP/2 for gRPC, TLS for `https://` or a named TLSContext.

use serde_json::Value;

use crate::api::common::CircuitBreakerSpec;
use crate::ir::{Cluster, Discovery, Endpoint, UpstreamTls};

use super::super::load::Meta;
use super::super::module::{Settings, timeout_set};
use super::super::service::{Service, sanitize};
use super::super::tls::Store;
use super::super::upstream::cluster_name;
use super::super::{Errors, Options, policy};

/// What building a service cluster reads besides the resource.
pub(super) struct Cx<'a> {
    pub settings: &'a Settings,
    pub store: &'a Store,
    pub options: &'a Options,
}

/// A field and what is wrong with it.
pub(super) type Fail = (String, String);

pub(super) fn fail(field: &str, msg: impl Into<String>) -> Fail {
    (format!("spec.{field}"), msg.into())
}

/// The fields a service cluster is built from.
pub(super) struct Spec<'a> {
    /// `auth_service` or `service`.
    pub field: &'static str,
    pub service: &'a str,
    pub tls: Option<&'a Value>,
    pub stats_name: Option<&'a str>,
    pub http2: bool,
    pub circuit_breakers: Option<&'a [CircuitBreakerSpec]>,
    pub connect_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connection_lifetime_ms: Option<u64>,
}

/// The cluster, and `host:port` of its endpoint.
pub(super) fn build(
    marker: &str,
    s: &Spec<'_>,
    meta: &Meta,
    cx: &Cx<'_>,
    errs: &mut Errors,
) -> Result<(Cluster, String), Fail> {
    let mut svc = Service::parse(s.service).map_err(|e| fail(s.field, e))?;
    if let Some(suffix) = &svc.ignored_suffix {
        errs.push(meta.warning(
            &format!("spec.{}", s.field),
            format!("{suffix:?} is ignored"),
        ));
    }
    // Unqualified names resolve in the resource's namespace, as for Mappings
    // (docs/design.md#service-parsing-and-endpoints).
    if meta.namespace != cx.options.ambassador_namespace
        && !cx.settings.use_ambassador_namespace_for_service_resolution
    {
        svc.qualify(&meta.namespace);
    }
    let (tls, ctx_name) = match s.tls {
        None | Some(Value::Null) | Some(Value::Bool(false)) => (None, None),
        Some(Value::Bool(true)) => (Some(UpstreamTls::plain()), None),
        Some(Value::String(name)) => {
            if svc.https == Some(false) {
                return Err(fail(
                    "tls",
                    format!("contradicts the http:// scheme of {}", s.field),
                ));
            }
            let (tls, ctx) = cx
                .store
                .origination(name, &meta.namespace, svc.https)
                .map_err(|e| fail("tls", e))?;
            (Some(tls), ctx)
        }
        Some(_) => return Err(fail("tls", "must be a TLSContext name")),
    };
    let tls = tls.or_else(|| (svc.https == Some(true)).then(UpstreamTls::plain));
    let port = svc.port_or_default(tls.is_some());
    let circuit_breakers = match s.circuit_breakers {
        Some(cb) => policy::circuit_breakers(cb)
            .map_err(|(f, e)| fail(&format!("circuit_breakers{f}"), e))?,
        None => cx.settings.circuit_breakers.clone(),
    };
    let dns_family = policy::dns_family(cx.settings.enable_ipv4, cx.settings.enable_ipv6)
        .map_err(|(f, e)| fail(&f, e))?;

    let mut parts: Vec<String> = vec!["cluster".into(), marker.into(), svc.display()];
    if tls.is_some() {
        parts.push("otls".into());
        parts.extend(ctx_name);
    }
    parts.push(meta.namespace.clone());
    parts.extend(circuit_breakers.iter().map(policy::circuit_breaker_token));
    let mut c = Cluster::new(
        cluster_name(&parts),
        Discovery::StrictDns(vec![Endpoint::new(svc.host.clone(), port)]),
    );
    c.alt_stat_name = Some(
        s.stats_name
            .map_or_else(|| sanitize(&svc.authority()), str::to_string),
    );
    c.connect_timeout_ms = match s.connect_timeout_ms {
        Some(0) => return Err(fail("connect_timeout_ms", "must be greater than 0")),
        other => other.unwrap_or(3000),
    };
    c.circuit_breakers = circuit_breakers;
    c.tls = tls;
    c.http2 = s.http2;
    c.dns_family = dns_family;
    c.idle_timeout_ms = timeout_set(s.idle_timeout_ms).or(cx.settings.cluster_idle_timeout_ms);
    c.max_connection_duration_ms = timeout_set(s.max_connection_lifetime_ms)
        .or(cx.settings.cluster_max_connection_lifetime_ms);
    c.tcp_keepalive = cx.settings.keepalive.as_ref().map(policy::keepalive);
    let host = if svc.host.contains(':') {
        format!("[{}]", svc.host)
    } else {
        svc.host.clone()
    };
    Ok((c, format!("{host}:{port}")))
}
