//! `image/kubernetes/` parses and agrees with the binary: probe paths and port, drain deadline,
//! and RBAC covering exactly what the Kubernetes source watches.

#[path = "common/docker.rs"]
mod docker;

use std::collections::BTreeSet;
use std::path::Path;

use legate::config::{DrainSettings, ProbeSettings};
use legate::source::kubernetes::WATCHED;
use serde::Deserialize;
use serde_yaml::Value;

fn manifests() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/kubernetes");
    let mut docs = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    docs
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn container(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn probes_use_the_binary_paths_and_port() {
    let docs = manifests();
    let c = container(&docs);
    let port = u64::from(ProbeSettings::default().address.port());
    for (probe, path) in [
        ("readinessProbe", "/ready"),
        ("livenessProbe", "/live"),
        ("startupProbe", "/live"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_u64(), Some(port), "{probe}");
        assert!(c[probe]["periodSeconds"].as_u64().unwrap() > 0);
    }
    let ports: BTreeSet<u64> = c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    assert!(ports.contains(&port));
}

#[test]
fn grace_period_covers_the_drain_deadline() {
    let docs = manifests();
    let deployment = one(&docs, "Deployment");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let grace_ms = pod["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000;
    let drain = DrainSettings::default();
    assert!(
        grace_ms >= drain.deadline_ms + drain.stop_timeout_ms,
        "grace {grace_ms} ms < drain deadline {} ms + stop {} ms",
        drain.deadline_ms,
        drain.stop_timeout_ms
    );
}

#[test]
fn runs_non_root_read_only_without_capabilities() {
    let docs = manifests();
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    let c = container(&docs);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_ne!(pod["securityContext"]["runAsUser"].as_u64(), Some(0));
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&sc["capabilities"]["drop"]), vec!["ALL"]);
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    // The runtime dir is writable.
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let tmp = mounts
        .iter()
        .find(|m| m["mountPath"] == "/tmp")
        .expect("/tmp mounted");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == tmp["name"])
        .expect("the /tmp volume");
    assert!(volume["emptyDir"].is_mapping());
    let requests = &c["resources"]["requests"];
    assert!(requests["cpu"].is_string() && requests["memory"].is_string());
}

#[test]
fn rbac_grants_read_only_access_to_exactly_what_is_watched() {
    let docs = manifests();
    let role = one(&docs, "ClusterRole");
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        let verbs: BTreeSet<String> = strings(&rule["verbs"]).into_iter().collect();
        assert!(
            verbs
                .iter()
                .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
            "only read verbs: {verbs:?}"
        );
        assert!(
            verbs.contains("list") && verbs.contains("watch"),
            "{verbs:?}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert((group.clone(), resource));
            }
        }
    }
    let watched: BTreeSet<(String, String)> = WATCHED
        .iter()
        .map(|w| (w.group.to_string(), w.plural.to_string()))
        .collect();
    assert_eq!(granted, watched);

    let sa = one(&docs, "ServiceAccount");
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subject = &binding["subjects"][0];
    assert_eq!(subject["kind"], "ServiceAccount");
    assert_eq!(subject["name"], sa["metadata"]["name"]);
    assert_eq!(subject["namespace"], sa["metadata"]["namespace"]);
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
}

#[test]
fn service_targets_the_container_ports() {
    let docs = manifests();
    let service = one(&docs, "Service");
    let c = container(&docs);
    let container_ports: BTreeSet<u64> = c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    let mut targets = BTreeSet::new();
    for port in service["spec"]["ports"].as_sequence().unwrap() {
        let target = port["targetPort"].as_u64().unwrap();
        assert!(container_ports.contains(&target), "{target}");
        targets.insert(target);
    }
    assert_eq!(targets, [8080, 8443].into());
    let labels = &one(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v);
    }
}

/// The Deployment asks Kubernetes for what the image tests ask Docker for (tests/image.rs runs
/// every legate container with `docker::HARDENED`), and for no service links.
#[test]
fn pod_spec_matches_the_hardening_the_image_tests_prove() {
    let docs = manifests();
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    let c = container(&docs);
    let sc = &c["securityContext"];
    let mut flags = docker::HARDENED.iter();
    while let Some(flag) = flags.next() {
        match *flag {
            "--read-only" => assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true)),
            "--tmpfs" => {
                let path = flags.next().unwrap().split(':').next().unwrap();
                let mount = c["volumeMounts"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .find(|m| m["mountPath"] == path)
                    .unwrap_or_else(|| panic!("{path} is mounted"));
                let volume = pod["volumes"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == mount["name"])
                    .unwrap();
                assert!(volume["emptyDir"].is_mapping(), "{path} is an emptyDir");
            }
            "--cap-drop" => {
                let cap = flags.next().unwrap();
                assert_eq!(strings(&sc["capabilities"]["drop"]), vec![cap.to_string()]);
            }
            "--security-opt" => {
                assert_eq!(*flags.next().unwrap(), "no-new-privileges");
                assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
            }
            other => panic!("no pod-spec check for docker flag {other}"),
        }
    }
    for ctx in [&pod["securityContext"], sc] {
        assert_eq!(ctx["runAsUser"].as_u64(), Some(docker::IMAGE_UID));
        assert_eq!(ctx["runAsNonRoot"].as_bool(), Some(true));
    }
    assert_eq!(
        pod["securityContext"]["runAsGroup"].as_u64(),
        Some(docker::IMAGE_UID)
    );
    // Service links would put LEGATE_SERVICE_HOST, LEGATE_PORT=tcp://… in the environment;
    // legate ignores them (src/config/load.rs), and the Deployment does not ask for them.
    assert_eq!(pod["enableServiceLinks"].as_bool(), Some(false));
    // The image chooses its source (in-cluster → Kubernetes): no command or args needed.
    assert!(c["command"].is_null() && c["args"].is_null(), "{c:?}");
}

/// image/compose.yaml runs legate as the image tests do (`docker::HARDENED`), with the
/// quickstart mounted read-only at the image's default config dir.
#[test]
fn compose_quickstart_runs_legate_hardened_with_the_quickstart_at_config() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("image/compose.yaml");
    let compose: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let legate = &compose["services"]["legate"];
    assert_eq!(legate["image"].as_str(), Some("legate:latest"));
    assert!(legate["command"].is_null(), "the image chooses its source");
    assert_eq!(
        strings(&legate["volumes"]),
        vec!["../examples/quickstart:/config:ro"]
    );
    let mut flags = docker::HARDENED.iter();
    while let Some(flag) = flags.next() {
        match *flag {
            "--read-only" => assert_eq!(legate["read_only"].as_bool(), Some(true)),
            "--tmpfs" => {
                let path = flags.next().unwrap().split(':').next().unwrap();
                assert!(
                    strings(&legate["tmpfs"])
                        .iter()
                        .any(|t| t.split(':').next() == Some(path)),
                    "{path} is a tmpfs"
                );
            }
            "--cap-drop" => assert_eq!(
                strings(&legate["cap_drop"]),
                vec![flags.next().unwrap().to_string()]
            ),
            "--security-opt" => assert_eq!(
                strings(&legate["security_opt"]),
                vec![flags.next().unwrap().to_string()]
            ),
            other => panic!("no compose check for docker flag {other}"),
        }
    }
    // the quickstart's Mappings send /demo/ to 127.0.0.1:9000: legate shares the demo's network
    assert_eq!(legate["network_mode"].as_str(), Some("service:demo"));
    let ports = strings(&compose["services"]["demo"]["ports"]);
    assert!(ports.contains(&"8080:8080".to_string()) && ports.contains(&"8877:8877".to_string()));
}
