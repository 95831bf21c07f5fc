use serde_json::{Value, json};

use super::*;
use crate::api::doc::Document;

/// `from_doc` gives what serde gives (value or error text).
fn same<T>(value: Value, from_doc: fn(Doc<'_>) -> Result<T, serde_json::Error>)
where
    T: for<'de> Deserialize<'de> + std::fmt::Debug + PartialEq,
{
    let d = Document::from_value(&value).expect("small document");
    let ours = from_doc(d.root()).map_err(|e| e.to_string());
    let serde = T::deserialize(&value).map_err(|e| e.to_string());
    assert_eq!(ours, serde, "{value}");
}

#[test]
fn services_type_as_serde_types_them() {
    let port = json!({"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"});
    let cases = [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
               "spec": {"type": "ClusterIP", "ports": [port.clone()], "extra": [1]}}),
        json!({"spec": {"type": "ExternalName", "externalName": "x.example"}}),
        json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}, {}]}}),
        json!({"spec": {"ports": [{"port": 80, "targetPort": null, "name": null}]}}),
        json!({"spec": {"ports": [{"targetPort": {"a": [1.5]}}]}}),
        json!({"spec": {"ports": null, "type": null}}),
        json!({"spec": null}),
        json!({}),
        // Errors, values the reader must reject as serde does, and shapes it leaves to serde.
        json!({"spec": {"ports": [{"port": 80.5}]}}),
        json!({"spec": {"ports": [{"port": -1}]}}),
        json!({"spec": {"ports": [{"port": u64::MAX}]}}),
        json!({"spec": {"ports": [{"port": "80"}]}}),
        json!({"spec": {"ports": {"port": 80}}}),
        json!({"spec": {"ports": [[ "http", 80 ]]}}),
        json!({"spec": {"type": 3}}),
        json!({"spec": "ClusterIP"}),
        json!({"spec": [{"type": "x"}]}),
        json!([null]),
        json!("Service"),
        json!(null),
    ];
    for case in cases {
        same(case, ServiceObject::from_doc);
    }
}

#[test]
fn endpoint_slices_type_as_serde_types_them() {
    let cases = [
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"labels": {SERVICE_NAME_LABEL: "a"}}, "addressType": "IPv4",
               "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"], "nodeName": "n",
                              "conditions": {"ready": true, "serving": false, "terminating": null}}],
               "ports": [{"name": "", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]}),
        json!({"endpoints": [{}, {"conditions": {}}, {"conditions": null, "addresses": []}]}),
        json!({"endpoints": null, "ports": null, "addressType": null}),
        json!({"ports": [{}, {"port": null, "name": null, "protocol": null}]}),
        json!({}),
        // Serde's fallback.
        json!({"endpoints": [{"addresses": null}]}),
        json!({"endpoints": [{"addresses": ["10.0.0.1", 7]}]}),
        json!({"endpoints": [{"conditions": {"ready": "true"}}]}),
        json!({"endpoints": [{"conditions": []}]}),
        json!({"endpoints": [["10.0.0.1"]]}),
        json!({"endpoints": {"addresses": []}}),
        json!({"ports": [{"port": 1e3}]}),
        json!({"ports": [{"port": i64::MIN}]}),
        json!({"addressType": ["IPv4"]}),
        json!([]),
        json!(7),
    ];
    for case in cases {
        same(case, EndpointSliceObject::from_doc);
    }
}

#[test]
fn the_reader_types_the_common_shapes_itself() {
    // Not the serde fallback: the reader answers for these.
    let service = json!({"metadata": {"name": "a"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
    let d = Document::from_value(&service).expect("small document");
    assert!(read::service(d.root()).is_some());
    let slice = json!({"addressType": "IPv4", "ports": [{"name": "", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}]});
    let d = Document::from_value(&slice).expect("small document");
    assert!(read::slice(d.root()).is_some());
    let wrong = json!({"ports": [{"port": 1.5}]});
    let d = Document::from_value(&wrong).expect("small document");
    assert!(read::slice(d.root()).is_none());
}
