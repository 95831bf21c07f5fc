//! Upstream clusters and EDS endpoints.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Cluster {
    /// Unique name; the CDS resource name and what routes refer to.
    pub name: String,
    /// Stats name (`alt_stat_name`); `None` uses the cluster name.
    pub alt_stat_name: Option<String>,
    pub discovery: Discovery,
    pub lb_policy: LbPolicy,
    pub connect_timeout_ms: u64,
    pub circuit_breakers: Vec<CircuitBreaker>,
    /// Originate TLS to the upstream.
    pub tls: Option<UpstreamTls>,
    /// Speak HTTP/2 to the upstream (gRPC).
    pub http2: bool,
    pub dns_family: DnsFamily,
    pub respect_dns_ttl: bool,
    /// Upstream connection idle timeout.
    pub idle_timeout_ms: Option<u64>,
    pub max_connection_duration_ms: Option<u64>,
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// HTTP/1 header-name case of requests sent upstream; `None` is lower case. Ignored for
    /// HTTP/2 clusters. Left out of the serialized form while unset (see `HttpManager`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_key_format: Option<super::HeaderKeyFormat>,
}

impl Cluster {
    /// A cluster with Envoy-compatible defaults: round robin, 3 s connect timeout, IPv4 DNS.
    pub fn new(name: impl Into<String>, discovery: Discovery) -> Self {
        Cluster {
            name: name.into(),
            alt_stat_name: None,
            discovery,
            lb_policy: LbPolicy::RoundRobin,
            connect_timeout_ms: 3000,
            circuit_breakers: Vec::new(),
            tls: None,
            http2: false,
            dns_family: DnsFamily::V4Only,
            respect_dns_ttl: false,
            idle_timeout_ms: None,
            max_connection_duration_ms: None,
            tcp_keepalive: None,
            header_key_format: None,
        }
    }
}

/// How the cluster finds its hosts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// Fixed IP addresses.
    Static(Vec<Endpoint>),
    /// Hostnames resolved by Envoy, every address used.
    StrictDns(Vec<Endpoint>),
    /// Hostnames resolved by Envoy, first address used per connection.
    LogicalDns(Vec<Endpoint>),
    /// Endpoints served by EDS under this service name (an [`Endpoints`] entry).
    Eds { service_name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    /// IP address or hostname.
    pub address: String,
    pub port: u16,
    /// Load-balancing weight; `None` means equal weights.
    pub weight: Option<u32>,
}

impl Endpoint {
    pub fn new(address: impl Into<String>, port: u16) -> Self {
        Endpoint {
            address: address.into(),
            port,
            weight: None,
        }
    }
}

/// The endpoints of an EDS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoints {
    /// Matches [`Discovery::Eds::service_name`].
    pub service_name: String,
    /// Ready endpoints only (terminating endpoints are excluded by the source).
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    RingHash,
    Maglev,
    Random,
}

/// Route-level hash keys for ring hash / maglev.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashPolicy {
    Header(String),
    Cookie {
        name: String,
        path: Option<String>,
        ttl_ms: Option<u64>,
    },
    SourceIp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CircuitBreaker {
    pub priority: Priority,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Default,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsFamily {
    V4Only,
    V6Only,
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    pub time_s: Option<u32>,
    pub interval_s: Option<u32>,
}

/// Originating TLS to an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UpstreamTls {
    /// SNI to send; `None` sends none.
    pub sni: Option<String>,
    /// SDS name of a client certificate.
    pub certificate: Option<String>,
    /// SDS name of a validation context; `None` means no verification.
    pub validation: Option<String>,
    pub alpn_protocols: Vec<String>,
    pub min_version: Option<super::TlsVersion>,
    pub max_version: Option<super::TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
}

impl UpstreamTls {
    /// TLS with no client certificate and no verification (Emissary's `https://` service).
    pub fn plain() -> Self {
        UpstreamTls {
            sni: None,
            certificate: None,
            validation: None,
            alpn_protocols: Vec::new(),
            min_version: None,
            max_version: None,
            cipher_suites: Vec::new(),
            ecdh_curves: Vec::new(),
        }
    }
}
