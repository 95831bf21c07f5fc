//! CustomResourceDefinitions for the getambassador.io kinds legate translates, generated from
//! the `api::*` types (`legate crds`).
//!
//! Names follow Emissary's CRDs so existing manifests apply and `kubectl get mappings` works:
//! group `getambassador.io`, the same plurals and singulars, category `ambassador-crds`, no
//! short names (Emissary defines none), Namespaced, a status subresource.
//!
//! Versions: `v2` and `v3alpha1` are served (Listener: `v3alpha1` only, as in Emissary);
//! `v3alpha1` is stored (Emissary's current storage version, and the one legate watches).
//! legate has no conversion webhook, so `conversion: None`: the API server only relabels
//! `apiVersion`, and both versions carry the same schema. The shapes where v2 and v3alpha1
//! differ (string-or-list fields, `tls: true`, header values `true`) are left open with
//! `x-kubernetes-preserve-unknown-fields`, and the translation reads both.
//!
//! The spec schema comes from `schemars` and is rewritten into a Kubernetes structural schema
//! ([`structural`]): subschemas inlined, unions (`anyOf`) turned into int-or-string or open
//! nodes, and every object keeping unknown fields (`x-kubernetes-preserve-unknown-fields`),
//! since legate accepts unknown fields and warns about them rather than having the API server
//! prune them silently.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::auth_service::AuthServiceSpec;
use super::host::HostSpec;
use super::listener::ListenerSpec;
use super::log_service::LogServiceSpec;
use super::mapping::MappingSpec;
use super::module::ModuleSpec;
use super::rate_limit_service::RateLimitServiceSpec;
use super::tcp_mapping::TcpMappingSpec;
use super::tls_context::TlsContextSpec;
use super::tracing_service::TracingServiceSpec;

/// The API group of every CRD.
pub const GROUP: &str = "getambassador.io";
/// The version the API server stores.
pub const STORAGE_VERSION: &str = "v3alpha1";

/// One custom resource kind and how Kubernetes names it.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    /// Served versions, storage version last.
    pub versions: &'static [&'static str],
    /// Extra `kubectl get` columns: (name, type, JSON path).
    pub columns: &'static [(&'static str, &'static str, &'static str)],
    spec: fn() -> Value,
}

const BOTH: &[&str] = &["v2", "v3alpha1"];

/// Every kind legate defines a CRD for.
pub const KINDS: &[Kind] = &[
    Kind {
        kind: "Mapping",
        plural: "mappings",
        singular: "mapping",
        versions: BOTH,
        columns: &[
            ("Hostname", "string", ".spec.hostname"),
            ("Prefix", "string", ".spec.prefix"),
            ("Service", "string", ".spec.service"),
        ],
        spec: spec_schema::<MappingSpec>,
    },
    Kind {
        kind: "Host",
        plural: "hosts",
        singular: "host",
        versions: BOTH,
        columns: &[("Hostname", "string", ".spec.hostname")],
        spec: spec_schema::<HostSpec>,
    },
    Kind {
        kind: "Listener",
        plural: "listeners",
        singular: "listener",
        versions: &["v3alpha1"],
        columns: &[
            ("Port", "integer", ".spec.port"),
            ("Protocol", "string", ".spec.protocol"),
            ("Security", "string", ".spec.securityModel"),
        ],
        spec: spec_schema::<ListenerSpec>,
    },
    Kind {
        kind: "TLSContext",
        plural: "tlscontexts",
        singular: "tlscontext",
        versions: BOTH,
        columns: &[],
        spec: spec_schema::<TlsContextSpec>,
    },
    Kind {
        kind: "Module",
        plural: "modules",
        singular: "module",
        versions: BOTH,
        columns: &[],
        spec: spec_schema::<ModuleSpec>,
    },
    Kind {
        kind: "TCPMapping",
        plural: "tcpmappings",
        singular: "tcpmapping",
        versions: BOTH,
        columns: &[
            ("Port", "integer", ".spec.port"),
            ("Service", "string", ".spec.service"),
        ],
        spec: spec_schema::<TcpMappingSpec>,
    },
    // AuthService and RateLimitService (docs/design.md#authservice).
    Kind {
        kind: "AuthService",
        plural: "authservices",
        singular: "authservice",
        versions: BOTH,
        columns: &[("Service", "string", ".spec.auth_service")],
        spec: spec_schema::<AuthServiceSpec>,
    },
    Kind {
        kind: "RateLimitService",
        plural: "ratelimitservices",
        singular: "ratelimitservice",
        versions: BOTH,
        columns: &[("Service", "string", ".spec.service")],
        spec: spec_schema::<RateLimitServiceSpec>,
    },
    // LogService / TracingService.
    Kind {
        kind: "LogService",
        plural: "logservices",
        singular: "logservice",
        versions: BOTH,
        columns: &[
            ("Service", "string", ".spec.service"),
            ("Driver", "string", ".spec.driver"),
        ],
        spec: spec_schema::<LogServiceSpec>,
    },
    Kind {
        kind: "TracingService",
        plural: "tracingservices",
        singular: "tracingservice",
        versions: BOTH,
        columns: &[
            ("Service", "string", ".spec.service"),
            ("Driver", "string", ".spec.driver"),
        ],
        spec: spec_schema::<TracingServiceSpec>,
    },
];

