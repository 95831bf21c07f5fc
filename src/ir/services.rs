//! External services the HTTP connection managers call: authorization (AuthService → Envoy's
//! ext_authz filter) and global rate limiting (RateLimitService → Envoy's ratelimit filter),
//! and what each route tells them (docs/design.md#authservice,
//! docs/design.md#ratelimitservice).

use std::collections::BTreeMap;

use serde::Serialize;

use super::ShortString;

/// The authorization filter of an HTTP connection manager.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtAuthz {
    /// Ask this service about every request (routes may opt out).
    Service(AuthFilter),
    /// The AuthService is misconfigured: every request is answered 500 with this message,
    /// except on routes that disable the filter (the probe routes). Fails closed.
    FailClosed { message: String },
}

/// A configured ext_authz filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AuthFilter {
    /// The auth service's cluster.
    pub cluster: String,
    pub timeout_ms: u64,
    pub protocol: AuthProtocol,
    /// Buffer the request body (up to `max_bytes`) and send it with the check.
    pub body: Option<AuthBody>,
    /// Let requests through when the service fails or cannot be reached.
    pub failure_mode_allow: bool,
    /// Status answered when the service fails (Envoy's default: 403).
    pub status_on_error: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthProtocol {
    /// Envoy's `envoy.service.auth.v3.Authorization` gRPC service; every request header is
    /// sent.
    Grpc,
    Http(HttpAuth),
}

/// The raw-HTTP check request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HttpAuth {
    /// `http://host:port` or `https://host:port`: the service, for Envoy's `server_uri`.
    pub uri: String,
    /// Prepended to the client path.
    pub path_prefix: String,
    /// Client headers sent to the service (lower case, sorted, unique).
    pub allowed_request_headers: Vec<String>,
    /// Service response headers copied upstream (on success) and to the client (on denial).
    pub allowed_authorization_headers: Vec<String>,
    /// Static headers added to the check request.
    pub headers_to_add: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AuthBody {
    pub max_bytes: u32,
    pub allow_partial: bool,
}

/// The global rate-limit filter of an HTTP connection manager.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RateLimitFilter {
    /// The rate-limit service's cluster (gRPC).
    pub cluster: String,
    pub domain: String,
    /// `0`: no timeout.
    pub timeout_ms: u64,
    /// Refuse requests when the service fails or cannot be reached.
    pub failure_mode_deny: bool,
    /// Limited gRPC calls get RESOURCE_EXHAUSTED instead of UNAVAILABLE.
    pub resource_exhausted: bool,
}

/// What a route tells the authorization filter. `Default` (ask the service, no extensions) is
/// left out of the serialized route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    #[default]
    Default,
    /// Requests on this route are not checked.
    Disabled,
    /// Sent to a gRPC auth service as `attributes.context_extensions`.
    ContextExtensions(BTreeMap<String, String>),
}

impl RouteAuth {
    pub fn is_default(&self) -> bool {
        *self == RouteAuth::Default
    }
}

/// One descriptor sent to the rate-limit service: its entries, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RateLimit {
    pub actions: Vec<RateLimitAction>,
}

/// One descriptor entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitAction {
    /// (`source_cluster`, Envoy's local cluster).
    SourceCluster,
    /// (`destination_cluster`, the routed cluster).
    DestinationCluster,
    /// (`remote_address`, the trusted client address).
    RemoteAddress,
    /// (key, value): a constant.
    GenericKey {
        key: ShortString,
        value: ShortString,
    },
    /// (key, the header's value). `skip_if_absent`: an absent header leaves this entry out
    /// instead of the whole descriptor.
    RequestHeader {
        key: ShortString,
        header: ShortString,
        skip_if_absent: bool,
    },
}
