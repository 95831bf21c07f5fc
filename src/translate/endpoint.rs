//! Endpoint resolution (docs/design.md#service-parsing-and-endpoints): whether an
//! upstream is resolved by Envoy's DNS or served by EDS from the Services and EndpointSlices in
//! the input, and the EDS endpoints themselves.
//!
//! Which resolver applies:
//! - `resolver: kubernetes-service` (Emissary's default) is DNS: a `STRICT_DNS` cluster on
//!   `name.namespace:port`.
//! - `resolver: kubernetes-endpoint` (or `endpoint`) is EDS, service name
//!   `k8s/<namespace>/<service>/<port>`. A Service missing from the input gives an EDS cluster
//!   with no endpoints (503s) and a warning: the cluster then stays the same when the Service
//!   appears. A host that cannot name a Service (an IP, `localhost`, another domain) or an
//!   `ExternalName` Service is resolved by DNS, with a warning.
//! - Without an explicit resolver (Mapping, then Module), legate's `endpoint_routing` option
//!   ([`super::Options::endpoint_routing`]) makes every upstream naming an existing Service with
//!   the port asked for use EDS; anything else stays on DNS.
//!
//! Endpoints: the Service port whose `port` is the upstream port (TCP), then in every slice
//! labelled `kubernetes.io/service-name: <service>` the port of the same name (a slice without
//! ports falls back to a numeric `targetPort`, else the Service port). Only endpoints whose
//! `ready` is not false and `terminating` is not true, first address only, from `IPv4` slices
//! (and `IPv6` ones when IPv6 is enabled), deduplicated and sorted. The EDS name depends only on
//! the Service and port, so scaling changes only the endpoints, never clusters or routes.

use std::collections::HashMap;

use serde_json::Value;

use crate::api::service::{EndpointSliceObject, ServiceObject, ServicePort};
use crate::ir::{Cluster, Discovery, DnsFamily, Endpoint, Endpoints};

use super::load::{Obj, Slice};

/// A named resolver (Mapping or Module `resolver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolver {
    /// `kubernetes-service`: Envoy resolves `name.namespace` by DNS.
    Service,
    /// `kubernetes-endpoint` / `endpoint`: EDS from EndpointSlices.
    Endpoint,
}

impl Resolver {
    pub fn parse(name: &str) -> Result<Resolver, String> {
        match name {
            "kubernetes-service" => Ok(Resolver::Service),
            "kubernetes-endpoint" | "endpoint" => Ok(Resolver::Endpoint),
            other => Err(format!(
                "{other:?}: only kubernetes-service and kubernetes-endpoint (endpoint) are supported"
            )),
        }
    }
}

/// How one upstream is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    Dns,
    /// EDS under this service name.
    Eds(String),
}

/// The outcome of [`Index::resolve`]: the resolution and, if any, a warning for the resource.
pub(crate) type Resolved = (Resolution, Option<String>);

/// One Service of the input and its slices.
#[derive(Debug)]
struct Svc<'a> {
    service: &'a ServiceObject,
    slices: Vec<&'a EndpointSliceObject>,
}

/// The Services and EndpointSlices of one input, and the EDS endpoints resolved so far.
///
/// Both maps are hash maps with std's randomly keyed hasher: only lookups matter, never the
/// order, and no choice of names makes them slow (docs/design.md#versions).
#[derive(Debug)]
pub(crate) struct Index<'a> {
    /// By (namespace, name); shared by the forks of one translation (see [`Index::fork`]).
    services: std::sync::Arc<HashMap<(&'a str, &'a str), Svc<'a>>>,
    endpoint_routing: bool,
    resolved: HashMap<String, Vec<Endpoint>>,
    /// When set, the lookups that read a Service, recorded for the translation cache
    /// (`translate::cache`): a cached plan is reused only if they still give these results.
    log: Option<Vec<Lookup>>,
}

/// One [`Index::resolve`] call that read the Services, and its result.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    explicit: Option<Resolver>,
    host: String,
    port: u16,
    family: DnsFamily,
    default_namespace: String,
    result: Resolved,
}

