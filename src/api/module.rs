//! `Module` named `ambassador` (getambassador.io v3alpha1 and v2): global settings.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AddHeader, CircuitBreakerSpec, CorsSpec, Extra, KeepaliveSpec, LoadBalancerSpec, OneOrMany,
    RetryPolicySpec,
};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ModuleSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,
    pub config: Option<ModuleConfig>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The keys of `spec.config` legate honours, plus the inert ones (docs/design.md#module) so
/// they can be reported as having no effect.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ModuleConfig {
    pub use_remote_address: Option<bool>,
    pub server_name: Option<String>,
    pub diagnostics: Option<BuiltinRouteSpec>,
    pub liveness_probe: Option<BuiltinRouteSpec>,
    pub readiness_probe: Option<BuiltinRouteSpec>,
    pub cluster_request_timeout_ms: Option<u64>,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    pub listener_idle_timeout_ms: Option<u64>,
    pub max_request_headers_kb: Option<u32>,
    pub merge_slashes: Option<bool>,
    pub strip_matching_host_port: Option<bool>,
    pub reject_requests_with_escaped_slashes: Option<bool>,
    pub suppress_envoy_headers: Option<bool>,
    pub add_linkerd_headers: Option<bool>,
    pub buffer_limit_bytes: Option<u32>,
    pub regex_max_size: Option<u32>,
    pub enable_http10: Option<bool>,
    pub preserve_external_request_id: Option<bool>,
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    pub retry_policy: Option<RetryPolicySpec>,
    pub cors: Option<CorsSpec>,
    pub load_balancer: Option<LoadBalancerSpec>,
    pub keepalive: Option<KeepaliveSpec>,
    pub resolver: Option<String>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub use_ambassador_namespace_for_service_resolution: Option<bool>,
    pub envoy_log_type: Option<String>,
    pub envoy_log_format: Option<serde_json::Value>,
    pub envoy_log_path: Option<String>,
    pub defaults: Option<ModuleDefaults>,
    pub admin_port: Option<u16>,
    /// RateLimitService: the default domain of `labels` and the default labels per domain
    /// (`{<domain>: {defaults: [<label specifier>, ...]}}`).
    pub default_label_domain: Option<String>,
    pub default_labels: Option<serde_json::Value>,

    // Checked by the translation, which names the exact key and entry at fault.
    pub ip_allow: Option<serde_json::Value>,
    pub ip_deny: Option<serde_json::Value>,
    pub allow_chunked_length: Option<serde_json::Value>,
    pub headers_with_underscores_action: Option<serde_json::Value>,
    pub forward_client_cert_details: Option<serde_json::Value>,
    pub set_current_client_cert_details: Option<serde_json::Value>,
    pub proper_case: Option<serde_json::Value>,
    pub header_case_overrides: Option<serde_json::Value>,

    // Inert in Emissary too (docs/design.md#accepted-but-inert).
    pub xff_num_trusted_hops: Option<serde_json::Value>,
    pub use_proxy_proto: Option<serde_json::Value>,
    pub x_forwarded_proto_redirect: Option<serde_json::Value>,
    pub service_port: Option<serde_json::Value>,
    pub auth_enabled: Option<serde_json::Value>,
    pub debug_mode: Option<serde_json::Value>,
    pub prune_unreachable_routes: Option<serde_json::Value>,
    pub regex_type: Option<serde_json::Value>,
    pub error_response_overrides: Option<serde_json::Value>,

    #[serde(flatten)]
    pub extra: Extra,
}

/// `liveness_probe`, `readiness_probe` and `diagnostics`: whether the built-in route exists and
/// where it goes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct BuiltinRouteSpec {
    pub enabled: Option<bool>,
    /// The route's prefix (default: the built-in path).
    pub prefix: Option<String>,
    /// What the prefix is rewritten to (default: the built-in path, whatever the prefix).
    pub rewrite: Option<String>,
    /// The upstream, parsed like a Mapping's `service` (default: legate's probe server).
    pub service: Option<String>,
    /// `diagnostics` only, in Emissary: whether its diagnostics server answers non-local clients.
    pub allow_non_local: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `defaults`: `defaults.<key>` or `defaults.httpmapping.<key>`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ModuleDefaults {
    #[serde(flatten)]
    pub top: MappingDefaults,
    pub httpmapping: Option<MappingDefaults>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct MappingDefaults {
    pub add_request_headers: Option<BTreeMap<String, AddHeader>>,
    pub add_response_headers: Option<BTreeMap<String, AddHeader>>,
    pub remove_request_headers: Option<OneOrMany>,
    pub remove_response_headers: Option<OneOrMany>,
    pub tls_secret_namespacing: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}
