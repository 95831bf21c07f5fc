use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::api::host::HostSpec;
use crate::api::mapping::MappingSpec;
use crate::api::module::ModuleSpec;

fn doc(value: &Value) -> Document {
    Document::from_value(value).expect("small document")
}

/// Typing from the document and from the value give the same result, or the same error text.
fn same<T>(value: &Value)
where
    T: for<'de> Deserialize<'de> + fmt::Debug + PartialEq,
{
    let d = doc(value);
    let from_doc = T::deserialize(d.root()).map_err(|e| e.to_string());
    let from_value = T::deserialize(value).map_err(|e| e.to_string());
    assert_eq!(from_doc, from_value, "{value}");
}

#[test]
fn round_trips_and_serializes_as_the_value() {
    let value = json!({
        "b": [1, -2, 2.5, "s", null, true, {"z": {}, "a": []}],
        "a": {"y": "", "x": u64::MAX, "é": i64::MIN},
        "": 0
    });
    let d = doc(&value);
    assert_eq!(d.to_value(), value);
    assert_eq!(
        serde_json::to_string(&d).expect("serializes"),
        serde_json::to_string(&value).expect("serializes")
    );
    assert_eq!(d, doc(&value));
    assert_ne!(d, doc(&json!({"a": 1})));
    assert_eq!(format!("{d:?}"), format!("{value:?}"));
    assert_eq!(doc(&json!(null)), Document::null());
}

#[test]
fn accessors_find_what_the_value_holds() {
    let value = json!({"kind": "Mapping", "metadata": {"name": "a", "labels": {"k": "v"}},
                       "list": ["x", 1], "n": null});
    let d = doc(&value);
    let root = d.root();
    assert!(root.is_object());
    assert_eq!(d.get("kind").and_then(Doc::as_str), Some("Mapping"));
    assert!(d.get("kind").is_some_and(|k| k == "Mapping"));
    assert_eq!(
        root.get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Doc::as_str),
        Some("a")
    );
    for missing in ["", "kinds", "a", "zzz", "Kind"] {
        assert!(d.get(missing).is_none(), "{missing}");
    }
    assert!(d.get("n").is_some_and(Doc::is_null));
    let list: Vec<Value> = d
        .get("list")
        .and_then(Doc::as_array)
        .map(|items| items.map(Doc::to_value).collect())
        .unwrap_or_default();
    assert_eq!(list, [json!("x"), json!(1)]);
    let keys: Vec<&str> = root
        .entries()
        .map(|e| e.map(|(k, _)| k).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["kind", "list", "metadata", "n"]);
    assert!(d.get("kind").and_then(Doc::entries).is_none());
    assert!(root.get("list").and_then(|l| l.get("x")).is_none());
}

#[test]
fn typed_specs_deserialize_as_from_the_value() {
    let good = json!({
        "prefix": "/a/", "service": "b:80", "timeout_ms": 5000, "weight": 10,
        "headers": {"x-a": "1", "x-b": true}, "retry_policy": {"retry_on": "5xx", "num_retries": 2},
        "labels": {"ambassador": [{"a": {"header": "x"}}]}, "unknown_one": [1, 2],
        "precedence": -3, "ambassador_id": ["a", "b"], "cors": {"origins": "*"}
    });
    same::<MappingSpec>(&good);
    same::<BTreeMap<String, Value>>(&good);
    same::<Value>(&good);
    // Type errors: the same message, word for word.
    for bad in [
        json!({"prefix": 3}),
        json!({"timeout_ms": "x"}),
        json!({"timeout_ms": -1}),
        json!({"timeout_ms": 1.5}),
        json!({"timeout_ms": 99_999_999_999_u64}),
        json!({"retry_policy": "x"}),
        json!({"retry_policy": {"num_retries": {}}}),
        json!({"headers": [1]}),
        json!({"cors": {"max_age": [1]}}),
        json!({"weight": null, "prefix": false}),
        json!("a string"),
        json!([1, 2]),
        json!(null),
    ] {
        same::<MappingSpec>(&bad);
        same::<HostSpec>(&bad);
        same::<ModuleSpec>(&bad);
    }
}

#[test]
fn enums_tuples_and_options_behave_as_with_the_value() {
    #[derive(Debug, PartialEq, Deserialize)]
    enum E {
        Unit,
        New(u8),
        Tuple(u8, String),
        Struct { a: bool },
    }
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    enum U {
        N(i32),
        S(String),
        L(Vec<u8>),
    }
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct S {
        o: Option<u16>,
        #[serde(default)]
        t: Option<(u8, u8)>,
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
    }
    for v in [
        json!("Unit"),
        json!({"New": 3}),
        json!({"Tuple": [1, "x"]}),
        json!({"Struct": {"a": true}}),
        json!({"New": 300}),
        json!({"Tuple": [1]}),
        json!({"Struct": 1}),
        json!({"Unit": null}),
        json!({"Unit": 1}),
        json!({"New": 1, "Unit": null}),
        json!({}),
        json!("Nope"),
        json!(5),
    ] {
        same::<E>(&v);
    }
    for v in [json!(-4), json!("s"), json!([1, 2]), json!(1.5), json!({})] {
        same::<U>(&v);
    }
    for v in [
        json!({"o": 1, "t": [1, 2], "x": 1}),
        json!({"o": null}),
        json!({"o": 70000}),
        json!({"t": [1, 2, 3]}),
        json!({"t": [1]}),
        json!([1]),
    ] {
        same::<S>(&v);
    }
    same::<(u8, String)>(&json!([1, "a", 3]));
    same::<Vec<char>>(&json!(["a", "bc"]));
    same::<()>(&json!(null));
    same::<()>(&json!(0));
    same::<bool>(&json!("true"));
    same::<f32>(&json!(-1));
    same::<String>(&json!(1));
}
