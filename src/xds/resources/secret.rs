//! SDS: certificates with their keys, and validation contexts. The private key leaves the IR's
//! [`Sensitive`](crate::ir::Sensitive) wrapper only here, on its way to Envoy.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};

use crate::ir;

/// The SDS resource for one IR secret.
pub fn secret(s: &ir::Secret) -> Secret {
    let kind = match &s.kind {
        ir::SecretKind::TlsCertificate {
            certificate_chain,
            private_key,
        } => secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(certificate_chain)),
            private_key: Some(inline(private_key.expose())),
            ..Default::default()
        }),
        ir::SecretKind::Validation { trusted_ca, crl } => {
            secret::Type::ValidationContext(CertificateValidationContext {
                trusted_ca: Some(inline(trusted_ca)),
                crl: crl.as_deref().map(inline),
                ..Default::default()
            })
        }
    };
    Secret {
        name: s.name.clone(),
        r#type: Some(kind),
    }
}

fn inline(pem: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(pem.to_string())),
        ..Default::default()
    }
}
