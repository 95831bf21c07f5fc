//! The one builder of upstream clusters (docs/design.md#service-parsing-and-endpoints,
//! docs/design.md#policies-and-cluster-settings, docs/design.md#cluster-naming-and-sharing):
//! a `service` string and the cluster fields of the resource that names it become an IR
//! [`Cluster`]. Mappings and TCPMappings use it; so can any other resource that sends traffic
//! to a `service` (its [`Request::marker`] keeps its clusters apart by name).
//!
//! The steps, in the order their errors are found: the service and its resolver
//! ([`Destination::parse`]), then TLS origination, circuit breakers, the DNS family, the resolution
//! (EDS or DNS, `endpoint_routing`), and — for HTTP upstreams only — the DNS type, the load
//! balancer, timeouts and keepalive from the resource or the Module. Names follow Emissary's
//! rule; settings that would conflict under one name are separated later, by the group phase
//! (`group::name_clusters`).
//!
//! A resource with a `service` (say an AuthService, whose cluster Emissary names
//! `cluster_extauth_<service>_<namespace>`) gets its cluster with:
//!
//! ```ignore
//! let req = upstream::Request {
//!     marker: Some("extauth"),
//!     tls: spec.tls.as_ref(),
//!     http: Some(upstream::Http { http2: grpc, ..Default::default() }),
//!     ..upstream::Request::new(&meta, service) // namespace and warnings: `meta`
//! };
//! let cluster = upstream::cluster(&req, cx, errs)?.cluster; // Err: (field, message)
//! ```

use serde_json::Value;

use crate::api::common::{CircuitBreakerSpec, KeepaliveSpec, LoadBalancerSpec};
use crate::ir::{Cluster, Discovery, Endpoint, HashPolicy, LbPolicy, UpstreamTls};

use super::endpoint::{Index, Resolution, Resolver};
use super::load::Meta;
use super::module::{Settings, timeout_set};
use super::service::{Service, sanitize, sanitize_owned};
use super::tls::Store;
use super::{Errors, Options, policy};

/// A failure: the field (`spec.…`) and what is wrong with it.
pub(crate) type Fail = (String, String);

pub(crate) fn fail(field: &str, msg: impl Into<String>) -> Fail {
    (format!("spec.{field}"), msg.into())
}

/// What building an upstream reads besides the resource itself.
pub(crate) struct Context<'c, 'a> {
    pub settings: &'c Settings,
    pub store: &'c Store,
    pub options: &'c Options,
    /// Services and EndpointSlices; records the EDS endpoints resolved.
    pub index: &'c mut Index<'a>,
}

/// The fields of a resource that shape its upstream cluster. Fields a resource does not have
/// stay `None` (see [`Request::new`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'r> {
    /// The resource: its namespace qualifies the service and names the cluster; warnings
    /// are reported on it.
    pub meta: &'r Meta,
    /// `service`: `[scheme://]host[:port]`.
    pub service: &'r str,
    /// A word after `cluster` in the cluster's name, e.g. `shadow` for a shadow Mapping
    /// (Emissary names an AuthService's cluster `cluster_extauth_<service>_<namespace>`).
    pub marker: Option<&'r str>,
    pub cluster_tag: Option<&'r str>,
    pub resolver: Option<&'r str>,
    /// `tls`: `true`, `false`, or the name of a TLSContext to originate with.
    pub tls: Option<&'r Value>,
    /// The resource's own circuit breakers; `None` takes the Module's.
    pub circuit_breakers: Option<&'r [CircuitBreakerSpec]>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub stats_name: Option<&'r str>,
    /// An HTTP upstream ([`Http`]) or a raw TCP one (`None`: TCPMapping).
    pub http: Option<Http<'r>>,
}

