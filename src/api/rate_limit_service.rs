//! `RateLimitService` (getambassador.io v3alpha1 and v2): Envoy's global rate limiting through
//! an external gRPC service, keyed by Mapping `labels`. Translation rules:
//! docs/design.md#ratelimitservice.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Extra, OneOrMany};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct RateLimitServiceSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,
    /// `[scheme://]host[:port]` of the rate-limit service (required).
    pub service: Option<String>,
    /// Call timeout, default 20; 0 means none.
    pub timeout_ms: Option<u64>,
    /// Default: the Module's `default_label_domain`, else `ambassador`.
    pub domain: Option<String>,
    /// A TLSContext name to originate TLS with (v2 also `true`).
    pub tls: Option<serde_json::Value>,
    /// `v3` (default). `v2` is an error: Envoy 1.40 speaks only v3.
    pub protocol_version: Option<String>,
    #[serde(alias = "v3StatsName")]
    pub stats_name: Option<String>,
    /// Refuse requests (500) when the service cannot be reached.
    pub failure_mode_deny: Option<bool>,
    #[serde(alias = "v3GRPC")]
    pub grpc: Option<RateLimitGrpc>,
    /// v2 round-trip detail; ignored.
    #[serde(rename = "v2ExplicitTLS")]
    pub v2_explicit_tls: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct RateLimitGrpc {
    /// gRPC callers get RESOURCE_EXHAUSTED instead of UNAVAILABLE when limited.
    pub use_resource_exhausted_code: Option<bool>,
    /// The name Emissary's translator reads; accepted as a synonym.
    pub rate_limited_as_resource_exhausted: Option<bool>,
}
