//! Kubernetes core objects, as the Kubernetes source publishes them, through the translation
//! and the xDS snapshot: a rotated TLS Secret changes only its SDS secret, a scaled
//! EndpointSlice changes only its EDS assignment (issue 4, "TLS" and "Endpoint resolution"),
//! and the EDS golden cases pass the real Envoy's `--mode validate`.

use std::path::Path;
use std::process::{Command, Stdio};

use legate::api::doc::Document;
use legate::api::{Origin, RawObject};
use legate::translate::{Options, translate};
use legate::xds::resources::{snapshot, static_bootstrap};
use legate::xds::snapshot::{Snapshot, TypeKind};
use prost::Message;
use serde::Deserialize;
use serde_json::{Value, json};

/// Objects come from the API server: a Kubernetes origin, full metadata.
fn raw(value: Value) -> RawObject {
    RawObject {
        origin: Origin::Kubernetes {
            namespace: value["metadata"]["namespace"].as_str().unwrap().into(),
            name: value["metadata"]["name"].as_str().unwrap().into(),
        },
        value: std::sync::Arc::new(Document::from_value(&value).unwrap()),
    }
}

/// Standard base64, as Secret `data` holds it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tls_secret(serial: &str, resource_version: &str) -> RawObject {
    let crt = format!("-----BEGIN CERTIFICATE-----\nMIIB{serial}\n-----END CERTIFICATE-----\n");
    let key = format!("-----BEGIN PRIVATE KEY-----\nMIIE{serial}\n-----END PRIVATE KEY-----\n");
    raw(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "edge-cert", "namespace": "default",
                     "uid": "0b8f7c1e-1111-4c1f-9d55-2d0c4e1f0a01",
                     "resourceVersion": resource_version},
        "data": {"tls.crt": base64(crt.as_bytes()), "tls.key": base64(key.as_bytes())},
    }))
}

fn edge(secret: RawObject, slice_ips: &[&str]) -> Vec<RawObject> {
    let endpoints: Vec<Value> = slice_ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    vec![
        raw(
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Listener",
            "metadata": {"name": "https", "namespace": "default"},
            "spec": {"port": 8443, "protocol": "HTTPS", "securityModel": "XFP",
                     "hostBinding": {"namespace": {"from": "ALL"}}}}),
        ),
        raw(
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
            "metadata": {"name": "edge", "namespace": "default"},
            "spec": {"hostname": "edge.example.com", "tlsSecret": {"name": "edge-cert"}}}),
        ),
        raw(
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
            "metadata": {"name": "echo", "namespace": "default"},
            "spec": {"hostname": "edge.example.com", "prefix": "/", "service": "echo",
                     "resolver": "kubernetes-endpoint"}}),
        ),
        raw(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "echo", "namespace": "default", "resourceVersion": "7"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})),
        raw(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "echo-x1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "echo"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints}),
        ),
        secret,
    ]
}

fn snap(objects: &[RawObject]) -> Snapshot {
    let t = translate(objects, &Options::default());
    assert_eq!(t.failures().count(), 0, "{:#?}", t.errors);
    snapshot(&t.ir, 1, "boot").unwrap()
}

/// The types whose version differs between two snapshots.
fn changed(a: &Snapshot, b: &Snapshot) -> Vec<TypeKind> {
    let (va, vb) = (a.versions(), b.versions());
    TypeKind::ORDER
        .into_iter()
        .filter(|k| va.get(k) != vb.get(k))
        .collect()
}

#[test]
fn rotating_a_tls_secret_changes_only_its_sds_secret() {
    let before = snap(&edge(tls_secret("AAAA", "100"), &["10.0.0.1"]));
    let after = snap(&edge(tls_secret("BBBB", "101"), &["10.0.0.1"]));
    assert_eq!(changed(&before, &after), [TypeKind::Secret]);

    let names = |s: &Snapshot| -> Vec<String> {
        s.get(TypeKind::Secret)
            .unwrap()
            .resources
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(names(&before), names(&after));
    assert_eq!(names(&before).len(), 1);
    let body = |s: &Snapshot| {
        s.get(TypeKind::Secret)
            .unwrap()
            .resources
            .values()
            .next()
            .unwrap()
            .body
            .value
            .clone()
    };
    // The decoded PEM reaches the SDS resource.
    let needle = b"MIIBBBBB";
    assert!(body(&after).windows(needle.len()).any(|w| w == needle));
    assert_ne!(body(&before), body(&after));

    // Only the Secret's metadata changing (a no-op update) changes nothing at all.
    let touched = snap(&edge(tls_secret("AAAA", "102"), &["10.0.0.1"]));
    assert_eq!(changed(&before, &touched), []);
}

#[test]
fn scaling_a_backend_changes_only_its_eds_assignment() {
    let secret = || tls_secret("AAAA", "100");
    let one = snap(&edge(secret(), &["10.0.0.1"]));
    let three = snap(&edge(secret(), &["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
    assert_eq!(changed(&one, &three), [TypeKind::Endpoint]);
    let eds = three.get(TypeKind::Endpoint).unwrap();
    assert_eq!(
        eds.resources.keys().cloned().collect::<Vec<_>>(),
        ["k8s/default/echo/80"]
    );
}

/// The documents of a golden case's `input.yaml`.
fn golden(case: &str) -> Vec<RawObject> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    let text = std::fs::read_to_string(path.join("input.yaml")).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, d)| RawObject {
            origin: Origin::file("input.yaml", i + 1),
            value: std::sync::Arc::new(
                Document::from_value(
                    &serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap(),
                )
                .unwrap(),
            ),
        })
        .filter(|o| !o.doc().is_null())
        .collect()
}

/// EDS clusters, hash policies and ring-hash / maglev / least-request clusters are accepted
/// by the real Envoy (as a static bootstrap, EDS assignments inlined).
#[test]
fn eds_golden_cases_pass_envoy_validate() {
    let Some(envoy) = legate::envoy::locate::for_tests() else {
        return;
    };
    for (case, endpoint_routing) in [
        ("eds-endpoint-resolver", false),
        ("eds-endpoint-routing", true),
        ("eds-load-balancer", false),
    ] {
        let options = Options {
            endpoint_routing,
            ..Options::default()
        };
        let t = translate(&golden(case), &options);
        let snap = snapshot(&t.ir, 1, "boot").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bootstrap.pb");
        std::fs::write(&config, static_bootstrap(&snap).unwrap().encode_to_vec()).unwrap();
        // `output` waits for Envoy; validate mode exits by itself.
        let out = Command::new(&envoy)
            .args([
                "--mode",
                "validate",
                "--disable-hot-restart",
                "-l",
                "info",
                "-c",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: envoy rejected it:\n{log}");
        // Envoy really read this configuration.
        let clusters = format!("loading {} cluster(s)", t.ir.clusters.len());
        assert!(log.contains(&clusters), "{case}: no {clusters:?} in\n{log}");
    }
}
