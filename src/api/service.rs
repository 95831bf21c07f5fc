//! Core `v1 Service` and `discovery.k8s.io/v1 EndpointSlice`: the parts endpoint resolution
//! reads (docs/design.md#service-parsing-and-endpoints).
//!
//! These are lenient on purpose: every field is optional and unknown fields are ignored, since
//! they are whole cluster objects legate does not own. What a field lacks is decided by the
//! translation (`translate::endpoint`), not here.

use serde::{Deserialize, Serialize};

use super::doc::Doc;

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

impl ServiceObject {
    /// Types a Service exactly as `ServiceObject::deserialize(doc)` does (same value, same
    /// error). A Service of the expected shape is read field by field, not visited whole by
    /// serde: loading types every Service of the input in every translation
    /// (docs/design.md#service-parsing-and-endpoints). Anything else is typed by serde.
    pub fn from_doc(doc: Doc<'_>) -> Result<Self, serde_json::Error> {
        match read::service(doc) {
            Some(s) => Ok(s),
            None => Self::deserialize(doc),
        }
    }
}

impl EndpointSliceObject {
    /// Types an EndpointSlice exactly as `EndpointSliceObject::deserialize(doc)` does, as
    /// [`ServiceObject::from_doc`] types a Service.
    pub fn from_doc(doc: Doc<'_>) -> Result<Self, serde_json::Error> {
        match read::slice(doc) {
            Some(s) => Ok(s),
            None => Self::deserialize(doc),
        }
    }
}

/// The field-by-field readers of [`ServiceObject::from_doc`] and
/// [`EndpointSliceObject::from_doc`]: `None` wherever serde could type differently or fail
/// (a struct that is not an object, a field of another type, an integer out of range), so
/// that the caller falls back to serde. Each struct is read in one pass over its entries (keys
/// are unique); unknown fields are ignored, as serde ignores them.
mod read {
    use super::*;

    /// An `Option` field's value: `null` is `None`, else `Some` of what `f` reads.
    fn opt<'a, T>(v: Doc<'a>, f: impl FnOnce(Doc<'a>) -> Option<T>) -> Option<Option<T>> {
        if v.is_null() {
            Some(None)
        } else {
            f(v).map(Some)
        }
    }

    fn string(v: Doc<'_>) -> Option<String> {
        v.as_str().map(str::to_string)
    }

    fn list<'a, T>(v: Doc<'a>, f: impl Fn(Doc<'a>) -> Option<T>) -> Option<Vec<T>> {
        v.as_array()?.map(f).collect()
    }

    pub(super) fn service(doc: Doc<'_>) -> Option<ServiceObject> {
        let mut out = ServiceObject::default();
        for (key, v) in doc.entries()? {
            if key == "spec" {
                out.spec = opt(v, service_spec)?;
            }
        }
        Some(out)
    }

    fn service_spec(doc: Doc<'_>) -> Option<ServiceSpec> {
        let mut out = ServiceSpec::default();
        for (key, v) in doc.entries()? {
            match key {
                "type" => out.type_ = opt(v, string)?,
                "ports" => out.ports = opt(v, |p| list(p, service_port))?,
                "externalName" => out.external_name = opt(v, string)?,
                _ => {}
            }
        }
        Some(out)
    }

    fn service_port(doc: Doc<'_>) -> Option<ServicePort> {
        let mut out = ServicePort::default();
        for (key, v) in doc.entries()? {
            match key {
                "name" => out.name = opt(v, string)?,
                "port" => out.port = opt(v, Doc::as_i64)?,
                "targetPort" => out.target_port = opt(v, |t| Some(t.to_value()))?,
                "protocol" => out.protocol = opt(v, string)?,
                _ => {}
            }
        }
        Some(out)
    }

    pub(super) fn slice(doc: Doc<'_>) -> Option<EndpointSliceObject> {
        let mut out = EndpointSliceObject::default();
        for (key, v) in doc.entries()? {
            match key {
                "addressType" => out.address_type = opt(v, string)?,
                "endpoints" => out.endpoints = opt(v, |e| list(e, slice_endpoint))?,
                "ports" => out.ports = opt(v, |p| list(p, slice_port))?,
                _ => {}
            }
        }
        Some(out)
    }

    fn slice_endpoint(doc: Doc<'_>) -> Option<SliceEndpoint> {
        let mut out = SliceEndpoint::default();
        for (key, v) in doc.entries()? {
            match key {
                // `#[serde(default)]`: absent is empty; `null` is a type error (serde's).
                "addresses" => out.addresses = list(v, string)?,
                "conditions" => out.conditions = opt(v, conditions)?,
                _ => {}
            }
        }
        Some(out)
    }

    fn conditions(doc: Doc<'_>) -> Option<Conditions> {
        let mut out = Conditions::default();
        for (key, v) in doc.entries()? {
            match key {
                "ready" => out.ready = opt(v, Doc::as_bool)?,
                "serving" => out.serving = opt(v, Doc::as_bool)?,
                "terminating" => out.terminating = opt(v, Doc::as_bool)?,
                _ => {}
            }
        }
        Some(out)
    }

    fn slice_port(doc: Doc<'_>) -> Option<SlicePort> {
        let mut out = SlicePort::default();
        for (key, v) in doc.entries()? {
            match key {
                "name" => out.name = opt(v, string)?,
                "port" => out.port = opt(v, Doc::as_i64)?,
                "protocol" => out.protocol = opt(v, string)?,
                _ => {}
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests;
