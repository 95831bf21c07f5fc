//! TLS material served by SDS.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Secret {
    /// SDS name, referenced from listeners and clusters.
    pub name: String,
    pub kind: SecretKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// A certificate chain and its private key (PEM).
    TlsCertificate {
        certificate_chain: String,
        private_key: Sensitive,
    },
    /// Trusted CA certificates (PEM) and an optional CRL, to verify peers.
    Validation {
        trusted_ca: String,
        crl: Option<String>,
    },
}

/// Key material: never printed by `Debug` or serialized in dumps. Use [`Sensitive::expose`] only
/// where the bytes must reach Envoy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

impl Serialize for Sensitive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("<redacted {} bytes>", self.0.len()))
    }
}
