//! `AuthService` (getambassador.io v3alpha1 and v2): external authorization of every HTTP
//! request by an HTTP or gRPC service (Envoy's ext_authz filter). Translation rules:
//! docs/design.md#authservice.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CircuitBreakerSpec, Extra, OneOrMany};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct AuthServiceSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,
    /// `[scheme://]host[:port]` of the auth service (required); `https://` originates TLS.
    pub auth_service: Option<String>,
    /// HTTP only: prepended to the client's path in the check request.
    pub path_prefix: Option<String>,
    /// A TLSContext name to originate TLS with (v2 also `true`).
    pub tls: Option<serde_json::Value>,
    /// `http` (default) or `grpc`.
    pub proto: Option<String>,
    /// Check-call timeout, default 5000.
    pub timeout_ms: Option<u64>,
    /// HTTP only: more client headers sent to the auth service (added to a built-in list).
    pub allowed_request_headers: Option<Vec<String>>,
    /// HTTP only: more auth-response headers copied upstream and to the client.
    pub allowed_authorization_headers: Option<Vec<String>>,
    /// HTTP only: static headers added to the check request.
    pub add_auth_headers: Option<BTreeMap<String, String>>,
    /// Legacy: `include_body {max_bytes: 4096, allow_partial: true}`.
    pub allow_request_body: Option<bool>,
    pub include_body: Option<IncludeBody>,
    /// HTTP only: add `l5d-dst-override` naming the auth service. Default: the Module's.
    pub add_linkerd_headers: Option<bool>,
    /// Let requests through when the auth service cannot be reached or fails.
    pub failure_mode_allow: Option<bool>,
    /// The status answered when the auth service cannot be reached or fails (Envoy: 403).
    pub status_on_error: Option<StatusOnError>,
    /// `v3` (default). `v2` is an error: Envoy 1.40 speaks only v3.
    pub protocol_version: Option<String>,
    #[serde(alias = "v3StatsName")]
    pub stats_name: Option<String>,
    #[serde(alias = "v3CircuitBreakers")]
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    /// Applied to the auth cluster (Emissary reads them and drops them).
    pub connect_timeout_ms: Option<u64>,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    /// v2 round-trip detail; ignored.
    #[serde(rename = "v2ExplicitTLS")]
    pub v2_explicit_tls: Option<serde_json::Value>,
    /// Read and unused by Emissary too; ignored.
    pub allowed_headers: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Buffer the request body and send it with the check request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct IncludeBody {
    pub max_bytes: Option<u32>,
    pub allow_partial: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct StatusOnError {
    pub code: Option<u32>,
}
