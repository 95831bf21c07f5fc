use serde_json::json;

use super::*;

#[test]
fn head_reads_what_the_accessors_read() {
    let objects = [
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "1", "n": 2}}}),
        json!({"apiVersion": 3, "kind": null, "metadata": {"name": ["a"], "namespace": ""}}),
        json!({"kind": "Mapping", "metadata": "m"}),
        json!({"metadata": {"labels": null}}),
        json!([1]),
        json!(null),
    ];
    for value in objects {
        let raw = RawObject::new(Origin::Builtin, value.clone());
        let head = raw.head();
        assert_eq!(head.api_version, raw.api_version(), "{value}");
        assert_eq!(head.kind, raw.kind(), "{value}");
        assert_eq!(head.name, raw.name(), "{value}");
        assert_eq!(head.namespace, raw.namespace(), "{value}");
        assert_eq!(head.labels(), raw.labels(), "{value}");
    }
}