/// The CRDs, in [`KINDS`] order.
pub fn crds() -> Vec<Value> {
    KINDS.iter().map(crd).collect()
}

/// The CRDs as one multi-document YAML stream, with a header saying how to regenerate it.
pub fn crds_yaml() -> String {
    let mut out = String::from(
        "# getambassador.io CustomResourceDefinitions for legate.\n\
         # GENERATED from the Rust types in src/api/ (src/api/crd.rs): do not edit.\n\
         # Regenerate with `legate crds > image/kubernetes/crds.yaml`\n\
         # (or `UPDATE_CRDS=1 cargo test --test crds`).\n",
    );
    for crd in crds() {
        out.push_str("---\n");
        // Serializing a serde_json::Value to YAML cannot fail.
        out.push_str(&serde_yaml::to_string(&crd).unwrap_or_default());
    }
    out
}

fn crd(k: &Kind) -> Value {
    let spec = (k.spec)();
    let columns: Vec<Value> = k
        .columns
        .iter()
        .map(|(name, ty, path)| json!({"name": name, "type": ty, "jsonPath": path}))
        .chain([json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})])
        .collect();
    let versions: Vec<Value> = k
        .versions
        .iter()
        .map(|v| {
            json!({
                "name": v,
                "served": true,
                "storage": *v == STORAGE_VERSION,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "description": format!("{} (getambassador.io/{v}), as legate reads it.", k.kind),
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            })
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{GROUP}", k.plural),
            "labels": {"app.kubernetes.io/name": "legate"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": k.kind,
                "listKind": format!("{}List", k.kind),
                "plural": k.plural,
                "singular": k.singular,
                "categories": ["ambassador-crds"],
            },
            "scope": "Namespaced",
            "conversion": {"strategy": "None"},
            "versions": versions,
        },
    })
}

/// The structural schema of a spec type.
fn spec_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    structural(&mut schema);
    if let Some(m) = schema.as_object_mut() {
        m.remove("title");
        m.remove("nullable");
    }
    schema
}

/// Integer and number formats Kubernetes knows; others (`uint32`, …) are dropped, their
/// bounds stay as `minimum` / `maximum`.
const FORMATS: &[&str] = &["int32", "int64", "float", "double"];

/// Rewrites a schemars (OpenAPI 3.0) schema, in place, into a Kubernetes structural schema.
pub fn structural(schema: &mut Value) {
    let Some(m) = schema.as_object_mut() else {
        // `true` (any value): an open node.
        *schema = json!({"x-kubernetes-preserve-unknown-fields": true});
        return;
    };
    for union in ["anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = m.remove(union) {
            union_node(m, branches);
        }
    }
    for key in [
        "$schema",
        "title",
        "examples",
        "example",
        "$defs",
        "definitions",
    ] {
        m.remove(key);
    }
    if m.get("default").is_some_and(Value::is_null) {
        m.remove("default");
    }
    if let Some(f) = m.get("format").and_then(Value::as_str)
        && !FORMATS.contains(&f)
    {
        m.remove("format");
    }
    // `nullable: true` already admits null; Kubernetes wants enum values of the node's type.
    if let Some(Value::Array(values)) = m.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        for v in props.values_mut() {
            structural(v);
        }
    }
    if let Some(items) = m.get_mut("items") {
        structural(items);
    }
    match m.remove("additionalProperties") {
        // A map of values of one schema.
        Some(Value::Object(inner)) if !m.contains_key("properties") && !inner.is_empty() => {
            let mut v = Value::Object(inner);
            structural(&mut v);
            if v.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
            } else {
                m.insert("additionalProperties".into(), v);
            }
        }
        Some(Value::Bool(false)) | None => {}
        // Flattened extra fields, or a map of anything.
        Some(_) => {
            m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
        }
    }
    let is_object = m.get("type").and_then(Value::as_str) == Some("object");
    if is_object && m.contains_key("properties") {
        m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
    }
    let typed = m.contains_key("type")
        || m.contains_key("x-kubernetes-int-or-string")
        || m.contains_key("x-kubernetes-preserve-unknown-fields");
    if !typed {
        m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
    }
}

/// Is this union branch the `null` of an `Option`?
fn is_null(branch: &Value) -> bool {
    branch.get("type").and_then(Value::as_str) == Some("null")
        || branch.get("enum") == Some(&json!([null]))
}