impl<'r> Request<'r> {
    /// A TCP upstream for `service`, every other field unset.
    pub fn new(meta: &'r Meta, service: &'r str) -> Self {
        Request {
            meta,
            service,
            marker: None,
            cluster_tag: None,
            resolver: None,
            tls: None,
            circuit_breakers: None,
            enable_ipv4: None,
            enable_ipv6: None,
            stats_name: None,
            http: None,
        }
    }
}

/// A [`Request`] for `service` with the upstream fields that Mapping and TCPMapping specs
/// share, by name: `cluster_tag`, `resolver`, `tls`, `circuit_breakers`, `enable_ipv4`,
/// `enable_ipv6`, `stats_name` (a TCP upstream; set `marker` and `http` over it).
macro_rules! request {
    ($meta:expr, $service:expr, $spec:expr) => {
        $crate::translate::upstream::Request {
            cluster_tag: $spec.cluster_tag.as_deref(),
            resolver: $spec.resolver.as_deref(),
            tls: $spec.tls.as_ref(),
            circuit_breakers: $spec.circuit_breakers.as_deref(),
            enable_ipv4: $spec.enable_ipv4,
            enable_ipv6: $spec.enable_ipv6,
            stats_name: $spec.stats_name.as_deref(),
            ..$crate::translate::upstream::Request::new($meta, $service)
        }
    };
}
pub(crate) use request;

/// The settings only an HTTP upstream has. Unset fields take the Module's value.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Http<'r> {
    /// HTTP/2 to the upstream (a Mapping's `grpc`).
    pub http2: bool,
    /// `strict_dns` (default) or `logical_dns`.
    pub dns_type: Option<&'r str>,
    pub load_balancer: Option<&'r LoadBalancerSpec>,
    pub connect_timeout_ms: Option<u64>,
    pub respect_dns_ttl: Option<bool>,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    pub keepalive: Option<&'r KeepaliveSpec>,
    /// `host_rewrite`: part of the name of a TLS cluster (Emissary's `hr-<host>`).
    pub host_rewrite: Option<&'r str>,
}

/// An upstream: its cluster, the route's hash key, and `host:port` (for Linkerd).
#[derive(Debug)]
pub(crate) struct Upstream {
    pub cluster: Cluster,
    pub hash_policy: Option<HashPolicy>,
    pub authority: String,
}

/// The parsed `service` and its resolver: the first step of [`cluster`], apart so that a
/// caller may check its own fields between the two steps (a TCPMapping does).
#[derive(Debug)]
pub(crate) struct Destination {
    svc: Service,
    resolver: Option<Resolver>,
}

impl Destination {
    /// Parses the service (an HTTP upstream warns about an ignored path suffix) and the
    /// resolver (unset: the Module's).
    pub fn parse(req: &Request<'_>, settings: &Settings, errs: &mut Errors) -> Result<Self, Fail> {
        let svc = Service::parse(req.service).map_err(|e| fail("service", e))?;
        if req.http.is_some()
            && let Some(suffix) = &svc.ignored_suffix
        {
            errs.push(
                req.meta
                    .warning("spec.service", format!("{suffix:?} is ignored")),
            );
        }
        let resolver = match req.resolver {
            Some(r) => Some(Resolver::parse(r).map_err(|e| fail("resolver", e))?),
            None => settings.resolver,
        };
        Ok(Destination { svc, resolver })
    }
}

/// Builds the upstream cluster of `req`: [`Destination::parse`], then [`build`]. Warnings go to
/// `errs`; a failure names the field (`spec.…`) and leaves the resource without a cluster.
pub(crate) fn cluster(
    req: &Request<'_>,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
) -> Result<Upstream, Fail> {
    let destination = Destination::parse(req, cx.settings, errs)?;
    build(destination, req, cx, errs)
}

