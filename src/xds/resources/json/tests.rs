use std::path::PathBuf;

use prost::Message;
use prost_reflect::prost_types::FileDescriptorSet;

use super::*;
use crate::xds::resources::tests::{build, fixture};

#[test]
fn descriptors_come_from_the_envoy_types_in_cargo_lock() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"envoy-types\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .expect("envoy-types is locked");
    assert_eq!(
        version.trim_matches('"'),
        DESCRIPTORS_FROM,
        "envoy-types changed: run `cargo test --lib regenerate_descriptors -- --ignored` with \
         LEGATE_WRITE_DESCRIPTORS=1 and update DESCRIPTORS_FROM"
    );
}

/// Rebuilds `descriptors.bin` from the envoy-types source (found in `$CARGO_HOME`'s registry,
/// or at `$ENVOY_TYPES_DIR`) and checks it matches; writes it when LEGATE_WRITE_DESCRIPTORS=1.
#[test]
#[ignore = "needs the envoy-types source; run after bumping envoy-types"]
fn regenerate_descriptors() {
    let full = std::fs::read(envoy_types_descriptors()).unwrap();
    let mut set = FileDescriptorSet::decode(full.as_slice()).unwrap();
    for file in &mut set.file {
        file.source_code_info = None;
    }
    let stripped = set.encode_to_vec();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/xds/resources/json/descriptors.bin"
    );
    if std::env::var_os("LEGATE_WRITE_DESCRIPTORS").is_some_and(|v| v == "1") {
        std::fs::write(path, &stripped).unwrap();
        return;
    }
    assert!(stripped == DESCRIPTORS, "descriptors.bin is stale");
}

fn envoy_types_descriptors() -> PathBuf {
    let generated = "src/generated/types.bin";
    if let Some(dir) = std::env::var_os("ENVOY_TYPES_DIR") {
        return PathBuf::from(dir).join(generated);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let crate_dir = format!("envoy-types-{DESCRIPTORS_FROM}");
    std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("a cargo registry")
        .flatten()
        .map(|index| index.path().join(&crate_dir).join(generated))
        .find(|p| p.exists())
        .expect("envoy-types source in the cargo registry; set ENVOY_TYPES_DIR")
}

#[test]
fn snapshot_json_groups_resources_in_envoy_form() {
    let json = to_json(&build(&fixture::rich_ir())).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "clusters",
            "endpoints",
            "extension_configs",
            "listeners",
            "route_configurations",
            "secrets"
        ]
    );
    let edge = &json["listeners"][0];
    assert_eq!(edge["name"], "edge");
    assert_eq!(edge["stat_prefix"], "edge", "snake_case field names");
    assert_eq!(
        edge["address"]["socket_address"]["port_value"], 8443,
        "{edge}"
    );
    let hcm = &edge["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(hcm["rds"]["route_config_name"], "edge/https");
    assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST");
    assert_eq!(hcm["common_http_protocol_options"]["idle_timeout"], "300s");

    let plain = &json["route_configurations"][1];
    assert_eq!(plain["name"], "edge/plain");
    let canary = &plain["virtual_hosts"][0]["routes"][0];
    assert_eq!(canary["route"]["idle_timeout"], "120.500s");
    assert_eq!(canary["route"]["timeout"], "0s");
    assert_eq!(
        canary["typed_per_filter_config"]["envoy.filters.http.cors"]["allow_methods"],
        "GET, POST"
    );
    assert_eq!(json["endpoints"].as_array().unwrap().len(), 2);
}

#[test]
fn secrets_are_redacted_in_json() {
    let json = to_json(&build(&fixture::rich_ir())).unwrap();
    let text = json.to_string();
    let key_body = fixture::KEY.lines().nth(1).unwrap();
    assert!(!text.contains(key_body), "private key leaked");
    assert!(!text.contains("PRIVATE KEY"), "private key leaked");
    let cert = json["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "server-cert")
        .unwrap();
    let key = cert["tls_certificate"]["private_key"]["inline_string"]
        .as_str()
        .unwrap();
    assert_eq!(key, format!("<redacted {} bytes>", fixture::KEY.len()));
    // Certificates are public and stay.
    assert!(
        cert["tls_certificate"]["certificate_chain"]["inline_string"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
}

/// The streamed document is byte for byte the pretty print of [`to_json`]'s tree, for a
/// snapshot with every resource type, and for a large one (rendered on several threads) and an
/// empty one.
#[test]
fn write_json_prints_what_to_json_prints() {
    let check = |snapshot: &Snapshot| {
        let want = serde_json::to_string_pretty(&to_json(snapshot).unwrap()).unwrap();
        let mut got = Vec::new();
        write_json(snapshot, &mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
    };
    check(&build(&fixture::rich_ir()));
    let mut large = fixture::rich_ir();
    let template = large.clusters[0].clone();
    for i in 0..300 {
        let mut c = template.clone();
        c.name = format!("extra-{i:03}");
        large.clusters.push(c);
    }
    large.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    check(&build(&large));
    check(&build(&crate::ir::Ir::default()));
}
