//! Policies shared by Mappings and the Module: retries, CORS, circuit breakers, load
//! balancing, keepalive and header edits, checked and turned into IR values.

use std::collections::BTreeMap;

use crate::api::common::{
    AddHeader, CircuitBreakerSpec, CorsSpec, KeepaliveSpec, LoadBalancerSpec, OneOrMany,
    RetryPolicySpec,
};
use crate::ir::{
    CircuitBreaker, Cors, HashPolicy, HeaderValue, LbPolicy, Priority, RetryPolicy, StringMatch,
    TcpKeepalive,
};

use super::service::duration_ms;

/// A problem in one field (relative to the policy), with its message.
pub(crate) type FieldError = (String, String);

fn err(field: &str, msg: impl Into<String>) -> FieldError {
    (field.to_string(), msg.into())
}

/// Values of `retry_on` Emissary accepts.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
];

/// `retry_on` is required and checked; `per_try_timeout` accepts `500ms`-style durations and is
/// normalised (Emissary passes it verbatim and Envoy rejects everything but `0.5s`).
pub(crate) fn retry(spec: &RetryPolicySpec) -> Result<RetryPolicy, FieldError> {
    let on = spec
        .retry_on
        .as_deref()
        .ok_or_else(|| err("retry_on", "required"))?;
    let retry_on: Vec<String> = on.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(bad) = retry_on.iter().find(|r| !RETRY_ON.contains(&r.as_str())) {
        return Err(err(
            "retry_on",
            format!("{bad:?} is not one of {}", RETRY_ON.join(", ")),
        ));
    }
    let per_try_timeout_ms = match &spec.per_try_timeout {
        None => None,
        Some(d) => Some(duration_ms(d).map_err(|m| err("per_try_timeout", m))?),
    };
    Ok(RetryPolicy {
        retry_on,
        num_retries: spec.num_retries,
        per_try_timeout_ms,
        retriable_status_codes: Vec::new(),
    })
}

/// Origins are exact (no globs, as in Emissary); list fields may be comma-separated strings.
pub(crate) fn cors(spec: &CorsSpec) -> Result<Cors, FieldError> {
    let list = |v: &Option<OneOrMany>| v.as_ref().map(OneOrMany::split_commas).unwrap_or_default();
    let origins = list(&spec.origins);
    if origins.is_empty() {
        return Err(err("origins", "required: at least one origin"));
    }
    Ok(Cors {
        origins: origins.into_iter().map(StringMatch::Exact).collect(),
        methods: list(&spec.methods),
        headers: list(&spec.headers),
        exposed_headers: list(&spec.exposed_headers),
        credentials: spec.credentials.unwrap_or(false),
        max_age: spec.max_age.as_ref().map(ToString::to_string),
    })
}

pub(crate) fn circuit_breakers(
    specs: &[CircuitBreakerSpec],
) -> Result<Vec<CircuitBreaker>, FieldError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let priority = match s
                .priority
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("default") => Priority::Default,
                Some("high") => Priority::High,
                Some(other) => {
                    return Err(err(
                        &format!("[{i}].priority"),
                        format!("{other:?} is not default or high"),
                    ));
                }
            };
            Ok(CircuitBreaker {
                priority,
                max_connections: s.max_connections,
                max_pending_requests: s.max_pending_requests,
                max_requests: s.max_requests,
                max_retries: s.max_retries,
            })
        })
        .collect()
}

/// The cluster-name token of circuit breakers (`cbnc100p10`, `cbhr50`).
pub(crate) fn circuit_breaker_token(cb: &CircuitBreaker) -> String {
    let mut t = String::from("cb");
    if cb.priority == Priority::High {
        t.push('h');
    }
    for (tag, v) in [
        ("nc", cb.max_connections),
        ("p", cb.max_pending_requests),
        ("r", cb.max_requests),
        ("rt", cb.max_retries),
    ] {
        if let Some(v) = v {
            t.push_str(&format!("{tag}{v}"));
        }
    }
    t
}

/// A checked `load_balancer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Balancer {
    pub policy: LbPolicy,
    /// The route's hash key (ring hash and maglev only).
    pub hash: Option<HashPolicy>,
}

impl Balancer {
    /// Ring hash and maglev need endpoints Envoy can hash onto: the endpoint resolver.
    pub fn needs_endpoints(&self) -> bool {
        self.hash.is_some()
    }