/// The cluster of a parsed destination (see [`cluster`]).
pub(crate) fn build(
    destination: Destination,
    req: &Request<'_>,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
) -> Result<Upstream, Fail> {
    let (settings, options) = (cx.settings, cx.options);
    let Destination { mut svc, resolver } = destination;
    let meta = req.meta;
    if meta.namespace != options.ambassador_namespace
        && !settings.use_ambassador_namespace_for_service_resolution
    {
        svc.qualify(&meta.namespace);
    }
    let (tls, ctx_name) = origination(req, &svc, cx.store)?;
    let port = svc.port_or_default(tls.is_some());
    let circuit_breakers = match req.circuit_breakers {
        Some(cb) => policy::circuit_breakers(cb)
            .map_err(|(f, e)| fail(&format!("circuit_breakers{f}"), e))?,
        None => settings.circuit_breakers.clone(),
    };
    let dns_family = policy::dns_family(
        req.enable_ipv4.unwrap_or(settings.enable_ipv4),
        req.enable_ipv6.unwrap_or(settings.enable_ipv6),
    )
    .map_err(|(f, e)| fail(&f, e))?;
    let logical = match req.http {
        Some(h) => logical_dns(h.dns_type)?,
        None => false,
    };
    let (resolution, warning) = cx.index.resolve(
        resolver,
        &svc.host,
        port,
        dns_family,
        &options.ambassador_namespace,
    );
    if let Some(w) = warning {
        errs.push(meta.warning("spec.service", w));
    }
    let eds = matches!(resolution, Resolution::Eds(_));
    let balancer = match req.http {
        Some(h) => balancer(h.load_balancer, eds, meta, settings, errs)?,
        None => None,
    };
    let discovery = match resolution {
        Resolution::Eds(service_name) => {
            if logical {
                errs.push(meta.warning(
                    "spec.dns_type",
                    "ignored: the endpoint resolver does not use DNS",
                ));
            }
            Discovery::Eds { service_name }
        }
        Resolution::Dns => {
            let ep = vec![Endpoint::new(svc.host.clone(), port)];
            if logical {
                Discovery::LogicalDns(ep)
            } else {
                Discovery::StrictDns(ep)
            }
        }
    };

    // The parts joined with `_` in one buffer (this runs for every Mapping), as
    // `cluster_name` joins them.
    let mut joined = String::with_capacity(64);
    joined.push_str("cluster");
    let mut part = |p: &str| {
        joined.push('_');
        joined.push_str(p);
    };
    for p in [req.marker, req.cluster_tag].into_iter().flatten() {
        part(p);
    }
    part(&svc.display());
    if tls.is_some() {
        part("otls");
        if let Some(ctx) = &ctx_name {
            part(ctx);
        }
        if let Some(h) = req.http.and_then(|h| h.host_rewrite) {
            part(&format!("hr-{h}"));
        }
    }
    part(&meta.namespace);
    for cb in &circuit_breakers {
        part(&policy::circuit_breaker_token(cb));
    }
    if eds && let Some(b) = &balancer {
        for t in b.name_tokens() {
            part(&t);
        }
    }

    let mut name = shorten(sanitize_owned(joined));
    // The IR keeps the name for as long as it is in force: not the buffer's spare capacity.
    name.shrink_to_fit();
    let mut c = Cluster::new(name, discovery);
    c.alt_stat_name = Some(
        req.stats_name
            .map_or_else(|| sanitize_owned(svc.authority()), String::from),
    );
    c.circuit_breakers = circuit_breakers;
    c.tls = tls;
    c.dns_family = dns_family;
    if let Some(h) = req.http {
        c.lb_policy = balancer
            .as_ref()
            .map_or(LbPolicy::RoundRobin, |b| b.policy.clone());
        http_settings(&mut c, &h, settings)?;
    }
    Ok(Upstream {
        authority: format!("{}:{port}", svc.host),
        hash_policy: balancer.and_then(|b| b.hash),
        cluster: c,
    })
}

