//! What the Kubernetes source keeps of an object: it drops, at the source boundary, the fields
//! legate never reads, so they cost no memory and their changes publish nothing.
//!
//! Every object held is published as a `serde_json::Value`, where each JSON object is a
//! B-tree node of about 600 bytes whatever it holds: a kubectl-applied object's
//! `last-applied-configuration` annotation repeats the whole object as text, and
//! `managedFields`, `ownerReferences`, a Service's `selector` and an EndpointSlice endpoint's
//! `targetRef` or `conditions` are one or more such nodes each. Services and EndpointSlices are
//! most of a cluster's objects, so for them only what endpoint resolution reads is kept.
//!
//! Kept: `apiVersion`, `kind`, and
//! - `metadata`: `name`, `namespace`, `labels` and `annotations` (but the
//!   `kubectl.kubernetes.io/last-applied-configuration` one); everything else goes
//!   (`managedFields`, `ownerReferences`, `uid`, `resourceVersion`, timestamps...), so an
//!   update that changes only those publishes nothing. Services, EndpointSlices and Secrets
//!   keep no annotations (docs/compatibility.md: Service annotations are not read) and no labels
//!   but an EndpointSlice's `kubernetes.io/service-name`, which names its Service;
//! - Secrets: `type`, `data`, `stringData` (the parts `api::secret` reads);
//! - Services: `spec.type`, `spec.externalName` and, per port, `name`, `port`, `targetPort` and
//!   `protocol` (`api::service::ServiceSpec`; no `clusterIP`, `selector`, `ipFamilies`...);
//! - EndpointSlices: `addressType`, per port `name`, `port` and `protocol`, per endpoint its
//!   first address (the only one consumers use) and its `ready` and `terminating` conditions,
//!   the whole `conditions` left out when they say ready and not terminating, which is what
//!   absent conditions mean (`api::service::Conditions`): the usual endpoint is one node
//!   instead of two (`api::service::EndpointSliceObject`);
//! - other kinds: all but `status`.
//!
//! Keep this in step with what the translation reads (`api::*`, `RawObject`'s accessors).

use serde_json::{Map, Value};

use crate::api::service::SERVICE_NAME_LABEL;

/// The annotation `kubectl apply` stores the whole applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what legate never reads from `object`, a `kind` object as read from the API.
pub(super) fn strip(kind: &str, object: &mut Map<String, Value>) {
    object.remove("status");
    let core = matches!(kind, "Service" | "EndpointSlice" | "Secret");
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| match k.as_str() {
            "name" | "namespace" => true,
            "labels" => kind != "Service" && kind != "Secret",
            "annotations" => !core,
            _ => false,
        });
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(LAST_APPLIED);
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
        if kind == "EndpointSlice"
            && let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut)
        {
            labels.retain(|k, _| k == SERVICE_NAME_LABEL);
        }
    }
    match kind {
        "Secret" => object.retain(|k, _| {
            matches!(
                k.as_str(),
                "apiVersion" | "kind" | "metadata" | "type" | "data" | "stringData"
            )
        }),
        "Service" => {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.retain(|k, _| matches!(k.as_str(), "type" | "ports" | "externalName"));
                retain_in_each(
                    spec.get_mut("ports"),
                    &["name", "port", "targetPort", "protocol"],
                );
            }
        }
        "EndpointSlice" => {
            object.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "apiVersion" | "kind" | "metadata" | "addressType" | "endpoints" | "ports"
                )
            });
            retain_in_each(object.get_mut("ports"), &["name", "port", "protocol"]);
            let endpoints = object
                .get_mut("endpoints")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for endpoint in endpoints.filter_map(Value::as_object_mut) {
                endpoint.retain(|k, _| k == "addresses" || k == "conditions");
                if let Some(addresses) = endpoint.get_mut("addresses").and_then(Value::as_array_mut)
                {
                    addresses.truncate(1);
                    addresses.shrink_to_fit();
                }
                let usual = match endpoint.get_mut("conditions") {
                    Some(Value::Object(conditions)) => {
                        conditions.retain(|k, _| k == "ready" || k == "terminating");
                        conditions.get("ready") != Some(&Value::Bool(false))
                            && conditions.get("terminating") != Some(&Value::Bool(true))
                    }
                    _ => false,
                };
                if usual {
                    endpoint.remove("conditions");
                }
            }
        }
        _ => {}
    }
}

/// Keeps only `keys` in each object of `list` (an array; anything else is left as it is).
fn retain_in_each(list: Option<&mut Value>, keys: &[&str]) {
    let items = list.and_then(Value::as_array_mut).into_iter().flatten();
    for item in items.filter_map(Value::as_object_mut) {
        item.retain(|k, _| keys.contains(&k.as_str()));
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
        let host = json!({
            "apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
            "metadata": metadata(json!({"annotations": {LAST_APPLIED: "{}"}})),
            "spec": {"hostname": "*"},
            "status": {"state": "Ready"},
        });
        assert_eq!(
            stripped("Host", host),
            json!({
                "apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
                "metadata": {"name": "n", "namespace": "ns", "labels": {"app": "a"}},
                "spec": {"hostname": "*"},
            })
        );
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
        assert_eq!(secret["metadata"], json!({"name": "n", "namespace": "ns"}));
    }

    #[test]
    fn endpoint_slices_keep_what_endpoint_resolution_reads() {
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": metadata(json!({
                "labels": {"kubernetes.io/service-name": "s", "app": "a",
                           "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2025-01-01T00:00:00Z"},
                "generateName": "s-",
            })),
            "addressType": "IPv4",
            "endpoints": [{
                "addresses": ["10.0.0.1"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-1", "zone": "z1", "hints": {"forZones": [{"name": "z1"}]},
                "targetRef": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u3"},
            }, {
                "addresses": ["10.0.0.2", "10.0.0.3"],
                "conditions": {"ready": false, "serving": true, "terminating": false},
            }, {
                "addresses": ["10.0.0.4"],
                "conditions": {"serving": true, "terminating": true},
            }, {
                "addresses": ["10.0.0.5"],
            }],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
        });
        let slice = stripped("EndpointSlice", slice);
        assert_eq!(
            slice,
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "n", "namespace": "ns",
                             "labels": {"kubernetes.io/service-name": "s"}},
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": ["10.0.0.1"]},
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "terminating": false}},
                    {"addresses": ["10.0.0.4"], "conditions": {"terminating": true}},
                    {"addresses": ["10.0.0.5"]},
                ],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            })
        );
        // What the translation types from it: the dropped conditions read as ready.
        let typed: crate::api::service::EndpointSliceObject =
            serde_json::from_value(slice).expect("typed");
        let ready: Vec<bool> = typed
            .endpoints
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                c.ready != Some(false) && c.terminating != Some(true)
            })
            .collect();
        assert_eq!(ready, [true, false, false, true]);
    }

    #[test]
    fn services_keep_type_ports_and_external_name() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": metadata(json!({"annotations": {"getambassador.io/config": "---"}})),
            "spec": {
                "type": "ClusterIP", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
                "selector": {"app": "a"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP",
                           "appProtocol": "http", "nodePort": 30080}],
            },
        });
        assert_eq!(
            stripped("Service", service),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "n", "namespace": "ns"},
                "spec": {"type": "ClusterIP",
                         "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                    "protocol": "TCP"}]},
            })
        );
        let external = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "ns"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        });
        assert_eq!(stripped("Service", external.clone()), external);
    }
}
