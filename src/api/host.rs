//! `Host` (getambassador.io v3alpha1 and v2): a virtual host, its TLS and its insecure policy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Extra, LabelSelector, OneOrMany};
use super::tls_context::TlsContextSpec;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostSpec {
    #[serde(alias = "ambassadorId", rename = "ambassador_id")]
    pub ambassador_id: Option<OneOrMany>,
    /// DNS glob; default `*`.
    pub hostname: Option<String>,
    /// The serving certificate; this alone enables TLS.
    pub tls_secret: Option<SecretRef>,
    /// A named TLSContext (needs `tlsSecret`).
    pub tls_context: Option<NameRef>,
    /// An inline TLSContext (needs `tlsSecret`); snake_case or camelCase keys.
    pub tls: Option<TlsContextSpec>,
    pub request_policy: Option<RequestPolicy>,
    pub mapping_selector: Option<LabelSelector>,
    /// Deprecated alias of `mappingSelector`.
    pub selector: Option<LabelSelector>,
    /// Edge Stack only: ignored.
    pub acme_provider: Option<serde_json::Value>,
    pub preview_url: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct SecretRef {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct NameRef {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct RequestPolicy {
    pub insecure: Option<InsecurePolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsecurePolicy {
    pub action: Option<InsecureAction>,
    /// Accepted, no effect (as in Emissary); reported as a warning.
    pub additional_port: Option<i64>,
}

/// What a cleartext request to a Host does (default `Redirect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
pub enum InsecureAction {
    Redirect,
    Reject,
    Route,
}
