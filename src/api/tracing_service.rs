//! `TracingService` (getambassador.io v3alpha1 and v2): the tracer of every HTTP connection
//! manager (docs/design.md#tracingservice).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Extra, OneOrMany};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct TracingServiceSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,
    /// `zipkin`, `opentelemetry` or `datadog` (required). Lightstep was removed from Envoy.
    #[schemars(extend("enum" = ["zipkin", "opentelemetry", "datadog"]))]
    pub driver: Option<String>,
    /// The collector, `[https://]host[:port]` (required).
    pub service: Option<String>,
    pub sampling: Option<Sampling>,
    #[serde(alias = "v3CustomTags")]
    pub custom_tags: Option<Vec<CustomTagSpec>>,
    /// Request headers to tag spans with (each becomes a `request_header` custom tag).
    pub tag_headers: Option<Vec<String>>,
    /// Driver settings; which keys each driver reads is in docs/design.md#tracingservice.
    pub config: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(alias = "v3StatsName")]
    pub stats_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Percentages, 0–100.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Sampling {
    pub client: Option<u32>,
    pub random: Option<u32>,
    pub overall: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tag added to every span: exactly one of `literal`, `environment`, `request_header`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct CustomTagSpec {
    pub tag: Option<String>,
    pub literal: Option<LiteralTag>,
    pub environment: Option<NamedTag>,
    pub request_header: Option<NamedTag>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct LiteralTag {
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct NamedTag {
    pub name: Option<String>,
    pub default_value: Option<String>,
}