/// TLS origination: `tls: true`, a TLSContext by name, or an `https://` service. Returns the
/// settings and the context name that goes into the cluster's name.
fn origination(
    req: &Request<'_>,
    svc: &Service,
    store: &Store,
) -> Result<(Option<UpstreamTls>, Option<String>), Fail> {
    let (tls, ctx_name) = match req.tls {
        None | Some(Value::Null) | Some(Value::Bool(false)) => (None, None),
        Some(Value::Bool(true)) => (Some(UpstreamTls::plain()), None),
        Some(Value::String(name)) => {
            if req.http.is_some() && svc.https == Some(false) {
                return Err(fail("tls", "contradicts the http:// scheme of service"));
            }
            let (tls, ctx_name) = store
                .origination(name, &req.meta.namespace, svc.https)
                .map_err(|e| fail("tls", e))?;
            (Some(tls), ctx_name)
        }
        Some(_) => return Err(fail("tls", "must be a TLSContext name")),
    };
    Ok((
        tls.or_else(|| (svc.https == Some(true)).then(UpstreamTls::plain)),
        ctx_name,
    ))
}

/// `dns_type`: is the cluster `LOGICAL_DNS` (else `STRICT_DNS`)?
fn logical_dns(dns_type: Option<&str>) -> Result<bool, Fail> {
    match dns_type {
        None | Some("strict_dns") => Ok(false),
        Some("logical_dns") => Ok(true),
        Some(other) => Err(fail(
            "dns_type",
            format!("{other:?} is not strict_dns or logical_dns"),
        )),
    }
}

/// The resource's load balancer, else the Module's; a hash balancer needs EDS (an error on
/// the resource's own, a warning and round robin for the Module's).
fn balancer(
    spec: Option<&LoadBalancerSpec>,
    eds: bool,
    meta: &Meta,
    settings: &Settings,
    errs: &mut Errors,
) -> Result<Option<policy::Balancer>, Fail> {
    Ok(match spec {
        Some(lb) => {
            let b = policy::load_balancer(lb)
                .map_err(|(f, e)| fail(&format!("load_balancer.{f}"), e))?;
            if b.needs_endpoints() && !eds {
                return Err(fail("load_balancer.policy", HASH_NEEDS_EDS));
            }
            Some(b)
        }
        None => match &settings.load_balancer {
            Some(b) if b.needs_endpoints() && !eds => {
                errs.push(meta.warning(
                    "spec.service",
                    format!("the Module's load_balancer is not applied: {HASH_NEEDS_EDS}"),
                ));
                None
            }
            other => other.clone(),
        },
    })
}

/// Connection settings of an HTTP upstream, from the resource or the Module.
fn http_settings(c: &mut Cluster, h: &Http<'_>, settings: &Settings) -> Result<(), Fail> {
    // Envoy refuses a zero connect timeout, and with it the whole cluster update.
    c.connect_timeout_ms = match h.connect_timeout_ms {
        Some(0) => return Err(fail("connect_timeout_ms", "must be greater than 0")),
        other => other.unwrap_or(3000),
    };
    c.http2 = h.http2;
    c.respect_dns_ttl = h.respect_dns_ttl.unwrap_or(false);
    // 0 is unset here (the Module's value, else Envoy's default), as in Emissary.
    c.idle_timeout_ms = timeout_set(h.cluster_idle_timeout_ms).or(settings.cluster_idle_timeout_ms);
    c.max_connection_duration_ms = timeout_set(h.cluster_max_connection_lifetime_ms)
        .or(settings.cluster_max_connection_lifetime_ms);
    c.tcp_keepalive = h
        .keepalive
        .or(settings.keepalive.as_ref())
        .map(policy::keepalive);
    c.header_key_format = settings.http.header_key_format.filter(|_| !c.http2);
    Ok(())
}

const HASH_NEEDS_EDS: &str = "ring_hash and maglev need the endpoint resolver (resolver: kubernetes-endpoint, or legate's endpoint_routing setting) and a service naming a Kubernetes Service";