/// The non-null branches of a union, nested unions flattened; sets `nullable` on a null one.
fn flatten_union(branches: Vec<Value>, out: &mut Vec<Value>, nullable: &mut bool) {
    for b in branches {
        if is_null(&b) {
            *nullable = true;
            continue;
        }
        let nested = ["anyOf", "oneOf"]
            .into_iter()
            .find_map(|k| b.get(k).and_then(Value::as_array).cloned());
        match nested {
            Some(inner) if b.get("type").is_none() => flatten_union(inner, out, nullable),
            _ => out.push(b),
        }
    }
}

/// A union (`anyOf` / `oneOf`, from an `Option` or an untagged enum): the one remaining
/// branch merged into the node, integer-or-string, or an open node; nullable if one branch
/// was null.
fn union_node(m: &mut Map<String, Value>, branches: Vec<Value>) {
    let mut rest = Vec::new();
    let mut nullable = false;
    flatten_union(branches, &mut rest, &mut nullable);
    if nullable {
        m.insert("nullable".into(), true.into());
    }
    let mut types: Vec<&str> = rest
        .iter()
        .filter_map(|b| b.get("type").and_then(Value::as_str))
        .collect();
    types.sort_unstable();
    types.dedup();
    if let [one] = rest.as_slice() {
        for (k, v) in one.as_object().into_iter().flatten() {
            // The field's own description wins over its type's.
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    } else if types == ["integer", "string"] && types.len() == rest.len() {
        m.insert("x-kubernetes-int-or-string".into(), true.into());
        m.remove("type");
    } else {
        m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
        m.remove("type");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a schema and returns every node that breaks the structural rules legate relies on.
    fn violations(v: &Value, path: &str, out: &mut Vec<String>) {
        let Some(m) = v.as_object() else {
            out.push(format!("{path}: not an object"));
            return;
        };
        for bad in ["anyOf", "oneOf", "allOf", "$ref", "not"] {
            if m.contains_key(bad) {
                out.push(format!("{path}: has {bad}"));
            }
        }
        let open = m.contains_key("x-kubernetes-preserve-unknown-fields")
            || m.contains_key("x-kubernetes-int-or-string");
        if !m.contains_key("type") && !open {
            out.push(format!("{path}: no type"));
        }
        if m.contains_key("properties") && m.contains_key("additionalProperties") {
            out.push(format!("{path}: properties and additionalProperties"));
        }
        if let Some(f) = m.get("format").and_then(Value::as_str)
            && !FORMATS.contains(&f)
        {
            out.push(format!("{path}: format {f}"));
        }
        for (k, sub) in m
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            violations(sub, &format!("{path}.{k}"), out);
        }
        for key in ["items", "additionalProperties"] {
            if let Some(sub) = m.get(key) {
                violations(sub, &format!("{path}[{key}]"), out);
            }
        }
    }

    #[test]
    fn every_schema_is_structural() {
        for k in KINDS {
            let spec = (k.spec)();
            let mut out = Vec::new();
            violations(&spec, k.kind, &mut out);
            assert!(out.is_empty(), "{out:#?}");
            assert_eq!(spec["type"], "object", "{}", k.kind);
            assert_eq!(spec["x-kubernetes-preserve-unknown-fields"], true);
        }
    }

    #[test]
    fn mapping_fields_have_their_types() {
        let s = spec_schema::<MappingSpec>();
        let p = &s["properties"];
        assert_eq!(p["prefix"]["type"], "string");
        assert_eq!(p["prefix_regex"]["type"], "boolean");
        assert_eq!(p["timeout_ms"]["type"], "integer");
        assert_eq!(p["weight"]["minimum"], 0);
        assert_eq!(p["circuit_breakers"]["type"], "array");
        assert_eq!(
            p["circuit_breakers"]["items"]["properties"]["max_connections"]["type"],
            "integer"
        );
        assert_eq!(p["load_balancer"]["properties"]["policy"]["type"], "string");
        assert_eq!(p["load_balancer"]["required"], json!(["policy"]));
        assert_eq!(p["add_request_headers"]["type"], "object");
        // String or list (v2 and v3 both): open.
        assert_eq!(
            p["ambassador_id"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            p["cors"]["properties"]["max_age"]["x-kubernetes-int-or-string"],
            true
        );
        // Documentation travels with the schema.
        assert!(
            p["prefix"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("prefix"))
        );
    }

    #[test]
    fn host_enums_and_camel_case() {
        let s = spec_schema::<HostSpec>();
        let p = &s["properties"];
        assert_eq!(p["tlsSecret"]["properties"]["name"]["type"], "string");
        assert_eq!(
            p["requestPolicy"]["properties"]["insecure"]["properties"]["action"]["enum"],
            json!(["Redirect", "Reject", "Route"])
        );
        assert_eq!(
            p["mappingSelector"]["properties"]["matchLabels"]["type"],
            "object"
        );
        assert_eq!(
            p["mappingSelector"]["properties"]["matchLabels"]["additionalProperties"]["type"],
            "string"
        );
    }
}
