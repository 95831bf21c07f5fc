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

/// The document a `serde_json::Value` read from `yaml` gives, and the one a draft parsed from
/// the same text gives: equal (same layout, so equal as documents), or the same error text.
fn yaml_both_ways(yaml: &str) -> (Result<Document, String>, Result<Document, String>) {
    let from_value = Value::deserialize(serde_yaml::Deserializer::from_str(yaml))
        .map_err(|e| e.to_string())
        .map(|v| doc(&v));
    let mut draft = Draft::new();
    // Something already in the draft (another document of the file) changes nothing.
    draft
        .parse(serde_yaml::Deserializer::from_str("{z: [1, {y: 2}], a: b}"))
        .expect("parses");
    let from_draft = draft
        .parse(serde_yaml::Deserializer::from_str(yaml))
        .map_err(|e| e.to_string())
        .map(|root| draft.finish(root).expect("small document"));
    (from_value, from_draft)
}

#[test]
fn a_draft_parsed_from_yaml_is_the_document_of_the_value() {
    let texts = [
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: a, namespace: n}\nspec:\n  prefix: /a/\n  service: a:80\n  headers: {x-b: '1', x-a: \"2\"}\n",
        // keys out of order, a repeated key (the last one counts), nesting, empty containers
        "z: 1\na: {c: [], b: {}, a: [x, [y, {q: r}]]}\nm: first\nm: {second: true}\n",
        // every scalar: integers of every size, floats (NaN and infinities become null), null
        "- 0\n- -1\n- 18446744073709551615\n- -9223372036854775808\n- 2.5\n- .nan\n- .inf\n- -.inf\n- ~\n- null\n- true\n- 'é \\u00e9'\n- \"\\u00e9\"\n- 1e3\n- 0x1F\n",
        // anchors and aliases
        "a: &x {k: [1, 2]}\nb: *x\nc: [*x, *x]\n",
        // a scalar key that is not a string in YAML is a string key
        "1: one\ntrue: yes\n~: n\n",
        "",
        "plain",
        "[]",
        "{}",
    ];
    for text in texts {
        let (from_value, from_draft) = yaml_both_ways(text);
        let from_value = from_value.expect("the value parses");
        assert_eq!(from_draft, Ok(from_value.clone()), "{text:?}");
        assert_eq!(
            from_draft.map(|d| d.to_value()),
            Ok(from_value.to_value()),
            "{text:?}"
        );
    }
}

#[test]
fn a_draft_fails_with_the_error_text_of_the_value() {
    let texts = [
        "a: [1, 2\n",
        "a: b: c\n",
        "[a]: 1\n",
        "a: 1\n[b]: 2\n",
        "a: 1\n{b: 1}: 2\n",
        "a: !tagged x\n",
        "- 1180591620717411303424\n",
        "- -1180591620717411303424\n",
        "a:\n  b:\n    - c\n   d: e\n",
        "a: *missing\n",
    ];
    for text in texts {
        let (from_value, from_draft) = yaml_both_ways(text);
        let expected = from_value.expect_err(text);
        assert_eq!(from_draft, Err(expected), "{text:?}");
    }
}

#[test]
fn a_patched_draft_is_the_document_of_the_patched_value() {
    let yaml = "kind: K\nmetadata: {name: a, labels: {x: y}}\nspec: {p: 1}\n";
    let mut draft = Draft::new();
    let root = draft
        .parse(serde_yaml::Deserializer::from_str(yaml))
        .expect("parses");
    let metadata = draft.get(root, "metadata").expect("has metadata");
    assert_eq!(draft.kind(metadata), Kind::Object);
    assert_eq!(
        draft.get(metadata, "name").and_then(|n| draft.as_str(n)),
        Some("a")
    );
    assert_eq!(draft.get(metadata, "namespace"), None);
    assert_eq!(
        draft.get(root, "kind").map(|k| draft.kind(k)),
        Some(Kind::String)
    );
    // a new key, then an existing one changed in place
    let ns = draft.string("ns");
    let patched = draft.set(metadata, "namespace", ns);
    let root2 = draft.set(root, "metadata", patched);
    assert_eq!(root2, root, "an existing key is set in place");
    let name = draft.string("b");
    assert_eq!(draft.set(patched, "name", name), patched);
    let extra = draft.object();
    let root3 = draft.set(root, "a-first", extra);
    let expected = json!({"kind": "K", "a-first": {},
        "metadata": {"name": "b", "namespace": "ns", "labels": {"x": "y"}}, "spec": {"p": 1}});
    assert_eq!(draft.finish(root3), Ok(doc(&expected)));
    let items = draft.parse(&json!([1, "x"])).expect("parses");
    assert_eq!(draft.items(items).map(|i| i.len()), Some(2));
    assert!(draft.items(root).is_none());
}