    /// The cluster-name tokens of endpoint routing with a load balancer
    /// (docs/design.md#cluster-naming-and-sharing):
    /// `er-<policy>`, then `hdr-<h>`, `cookie-<c>` or `srcip`.
    pub fn name_tokens(&self) -> Vec<String> {
        let policy = match self.policy {
            LbPolicy::RoundRobin => "round_robin",
            LbPolicy::LeastRequest => "least_request",
            LbPolicy::RingHash => "ring_hash",
            LbPolicy::Maglev => "maglev",
            LbPolicy::Random => "random",
        };
        let mut t = vec![format!("er-{policy}")];
        match &self.hash {
            Some(HashPolicy::Header(h)) => t.push(format!("hdr-{h}")),
            Some(HashPolicy::Cookie { name, .. }) => t.push(format!("cookie-{name}")),
            Some(HashPolicy::SourceIp) => t.push("srcip".into()),
            None => {}
        }
        t
    }
}

/// `round_robin` / `least_request` alone; `ring_hash` / `maglev` with exactly one of `cookie`,
/// `header`, `source_ip: true`. Whether the resolver allows hashing is checked by the caller.
pub(crate) fn load_balancer(spec: &LoadBalancerSpec) -> Result<Balancer, FieldError> {
    let keys = usize::from(spec.cookie.is_some())
        + usize::from(spec.header.is_some())
        + usize::from(spec.source_ip.is_some());
    let policy = match spec.policy.as_str() {
        "round_robin" | "least_request" if keys > 0 => {
            return Err(err(
                "policy",
                format!("{} takes no cookie, header or source_ip", spec.policy),
            ));
        }
        "round_robin" => LbPolicy::RoundRobin,
        "least_request" => LbPolicy::LeastRequest,
        "ring_hash" | "maglev" if keys != 1 => {
            return Err(err(
                "policy",
                format!(
                    "{} needs exactly one of cookie, header, source_ip",
                    spec.policy
                ),
            ));
        }
        "ring_hash" => LbPolicy::RingHash,
        "maglev" => LbPolicy::Maglev,
        other => {
            return Err(err(
                "policy",
                format!("{other:?} is not round_robin, least_request, ring_hash or maglev"),
            ));
        }
    };
    let hash = if let Some(c) = &spec.cookie {
        let ttl_ms = match &c.ttl {
            Some(t) => Some(duration_ms(t).map_err(|m| err("cookie.ttl", m))?),
            None => None,
        };
        Some(HashPolicy::Cookie {
            name: c.name.clone(),
            path: c.path.clone(),
            ttl_ms,
        })
    } else if let Some(h) = &spec.header {
        Some(HashPolicy::Header(h.clone()))
    } else if let Some(ip) = spec.source_ip {
        if !ip {
            return Err(err("source_ip", "must be true when set"));
        }
        Some(HashPolicy::SourceIp)
    } else {
        None
    };
    Ok(Balancer { policy, hash })
}

/// `idle_time` is used as `time` when `time` is unset (Emissary ignores it).
pub(crate) fn keepalive(spec: &KeepaliveSpec) -> TcpKeepalive {
    TcpKeepalive {
        probes: spec.probes,
        time_s: spec.time.or(spec.idle_time),
        interval_s: spec.interval,
    }
}

/// Header additions: a plain value appends (Emissary's default), `{append: false}` overwrites.
pub(crate) fn add_headers(map: &BTreeMap<String, AddHeader>) -> Vec<HeaderValue> {
    map.iter()
        .map(|(name, h)| match h {
            AddHeader::Value(v) => HeaderValue {
                name: name.clone(),
                value: v.clone(),
                append: true,
            },
            AddHeader::Detailed { value, append } => HeaderValue {
                name: name.clone(),
                value: value.clone(),
                append: append.unwrap_or(true),
            },
        })
        .collect()
}

/// `"ipv4, ipv6"` → DNS family; both off is an error.
pub(crate) fn dns_family(v4: bool, v6: bool) -> Result<crate::ir::DnsFamily, FieldError> {
    use crate::ir::DnsFamily;
    match (v4, v6) {
        (true, false) => Ok(DnsFamily::V4Only),
        (true, true) => Ok(DnsFamily::Auto),
        (false, true) => Ok(DnsFamily::V6Only),
        (false, false) => Err(err(
            "enable_ipv4",
            "enable_ipv4 and enable_ipv6 are both false",
        )),
    }
}
