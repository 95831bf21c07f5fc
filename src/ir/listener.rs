//! Listeners, filter chains and what a chain does with a connection.

use serde::Serialize;

use super::WeightedCluster;

/// A socket Envoy listens on. Listener protos are kept byte-stable unless ports, chains or TLS
/// change, so route and cluster updates never drain listeners.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Listener {
    /// Unique name; also the LDS resource name.
    pub name: String,
    /// Bind address, e.g. `0.0.0.0` or `127.0.0.1`.
    pub address: String,
    pub port: u16,
    /// `stat_prefix` of the listener itself (`listener.<prefix>.downstream_cx_active`), used by
    /// the drain to count data-plane connections.
    pub stat_prefix: String,
    /// Expect a PROXY protocol header before anything else (runs before TLS inspection).
    pub proxy_protocol: bool,
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// Chains in match order: Envoy picks the most specific match, these never overlap.
    pub filter_chains: Vec<FilterChain>,
}

impl Listener {
    /// Whether any chain needs the TLS inspector (SNI or transport-protocol matching).
    pub fn needs_tls_inspector(&self) -> bool {
        self.filter_chains
            .iter()
            .any(|fc| fc.tls.is_some() || !fc.server_names.is_empty() || fc.match_tls)
    }
}

/// One filter chain of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FilterChain {
    /// Stable name, unique within the listener.
    pub name: String,
    /// SNI names this chain matches; empty matches any (or no) SNI.
    pub server_names: Vec<String>,
    /// Match only TLS connections (`transport_protocol: tls`) even without terminating them
    /// (TLS passthrough). Implied when `tls` is set.
    pub match_tls: bool,
    /// Terminate TLS with this context.
    pub tls: Option<DownstreamTls>,
    pub action: ChainAction,
}

/// What a filter chain does.
// Plain data built once per snapshot (the AuthService/RateLimitService settings made the HTTP
// variant larger): the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainAction {
    Http(HttpManager),
    Tcp(TcpProxy),
}

/// An HTTP connection manager whose routes come by RDS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HttpManager {
    pub stat_prefix: String,
    /// Name of the [`RouteTable`](super::RouteTable) served by RDS.
    pub route_table: String,
    pub use_remote_address: bool,
    pub xff_num_trusted_hops: u32,
    /// `server` response header; `None` keeps Envoy's default.
    pub server_name: Option<String>,
    pub idle_timeout_ms: Option<u64>,
    pub max_request_headers_kb: Option<u32>,
    pub http2_max_concurrent_streams: Option<u32>,
    /// RFC 3986 dot-segment removal before routing (`/a/../b` is routed as `/b`). On for
    /// every HTTP listener, as in Emissary (docs/compatibility.md); see
    /// https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto
    pub normalize_path: bool,
    pub merge_slashes: bool,
    pub strip_matching_host_port: bool,
    pub reject_escaped_slashes: bool,
    pub accept_http_10: bool,
    pub preserve_external_request_id: bool,
    pub suppress_envoy_headers: bool,
    /// Install the CORS filter (routes opt in with a policy).
    pub cors: bool,
    pub access_log: Option<AccessLog>,
    // The fields below are left out of the serialized form while unset, so IR dumps (and the
    // digests `translate` derives from them) do not change for configurations without them.
    /// Allow or deny requests by client address: an RBAC filter placed before every other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_rules: Option<IpRules>,
    /// HTTP/1: accept requests carrying both `Content-Length` and `Transfer-Encoding: chunked`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_chunked_length: bool,
    /// What to do with header names containing `_`; `None` keeps Envoy's default (allow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_with_underscores: Option<HeadersWithUnderscores>,
    /// `x-forwarded-client-cert` handling; `None` keeps Envoy's default (sanitize).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_client_cert: Option<ForwardClientCert>,
    /// Which client-certificate details go into `x-forwarded-client-cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_current_client_cert: Option<ClientCertDetails>,
    /// HTTP/1 header-name case of responses sent downstream; `None` is lower case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_key_format: Option<HeaderKeyFormat>,
    /// AuthService: the ext_authz filter (after CORS, before rate limiting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_authz: Option<super::ExtAuthz>,
    /// RateLimitService: the ratelimit filter (after ext_authz, before the router).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<super::RateLimitFilter>,
    /// LogService: gRPC access loggers, after the file `access_log`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_logs: Vec<super::GrpcAccessLog>,
    /// TracingService: the tracer and its sampling (boxed: rarely set, and large).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Box<super::Tracing>>,
}

