//! Core `v1 Service` and `discovery.k8s.io/v1 EndpointSlice`: the parts endpoint resolution
//! reads (docs/design.md#service-parsing-and-endpoints).
//!
//! These are lenient on purpose: every field is optional and unknown fields are ignored, since
//! they are whole cluster objects legate does not own. What a field lacks is decided by the
//! translation (`translate::endpoint`), not here.

use serde::{Deserialize, Serialize};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A `v1 Service` (only `spec` is read; name and namespace come from its metadata).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ServiceObject {
    pub spec: Option<ServiceSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub ports: Option<Vec<ServicePort>>,
    pub external_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Required when the Service has several ports; EndpointSlice ports carry the same name.
    pub name: Option<String>,
    pub port: Option<i64>,
    /// A port number or the name of a container port.
    pub target_port: Option<serde_json::Value>,
    /// `TCP` (default), `UDP` or `SCTP`.
    pub protocol: Option<String>,
}

/// A `discovery.k8s.io/v1 EndpointSlice`. Its Service is named by the
/// [`SERVICE_NAME_LABEL`] label.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSliceObject {
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: Option<String>,
    pub endpoints: Option<Vec<SliceEndpoint>>,
    pub ports: Option<Vec<SlicePort>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SliceEndpoint {
    /// Consumers use the first address only (the API's contract).
    #[serde(default)]
    pub addresses: Vec<String>,
    pub conditions: Option<Conditions>,
}

/// Endpoint conditions; a missing condition counts as `ready` and not `terminating`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Conditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SlicePort {
    /// The Service port's name (empty or absent for a single unnamed port).
    pub name: Option<String>,
    /// The resolved target port.
    pub port: Option<i64>,
    pub protocol: Option<String>,
}
