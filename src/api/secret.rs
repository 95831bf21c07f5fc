//! Core `v1 Secret` holding TLS material (`kubernetes.io/tls`, or `Opaque` with `tls.crt`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The parts of a Secret legate reads. `data` is base64, `stringData` plain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretObject {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub data: Option<BTreeMap<String, String>>,
    pub string_data: Option<BTreeMap<String, String>>,
}
