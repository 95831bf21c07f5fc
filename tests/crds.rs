//! `image/kubernetes/crds.yaml` is exactly what `legate::api::crd::crds_yaml()` generates, and
//! the CRDs name the kinds as Emissary does and cover everything the Kubernetes source watches.
//! `UPDATE_CRDS=1 cargo test --test crds` rewrites the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use legate::api::crd::{crds, crds_yaml};
use legate::source::kubernetes::WATCHED;
use serde::Deserialize;
use serde_json::Value;

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("image/kubernetes/crds.yaml")
}

#[test]
fn the_committed_file_is_the_generated_one() {
    let generated = crds_yaml();
    let path = committed_path();
    if std::env::var("UPDATE_CRDS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with `UPDATE_CRDS=1 cargo test --test crds`",
        path.display()
    );
    let kustomization = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("image/kubernetes/kustomization.yaml"),
    )
    .unwrap();
    assert!(kustomization.lines().any(|l| l.trim() == "- crds.yaml"));
}

/// The YAML parses back into the same objects.
#[test]
fn the_yaml_round_trips() {
    let parsed: Vec<Value> = serde_yaml::Deserializer::from_str(&crds_yaml())
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(parsed, crds());
}

/// Emissary's names: (kind, plural, singular, served versions). Emissary's CRDs define no
/// short names and put every kind in the `ambassador-crds` category.
const EMISSARY: &[(&str, &str, &str, &[&str])] = &[
    ("Mapping", "mappings", "mapping", &["v2", "v3alpha1"]),
    ("Host", "hosts", "host", &["v2", "v3alpha1"]),
    ("Listener", "listeners", "listener", &["v3alpha1"]),
    (
        "TLSContext",
        "tlscontexts",
        "tlscontext",
        &["v2", "v3alpha1"],
    ),
    ("Module", "modules", "module", &["v2", "v3alpha1"]),
    (
        "TCPMapping",
        "tcpmappings",
        "tcpmapping",
        &["v2", "v3alpha1"],
    ),
    // AuthService and RateLimitService
    (
        "AuthService",
        "authservices",
        "authservice",
        &["v2", "v3alpha1"],
    ),
    (
        "RateLimitService",
        "ratelimitservices",
        "ratelimitservice",
        &["v2", "v3alpha1"],
    ),
    (
        "LogService",
        "logservices",
        "logservice",
        &["v2", "v3alpha1"],
    ),
    (
        "TracingService",
        "tracingservices",
        "tracingservice",
        &["v2", "v3alpha1"],
    ),
];

#[test]
fn names_and_versions_match_emissary() {
    let by_kind: BTreeMap<String, Value> = crds()
        .into_iter()
        .map(|c| (c["spec"]["names"]["kind"].as_str().unwrap().to_string(), c))
        .collect();
    assert_eq!(by_kind.len(), EMISSARY.len());
    for (kind, plural, singular, versions) in EMISSARY {
        let c = &by_kind[*kind];
        assert_eq!(c["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(c["kind"], "CustomResourceDefinition");
        assert_eq!(c["metadata"]["name"], format!("{plural}.getambassador.io"));
        let spec = &c["spec"];
        assert_eq!(spec["group"], "getambassador.io");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["conversion"]["strategy"], "None");
        let names = &spec["names"];
        assert_eq!(names["plural"], *plural);
        assert_eq!(names["singular"], *singular);
        assert_eq!(names["listKind"], format!("{kind}List"));
        assert!(
            names.get("shortNames").is_none(),
            "{kind}: Emissary has none"
        );
        assert_eq!(names["categories"], serde_json::json!(["ambassador-crds"]));
        let served: Vec<&str> = spec["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["served"] == true)
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(served, *versions, "{kind}");
        let storage: Vec<&str> = spec["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(storage, ["v3alpha1"], "{kind}: exactly one storage version");
        for v in spec["versions"].as_array().unwrap() {
            assert_eq!(v["subresources"]["status"], serde_json::json!({}));
            let schema = &v["schema"]["openAPIV3Schema"];
            assert_eq!(schema["type"], "object");
            let spec_schema = &schema["properties"]["spec"];
            assert_eq!(spec_schema["type"], "object", "{kind}");
            assert_eq!(spec_schema["x-kubernetes-preserve-unknown-fields"], true);
            let known = spec_schema["properties"].as_object().unwrap();
            assert!(known.contains_key("ambassador_id"), "{kind}");
            assert!(known.len() >= 2, "{kind}: the known fields are listed");
        }
    }
}

#[test]
fn spec_schemas_list_the_known_fields_with_types() {
    let crds = crds();
    let spec = |kind: &str| {
        crds.iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .map(|c| {
                c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
            })
            .unwrap()
    };
    let mapping = spec("Mapping");
    assert_eq!(mapping["properties"]["prefix"]["type"], "string");
    assert_eq!(mapping["properties"]["service"]["type"], "string");
    assert_eq!(mapping["properties"]["timeout_ms"]["type"], "integer");
    let listener = spec("Listener");
    assert_eq!(listener["properties"]["port"]["type"], "integer");
    assert_eq!(listener["properties"]["securityModel"]["type"], "string");
    let module = spec("Module");
    assert_eq!(
        module["properties"]["config"]["properties"]["use_remote_address"]["type"],
        "boolean"
    );
    let tcp = spec("TCPMapping");
    assert_eq!(tcp["properties"]["port"]["type"], "integer");
    let host = spec("Host");
    assert_eq!(
        host["properties"]["tlsSecret"]["properties"]["name"]["type"],
        "string"
    );
    let ctx = spec("TLSContext");
    assert_eq!(ctx["properties"]["hosts"]["items"]["type"], "string");
}

#[test]
fn every_watched_custom_kind_has_a_crd_serving_the_watched_version() {
    let defined: BTreeSet<(String, String, String)> = crds()
        .iter()
        .flat_map(|c| {
            let spec = &c["spec"];
            spec["versions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| v["served"] == true)
                .map(|v| {
                    (
                        spec["group"].as_str().unwrap().to_string(),
                        spec["names"]["plural"].as_str().unwrap().to_string(),
                        v["name"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let custom: Vec<_> = WATCHED.iter().filter(|w| w.custom).collect();
    assert!(!custom.is_empty());
    for w in custom {
        let key = (
            w.group.to_string(),
            w.plural.to_string(),
            w.version.to_string(),
        );
        assert!(defined.contains(&key), "{key:?} has no CRD");
    }
}
