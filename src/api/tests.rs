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

#[test]
fn origins_order_by_variant_then_fields_whether_or_not_a_path_is_shared() {
    let shared: Arc<Path> = Arc::from(Path::new("b/x.yaml"));
    let of = |doc| Origin::File {
        file: Arc::clone(&shared),
        doc,
    };
    let k8s = |namespace: &str, name: &str| Origin::Kubernetes {
        namespace: namespace.into(),
        name: name.into(),
    };
    let mut origins = [
        Origin::Builtin,
        k8s("b", "a"),
        k8s("a", "z"),
        of(2),
        Origin::file("b/x.yaml", 3),
        of(1),
        Origin::file("b.yaml", 1),
        Origin::file("a.yaml", 9),
    ];
    origins.sort();
    let shown: Vec<String> = origins.iter().map(Origin::to_string).collect();
    // Paths compare by component (as `Path` does): `b/x.yaml` before `b.yaml`, the component
    // `b` before `b.yaml`, although as text `/` sorts after `.`.
    assert_eq!(
        shown,
        [
            "a.yaml#9",
            "b/x.yaml#1",
            "b/x.yaml#2",
            "b/x.yaml#3",
            "b.yaml#1",
            "a/z",
            "b/a",
            "<builtin>"
        ]
    );
    // A path of its own equals the shared one, in order as in equality.
    let own = Origin::file("b/x.yaml", 1);
    assert_eq!(own, of(1));
    assert_eq!(own.cmp(&of(1)), std::cmp::Ordering::Equal);
    assert_eq!(of(1).cmp(&of(1)), std::cmp::Ordering::Equal);
    assert!(own < of(2) && of(2) > own);
}
