//! `TLSContext` (getambassador.io v3alpha1 and v2): TLS termination or origination settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Extra, OneOrMany};

/// The spec of a TLSContext, also the inline `Host.tls` (which takes camelCase aliases).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct TlsContextSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,
    /// Host names this termination context serves (exact).
    pub hosts: Option<Vec<String>>,
    /// Certificate Secret: `name` or `name.namespace`.
    pub secret: Option<String>,
    #[serde(alias = "certChainFile")]
    pub cert_chain_file: Option<String>,
    #[serde(alias = "privateKeyFile")]
    pub private_key_file: Option<String>,
    #[serde(alias = "caSecret")]
    pub ca_secret: Option<String>,
    #[serde(alias = "cacertChainFile")]
    pub cacert_chain_file: Option<String>,
    #[serde(alias = "certRequired")]
    pub cert_required: Option<bool>,
    #[serde(alias = "crlSecret")]
    pub crl_secret: Option<String>,
    /// One string, comma-separated (`"h2,http/1.1"`), or a list.
    #[serde(alias = "alpnProtocols")]
    pub alpn_protocols: Option<OneOrMany>,
    #[serde(alias = "minTlsVersion")]
    pub min_tls_version: Option<String>,
    #[serde(alias = "maxTlsVersion")]
    pub max_tls_version: Option<String>,
    #[serde(alias = "cipherSuites")]
    pub cipher_suites: Option<Vec<String>>,
    #[serde(alias = "ecdhCurves")]
    pub ecdh_curves: Option<Vec<String>>,
    /// SNI sent when originating.
    pub sni: Option<String>,
    /// No effect in the Listener/Host model.
    #[serde(alias = "redirectCleartextFrom")]
    pub redirect_cleartext_from: Option<i64>,
    #[serde(alias = "secretNamespacing")]
    pub secret_namespacing: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}
