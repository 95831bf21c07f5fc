//! What the Kubernetes source keeps of an object: it drops, at the source boundary, the fields
//! legate never reads, so they cost no memory and their changes publish nothing.
//!
//! Every object held is published as a `serde_json::Value`, where each JSON object is a
//! B-tree node of about 600 bytes whatever it holds: a kubectl-applied object's
//! `last-applied-configuration` annotation repeats the whole object as text, and
//! `managedFields`, `ownerReferences` and an EndpointSlice endpoint's `targetRef` are one or
//! more such nodes each.
//!
//! Kept: `apiVersion`, `kind`, and
//! - `metadata`: `name`, `namespace`, `labels` and `annotations` (but the
//!   `kubectl.kubernetes.io/last-applied-configuration` one); everything else goes
//!   (`managedFields`, `ownerReferences`, `uid`, `resourceVersion`, timestamps...), so an
//!   update that changes only those publishes nothing;
//! - Secrets: `type`, `data`, `stringData` (the parts `api::secret` reads);
//! - EndpointSlices: all but, per endpoint, what `api::service::SliceEndpoint` does not read
//!   (only `addresses` and `conditions` stay: no `targetRef`, `nodeName`, `zone`, `hints`);
//! - other kinds: all but `status`.
//!
//! Keep this in step with what the translation reads (`api::*`, `RawObject`'s accessors).

use serde_json::{Map, Value};

/// The annotation `kubectl apply` stores the whole applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what legate never reads from `object`, a `kind` object as read from the API.
pub(super) fn strip(kind: &str, object: &mut Map<String, Value>) {
    object.remove("status");
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations"));
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(LAST_APPLIED);
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    match kind {
        "Secret" => object.retain(|k, _| {
            matches!(
                k.as_str(),
                "apiVersion" | "kind" | "metadata" | "type" | "data" | "stringData"
            )
        }),
        "EndpointSlice" => {
            let endpoints = object
                .get_mut("endpoints")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for endpoint in endpoints.filter_map(Value::as_object_mut) {
                endpoint.retain(|k, _| k == "addresses" || k == "conditions");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stripped(kind: &str, value: Value) -> Value {
        let mut value = value;
        strip(kind, value.as_object_mut().expect("an object"));
        value
    }

    fn metadata(extra: Value) -> Value {
        let mut meta = json!({
            "name": "n", "namespace": "ns", "resourceVersion": "7", "uid": "u",
            "creationTimestamp": "2025-01-01T00:00:00Z", "generation": 3,
            "labels": {"app": "a"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            "ownerReferences": [{"kind": "Service", "name": "n", "uid": "u2"}],
        });
        for (k, v) in extra.as_object().expect("an object") {
            meta[k] = v.clone();
        }
        meta
    }

    #[test]
    fn drops_bookkeeping_and_keeps_what_is_read() {
        let mapping = json!({
            "apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
            "metadata": metadata(json!({"annotations": {
                LAST_APPLIED: "{\"apiVersion\":\"getambassador.io/v3alpha1\"}",
                "team": "edge",
            }})),
            "spec": {"prefix": "/a/", "service": "a"},
            "status": {"state": "Running"},
        });
        assert_eq!(
            stripped("Mapping", mapping),
            json!({
                "apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
                "metadata": {"name": "n", "namespace": "ns", "labels": {"app": "a"},
                             "annotations": {"team": "edge"}},
                "spec": {"prefix": "/a/", "service": "a"},
            })
        );
        // An annotation map left empty goes too.
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": metadata(json!({"annotations": {LAST_APPLIED: "{}"}})),
            "spec": {"ports": [{"port": 80}]},
            "status": {"loadBalancer": {}},
        });
        let service = stripped("Service", service);
        assert!(
            service["metadata"].get("annotations").is_none(),
            "{service}"
        );
        assert_eq!(service["spec"], json!({"ports": [{"port": 80}]}));
        assert!(service.get("status").is_none());
    }

    #[test]
    fn secrets_keep_type_data_and_metadata_only() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": metadata(json!({})),
            "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"},
            "immutable": true,
        });
        let secret = stripped("Secret", secret);
        let keys: Vec<&str> = secret
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["apiVersion", "data", "kind", "metadata", "type"]);
        assert_eq!(secret["data"]["tls.key"], "a2V5");
    }

    #[test]
    fn endpoint_slices_keep_addresses_and_conditions() {
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": metadata(json!({"labels": {"kubernetes.io/service-name": "s"}})),
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": ["10.0.0.1"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-1", "zone": "z1", "hints": {"forZones": [{"name": "z1"}]},
                "targetRef": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u3"},
            }],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        });
        let slice = stripped("EndpointSlice", slice);
        assert_eq!(
            slice["endpoints"],
            json!([{"addresses": ["10.0.0.1"],
                    "conditions": {"ready": true, "serving": true, "terminating": false}}])
        );
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["ports"][0]["port"], 8080);
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "s"
        );
    }
}