impl<'a> Index<'a> {
    pub fn new(
        services: &'a [Obj<ServiceObject>],
        slices: &'a [Obj<Slice<'a>>],
        endpoint_routing: bool,
    ) -> Self {
        let mut map: HashMap<(&str, &str), Svc> = HashMap::with_capacity(services.len());
        map.extend(services.iter().map(|s| {
            let key = (s.meta.namespace.as_str(), s.meta.name.as_str());
            let svc = Svc {
                service: &s.spec,
                slices: Vec::new(),
            };
            (key, svc)
        }));
        for slice in slices {
            let Some(owner) = slice.spec.service else {
                continue;
            };
            if let Some(svc) = map.get_mut(&(slice.meta.namespace.as_str(), owner)) {
                svc.slices.push(&slice.spec.slice);
            }
        }
        Index {
            services: std::sync::Arc::new(map),
            endpoint_routing,
            resolved: HashMap::new(),
            log: None,
        }
    }

    /// An index over the same Services that records its own resolutions, for planning part of
    /// the input on another thread; [`Index::absorb`] merges them back.
    pub fn fork(&self) -> Index<'a> {
        Index {
            services: self.services.clone(),
            endpoint_routing: self.endpoint_routing,
            resolved: HashMap::new(),
            log: None,
        }
    }

    /// Takes the resolutions of a fork. A name always resolves to the same endpoints (they
    /// depend only on the name's Service, port and family), so merge order does not matter.
    pub fn absorb(&mut self, fork: Index<'a>) {
        if self.resolved.is_empty() {
            self.resolved = fork.resolved;
            return;
        }
        for (name, endpoints) in fork.resolved {
            self.resolved.entry(name).or_insert(endpoints);
        }
    }

    /// Starts recording the lookups that read a Service (see [`Index::take_log`]).
    pub fn start_log(&mut self) {
        self.log = Some(Vec::new());
    }

    /// The lookups recorded since [`Index::start_log`]; recording stops.
    pub fn take_log(&mut self) -> Vec<Lookup> {
        self.log.take().unwrap_or_default()
    }

    /// Repeats recorded lookups against this index (recording their endpoints, as the first
    /// time did); false if any now gives another result.
    pub fn replay(&mut self, lookups: &[Lookup]) -> bool {
        lookups.iter().all(|l| {
            let now = self.resolve(l.explicit, &l.host, l.port, l.family, &l.default_namespace);
            now == l.result
        })
    }

    /// Resolves `host:port` (already namespace-qualified). `default_namespace` is where a
    /// bare name resolves (Emissary's namespace, as the pod's DNS search path would).
    pub fn resolve(
        &mut self,
        explicit: Option<Resolver>,
        host: &str,
        port: u16,
        family: DnsFamily,
        default_namespace: &str,
    ) -> Resolved {
        let result = self.lookup(explicit, host, port, family, default_namespace);
        if let (Some(log), Some(result)) = (self.log.as_mut(), result.as_ref().err()) {
            log.push(Lookup {
                explicit,
                host: host.to_string(),
                port,
                family,
                default_namespace: default_namespace.to_string(),
                result: result.clone(),
            });
        }
        result.unwrap_or_else(|r| r)
    }

    /// [`Index::resolve`]: `Ok` when the answer did not read the Services (it follows from
    /// the arguments and the options alone), `Err` when it did.
    fn lookup(
        &mut self,
        explicit: Option<Resolver>,
        host: &str,
        port: u16,
        family: DnsFamily,
        default_namespace: &str,
    ) -> Result<Resolved, Resolved> {
        let forced = match explicit {
            Some(Resolver::Service) => return Ok((Resolution::Dns, None)),
            Some(Resolver::Endpoint) => true,
            None if self.endpoint_routing => false,
            None => return Ok((Resolution::Dns, None)),
        };
        let dns = |why: String| (Resolution::Dns, forced.then_some(why));
        let Some((namespace, name)) = service_ref(host, default_namespace) else {
            return Ok(dns(format!(
                "{host} is not a Kubernetes Service name; resolved by DNS"
            )));
        };
        let eds_name = eds_name(namespace, name, port, family);
        let Some(svc) = self.services.get(&(namespace, name)) else {
            if !forced {
                return Err((Resolution::Dns, None));
            }
            self.resolved.entry(eds_name.clone()).or_default();
            let why = format!("Service {namespace}/{name} not found: no endpoints until it exists");
            return Err((Resolution::Eds(eds_name), Some(why)));
        };
        let spec = svc.service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Err(dns(format!(
                "Service {namespace}/{name} is an ExternalName Service; resolved by DNS"
            )));
        }
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let Some(sp) = ports
            .iter()
            .find(|p| p.port == Some(i64::from(port)) && is_tcp(p))
        else {
            let have: Vec<String> = ports
                .iter()
                .filter_map(|p| p.port.map(|n| n.to_string()))
                .collect();
            let why = format!(
                "Service {namespace}/{name} has no TCP port {port} (ports: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            );
            if !forced {
                return Err((Resolution::Dns, Some(format!("{why}; resolved by DNS"))));
            }
            self.resolved.entry(eds_name.clone()).or_default();
            return Err((
                Resolution::Eds(eds_name),
                Some(format!("{why}: no endpoints")),
            ));
        };
        let endpoints = ready_endpoints(&svc.slices, sp, family);
        self.resolved.insert(eds_name.clone(), endpoints);
        Err((Resolution::Eds(eds_name), None))
    }

    /// The endpoints of every EDS cluster in `clusters`, sorted by service name. Names
    /// resolved for Mappings that were dropped later are left out. Moves the resolved
    /// endpoints out: the index has none afterwards.
    pub fn endpoints_for(&mut self, clusters: &[Cluster]) -> Vec<Endpoints> {
        let mut names: Vec<&String> = clusters
            .iter()
            .filter_map(|c| match &c.discovery {
                Discovery::Eds { service_name } => Some(service_name),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| Endpoints {
                service_name: n.clone(),
                endpoints: self.resolved.remove(n).unwrap_or_default(),
            })
            .collect()
    }
}

