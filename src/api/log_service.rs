//! `LogService` (getambassador.io v3alpha1 and v2): ship access logs to a gRPC access-log
//! collector (docs/design.md#logservice).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Extra, OneOrMany};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct LogServiceSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,
    /// The collector, `[https://]host[:port]` (required).
    pub service: Option<String>,
    /// Only `v3` (the default); Envoy no longer speaks `v2`.
    #[serde(alias = "v3ProtocolVersion")]
    #[schemars(extend("enum" = ["v3"]))]
    pub protocol_version: Option<String>,
    /// `http` (HTTP entries) or `tcp` (connection entries; the default).
    #[schemars(extend("enum" = ["http", "tcp"]))]
    pub driver: Option<String>,
    pub driver_config: Option<LogDriverConfig>,
    /// Seconds between flushes (default 1; at least 1).
    pub flush_interval_time: Option<u64>,
    /// Bytes buffered before a flush (default 16384).
    pub flush_interval_byte_size: Option<u32>,
    /// Accepted for compatibility: the collector is always reached over HTTP/2.
    pub grpc: Option<bool>,
    #[serde(alias = "v3StatsName")]
    pub stats_name: Option<String>,
    /// legate extension: the `log_name` the collector sees (default `logservice`).
    pub log_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct LogDriverConfig {
    /// Headers added to each entry (`http` driver only).
    pub additional_log_headers: Option<Vec<AdditionalLogHeader>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct AdditionalLogHeader {
    /// Required, not empty.
    pub header_name: Option<String>,
    /// Log it from the request (default true).
    pub during_request: Option<bool>,
    /// Log it from the response (default true).
    pub during_response: Option<bool>,
    /// Log it from the response trailers (default true).
    pub during_trailer: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}
