//! `Listener` (getambassador.io v3alpha1 only): one Envoy listener.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Extra, LabelSelector, OneOrMany};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    #[serde(alias = "ambassadorId", rename = "ambassador_id")]
    pub ambassador_id: Option<OneOrMany>,
    /// 1–65535 (required).
    pub port: Option<i64>,
    /// `HTTP`, `HTTPS`, `HTTPPROXY`, `HTTPSPROXY`, `TCP` or `TLS`.
    pub protocol: Option<String>,
    /// An explicit stack of `HTTP`, `TLS`, `PROXY`, ending in `TCP` or `UDP`.
    pub protocol_stack: Option<Vec<String>>,
    /// `XFP`, `SECURE` or `INSECURE` (required).
    pub security_model: Option<String>,
    /// Which Hosts attach (required).
    pub host_binding: Option<HostBinding>,
    /// Trusted proxy hops in front (`xff_num_trusted_hops`).
    pub l7_depth: Option<u32>,
    pub stats_prefix: Option<String>,
    pub http2_max_concurrent_streams: Option<u32>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct HostBinding {
    pub namespace: Option<NamespaceBinding>,
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct NamespaceBinding {
    /// `ALL` or `SELF` (`SELECTOR` is unsupported and acts as `SELF`).
    pub from: Option<String>,
}
