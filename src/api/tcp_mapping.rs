//! `TCPMapping` (getambassador.io v3alpha1 and v2): L4 proxying from a port (and SNI).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CircuitBreakerSpec, Extra, OneOrMany};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct TcpMappingSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,
    /// Listening port (required).
    pub port: Option<i64>,
    /// `[https://]host[:port]` (required).
    pub service: Option<String>,
    /// SNI to match; setting it makes the chain terminate TLS.
    pub host: Option<String>,
    /// Bind address, default `0.0.0.0`.
    pub address: Option<String>,
    /// Origination TLSContext name (v2 also `true`).
    pub tls: Option<serde_json::Value>,
    pub weight: Option<u32>,
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub resolver: Option<String>,
    pub cluster_tag: Option<String>,
    pub stats_name: Option<String>,
    pub idle_timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}