/// `k8s/<namespace>/<service>/<port>`, with `/ipv6` or `/dual` when the family is not IPv4
/// only (the same Service can be asked for with different families).
fn eds_name(namespace: &str, name: &str, port: u16, family: DnsFamily) -> String {
    let suffix = match family {
        DnsFamily::V4Only => "",
        DnsFamily::V6Only => "/ipv6",
        DnsFamily::Auto => "/dual",
    };
    // Written directly: this runs for every upstream that names a Service.
    let mut out = String::with_capacity(4 + namespace.len() + 1 + name.len() + 6 + suffix.len());
    out.push_str("k8s/");
    out.push_str(namespace);
    out.push('/');
    out.push_str(name);
    out.push('/');
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut rest = port;
    loop {
        at -= 1;
        // A decimal digit: `rest % 10` is below 10.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
    out.push_str(suffix);
    out
}

/// The `(namespace, name)` a host names: `name`, `name.namespace`, or
/// `name.namespace.svc[.<cluster domain>]`. IPs, `localhost` and other domains name none.
pub(crate) fn service_ref<'h>(
    host: &'h str,
    default_namespace: &'h str,
) -> Option<(&'h str, &'h str)> {
    if host == "localhost" || host.contains(':') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    // `name`, `name.ns` or `name.ns.svc…`, read without collecting the labels.
    let mut parts = host.split('.');
    let name = parts.next()?;
    match (parts.next(), parts.next()) {
        (None, _) => Some((default_namespace, name)),
        (Some(ns), None | Some("svc")) => Some((ns, name)),
        _ => None,
    }
}

fn is_tcp(p: &ServicePort) -> bool {
    p.protocol.as_deref().is_none_or(|proto| proto == "TCP")
}

/// The port a slice's endpoints serve the Service port on, if the slice serves it.
fn slice_port(slice: &EndpointSliceObject, sp: &ServicePort) -> Option<u16> {
    let wanted = sp.name.as_deref().unwrap_or_default();
    let port = match slice.ports.as_deref() {
        Some(ports) if !ports.is_empty() => {
            ports
                .iter()
                .find(|p| {
                    p.name.as_deref().unwrap_or_default() == wanted
                        && p.protocol.as_deref().is_none_or(|proto| proto == "TCP")
                })?
                .port?
        }
        // A slice written by hand without ports: the numeric targetPort, else the port.
        _ => match &sp.target_port {
            Some(Value::Number(n)) => n.as_i64()?,
            Some(Value::String(_)) => return None,
            _ => sp.port?,
        },
    };
    u16::try_from(port).ok().filter(|p| *p > 0)
}

fn ready_endpoints(
    slices: &[&EndpointSliceObject],
    sp: &ServicePort,
    family: DnsFamily,
) -> Vec<Endpoint> {
    let (v4, v6) = match family {
        DnsFamily::V4Only => (true, false),
        DnsFamily::V6Only => (false, true),
        DnsFamily::Auto => (true, true),
    };
    let mut out = Vec::new();
    for slice in slices {
        let wanted = match slice.address_type.as_deref() {
            Some("IPv4") => v4,
            Some("IPv6") => v6,
            _ => false,
        };
        if !wanted {
            continue;
        }
        let Some(port) = slice_port(slice, sp) else {
            continue;
        };
        for ep in slice.endpoints.iter().flatten() {
            let c = ep.conditions.as_ref();
            if c.is_some_and(|c| c.ready == Some(false) || c.terminating == Some(true)) {
                continue;
            }
            if let Some(addr) = ep.addresses.first() {
                out.push(Endpoint::new(addr.clone(), port));
            }
        }
    }
    out.sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