/// Joins the parts with `_`, sanitizes, and shortens names over 60 characters to
/// `<first 40>-<SHA-1 prefix>-0` (docs/design.md#cluster-naming-and-sharing).
pub(crate) fn cluster_name(parts: &[String]) -> String {
    shorten(sanitize(&parts.join("_")))
}

/// A sanitized name over 60 characters shortened as [`cluster_name`] does.
fn shorten(name: String) -> String {
    if name.len() <= 60 {
        return name;
    }
    let digest = sha1_smol::Sha1::from(name.as_bytes()).digest().to_string();
    format!("{}-{}-0", &name[..40], digest[..16].to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::api::Origin;
    use crate::translate::load::Version;

    fn meta(namespace: &str) -> Meta {
        Meta {
            origin: Origin::Builtin,
            kind: "AuthService",
            name: "auth".into(),
            namespace: namespace.into(),
            labels: BTreeMap::new(),
            version: Version::V3,
        }
    }

    /// Builds `req` with default settings, no TLSContext and no Service known.
    fn build_one(req: &Request<'_>) -> (Result<Upstream, Fail>, Errors) {
        let (settings, store, options) =
            (Settings::default(), Store::default(), Options::default());
        let mut index = Index::new(&[], &[], false);
        let mut cx = Context {
            settings: &settings,
            store: &store,
            options: &options,
            index: &mut index,
        };
        let mut errs = Errors::default();
        (cluster(req, &mut cx, &mut errs), errs)
    }

    #[test]
    fn a_marker_names_the_cluster_and_the_namespace_qualifies_the_service() {
        let m = meta("auth-ns");
        let tls = json!(true);
        let req = Request {
            marker: Some("extauth"),
            tls: Some(&tls),
            http: Some(Http {
                http2: true,
                ..Http::default()
            }),
            ..Request::new(&m, "auth:3000")
        };
        let (up, errs) = build_one(&req);
        let Ok(up) = up else {
            panic!("{up:?}");
        };
        assert!(errs.0.is_empty(), "{:?}", errs.0);
        assert_eq!(
            up.cluster.name,
            "cluster_extauth_auth_auth_ns_3000_otls_auth_ns"
        );
        assert_eq!(
            up.cluster.discovery,
            Discovery::StrictDns(vec![Endpoint::new("auth.auth-ns", 3000)])
        );
        assert!(up.cluster.http2);
        assert!(up.cluster.tls.is_some());
        assert_eq!(up.authority, "auth.auth-ns:3000");
    }

    #[test]
    fn only_an_http_upstream_warns_about_a_path_and_checks_the_scheme() {
        let m = meta("default");
        let tcp = Request::new(&m, "http://svc/path");
        let (up, errs) = build_one(&tcp);
        assert!(up.is_ok(), "{up:?}");
        assert!(errs.0.is_empty(), "{:?}", errs.0);

        let http = Request {
            http: Some(Http::default()),
            ..tcp
        };
        let (up, errs) = build_one(&http);
        assert!(up.is_ok(), "{up:?}");
        assert_eq!(errs.0.len(), 1, "{:?}", errs.0);
        assert_eq!(errs.0[0].field.as_deref(), Some("spec.service"));

        // A TLSContext with an `http://` service: a contradiction for HTTP; for TCP the
        // context is looked up (and here not found).
        let ctx = json!("some-context");
        let message = |req: Request<'_>| {
            build_one(&Request {
                tls: Some(&ctx),
                ..req
            })
            .0
            .err()
        };
        let http_fail = message(http);
        assert!(
            http_fail
                .as_ref()
                .is_some_and(|(f, m)| f == "spec.tls" && m.contains("contradicts")),
            "{http_fail:?}"
        );
        let tcp_fail = message(tcp);
        assert!(
            tcp_fail
                .as_ref()
                .is_some_and(|(f, m)| f == "spec.tls" && m.contains("not found")),
            "{tcp_fail:?}"
        );
    }
}