impl HttpManager {
    /// An HCM with Envoy's defaults for everything but the route table.
    pub fn new(stat_prefix: impl Into<String>, route_table: impl Into<String>) -> Self {
        HttpManager {
            stat_prefix: stat_prefix.into(),
            route_table: route_table.into(),
            use_remote_address: true,
            xff_num_trusted_hops: 0,
            server_name: None,
            idle_timeout_ms: None,
            max_request_headers_kb: None,
            http2_max_concurrent_streams: None,
            normalize_path: true,
            merge_slashes: false,
            strip_matching_host_port: false,
            reject_escaped_slashes: false,
            accept_http_10: false,
            preserve_external_request_id: false,
            suppress_envoy_headers: false,
            cors: true,
            access_log: None,
            ip_rules: None,
            allow_chunked_length: false,
            headers_with_underscores: None,
            forward_client_cert: None,
            set_current_client_cert: None,
            header_key_format: None,
            ext_authz: None,
            rate_limit: None,
            access_logs: Vec::new(),
            tracing: None,
        }
    }
}

/// An address-based access rule: requests whose client matches any principal are allowed
/// (and all others denied), or denied (and all others allowed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IpRules {
    pub action: IpAction,
    /// Never empty.
    pub principals: Vec<IpPrincipal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpAction {
    Allow,
    Deny,
}

/// One CIDR range matched against a client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IpPrincipal {
    pub source: IpSource,
    /// An IPv4 or IPv6 address, as written.
    pub address: String,
    /// At most 32 for IPv4, 128 for IPv6.
    pub prefix_len: u32,
}

/// Which client address a principal is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpSource {
    /// The peer of the TCP connection (Envoy's `direct_remote_ip`).
    Peer,
    /// The client address after `x-forwarded-for` processing (Envoy's `remote_ip`).
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadersWithUnderscores {
    Allow,
    RejectRequest,
    DropHeader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardClientCert {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

/// The client-certificate fields added to `x-forwarded-client-cert` (the hash always is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ClientCertDetails {
    pub subject: bool,
    pub cert: bool,
    pub chain: bool,
    pub dns: bool,
    pub uri: bool,
}

/// How HTTP/1 header names are written on the wire (Envoy lower-cases them otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderKeyFormat {
    /// `content-type` → `Content-Type`: the first letter and each after a non-letter upper-cased.
    ProperCaseWords,
}

/// A file access log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AccessLog {
    pub path: String,
    /// Text format; `None` means Envoy's default format.
    pub text_format: Option<String>,
    /// JSON format: ordered (key, command) pairs.
    pub json_format: Vec<(String, String)>,
}

/// L4 proxying to one or more weighted clusters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TcpProxy {
    pub stat_prefix: String,
    /// Weights are shares (not Emissary's cumulative thresholds).
    pub clusters: Vec<WeightedCluster>,
    pub idle_timeout_ms: Option<u64>,
    /// LogService (`tcp` driver): gRPC access loggers of the proxied connections.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_logs: Vec<super::GrpcAccessLog>,
}

/// Terminating TLS on a filter chain. Certificates are referenced by SDS name, so a rotation
/// replaces the secret without touching (and draining) the listener.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DownstreamTls {
    /// SDS name of a [`SecretKind::TlsCertificate`](super::SecretKind).
    pub certificate: String,
    /// SDS name of a [`SecretKind::Validation`](super::SecretKind) to verify client certificates.
    pub validation: Option<String>,
    pub require_client_certificate: bool,
    pub alpn_protocols: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
}

impl DownstreamTls {
    pub fn new(certificate: impl Into<String>) -> Self {
        DownstreamTls {
            certificate: certificate.into(),
            validation: None,
            require_client_certificate: false,
            alpn_protocols: Vec::new(),
            min_version: None,
            max_version: None,
            cipher_suites: Vec::new(),
            ecdh_curves: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum TlsVersion {
    #[serde(rename = "v1.0")]
    V1_0,
    #[serde(rename = "v1.1")]
    V1_1,
    #[serde(rename = "v1.2")]
    V1_2,
    #[serde(rename = "v1.3")]
    V1_3,
}
