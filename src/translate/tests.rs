//! Unit tests of choices the goldens do not show on their own.

use serde_json::json;

use super::*;
use crate::api::{Origin, RawObject};
use crate::ir::{RouteAction, RouteMatch};

fn raw(doc: usize, value: serde_json::Value) -> RawObject {
    RawObject::new(Origin::file("t.yaml", doc), value)
}

fn listener_and_host() -> Vec<RawObject> {
    vec![
        raw(
            1,
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Listener",
            "metadata": {"name": "l", "namespace": "default"},
            "spec": {"port": 8080, "protocol": "HTTP", "securityModel": "INSECURE",
                     "hostBinding": {"namespace": {"from": "ALL"}}}}),
        ),
        raw(
            2,
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {"hostname": "*", "requestPolicy": {"insecure": {"action": "Route"}}}}),
        ),
    ]
}

fn mapping(doc: usize, name: &str, spec: serde_json::Value) -> RawObject {
    raw(
        doc,
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
        "metadata": {"name": name}, "spec": spec}),
    )
}

fn user_routes(t: &Translation) -> Vec<(String, RouteMatch)> {
    t.ir.route_tables
        .iter()
        .flat_map(|rt| &rt.virtual_hosts)
        .flat_map(|v| &v.routes)
        .filter_map(|r| match &r.action {
            RouteAction::Forward(f) if !r.name.as_deref().unwrap_or("").starts_with("builtin/") => {
                Some((f.clusters[0].name.clone(), r.matcher.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The objects whose failure says `message`, in report order.
fn failed_with<'t>(t: &'t Translation, message: &str) -> Vec<&'t str> {
    t.failures()
        .filter(|e| e.message.contains(message))
        .map(|e| e.name.as_str())
        .collect()
}

/// Canary weights are emitted as Emissary's cumulative runtime_fraction thresholds on
/// consecutive routes; Envoy draws one number per request, so the observable share of each
/// route is its threshold minus the previous one. This checks the shares equal the weights.
#[test]
fn canary_thresholds_give_the_configured_shares() {
    let mut objs = listener_and_host();
    objs.push(mapping(
        3,
        "a",
        json!({"hostname": "*", "prefix": "/c/", "service": "a", "weight": 30}),
    ));
    objs.push(mapping(
        4,
        "b",
        json!({"hostname": "*", "prefix": "/c/", "service": "b", "weight": 20}),
    ));
    objs.push(mapping(
        5,
        "c",
        json!({"hostname": "*", "prefix": "/c/", "service": "c"}),
    ));
    let t = translate(&objs, &Options::default());
    let routes = user_routes(&t);
    let mut prev = 0;
    let shares: Vec<(String, u32)> = routes
        .iter()
        .map(|(c, m)| {
            let thr = m.runtime_fraction.as_ref().map_or(100, |f| f.percent);
            let share = thr - prev;
            prev = thr;
            (c.clone(), share)
        })
        .collect();
    assert_eq!(
        shares,
        vec![
            ("cluster_a_default".to_string(), 30),
            ("cluster_b_default".to_string(), 20),
            ("cluster_c_default".to_string(), 50),
        ]
    );
}

#[test]
fn missing_namespace_means_the_ambassador_namespace() {
    let mut objs = listener_and_host();
    objs.push(mapping(
        3,
        "m",
        json!({"hostname": "*", "prefix": "/m/", "service": "svc"}),
    ));
    let options = Options {
        ambassador_namespace: "edge".into(),
        ..Options::default()
    };
    let t = translate(&objs, &options);
    // The Mapping lives in `edge` (the ambassador namespace), so `svc` is not qualified.
    assert_eq!(user_routes(&t)[0].0, "cluster_svc_edge");
}

#[test]
fn probe_routes_target_the_probe_address() {
    let options = Options {
        probe_address: ("127.0.0.1".into(), 9999),
        ..Options::default()
    };
    let t = translate(&listener_and_host(), &options);
    let probe =
        t.ir.clusters
            .iter()
            .find(|c| c.name == "cluster_127_0_0_1_9999_default")
            .expect("probe cluster");
    assert_eq!(
        probe.discovery,
        crate::ir::Discovery::StrictDns(vec![crate::ir::Endpoint::new("127.0.0.1", 9999)])
    );
    let names: Vec<_> = t.ir.route_tables[0].virtual_hosts[0]
        .routes
        .iter()
        .filter_map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["builtin/check_ready", "builtin/check_alive"]);
}

#[test]
fn garbage_never_panics_and_yields_a_valid_ir() {
    let mut objs = listener_and_host();
    for (i, v) in [
        json!(null),
        json!(42),
        json!({"kind": "Mapping"}),
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping", "metadata": {"name": 5}}),
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Listener", "metadata": {"name": "x"}, "spec": []}),
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host", "metadata": {"name": "x"}, "spec": {"tlsSecret": 3}}),
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "TCPMapping", "metadata": {"name": "x"}, "spec": {"port": -1}}),
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping", "metadata": {"name": "y"}, "spec": {"prefix": "/", "service": "[::1"}}),
    ]
    .into_iter()
    .enumerate()
    {
        objs.push(raw(10 + i, v));
    }
    let t = translate(&objs, &Options::default());
    assert_eq!(t.ir.validate(), Ok(()));
    assert!(t.failures().count() >= 5, "{:#?}", t.errors);
}

#[test]
fn malformed_secret_errors_never_quote_key_material() {
    let objects = [raw(
        1,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"},
            "type": "kubernetes.io/tls",
            "data": "TOP-SECRET-KEY-MATERIAL"
        }),
    )];
    let t = translate(&objects, &Options::default());
    let text: Vec<String> = t.errors.iter().map(|e| e.to_string()).collect();
    assert!(!text.is_empty(), "a malformed Secret is reported");
    assert!(text.iter().all(|e| !e.contains("TOP-SECRET")), "{text:?}");
}

/// Each TLS chain's route table is named from its SNI, so adding or removing another Host
/// never renames (and so never empties, for Envoy) an existing chain's table.
#[test]
fn tls_route_table_names_stay_when_hosts_change() {
    let https = raw(
        1,
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Listener",
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {"port": 8443, "protocol": "HTTPS", "securityModel": "XFP",
                 "hostBinding": {"namespace": {"from": "ALL"}}}}),
    );
    let secret = |doc: usize, name: &str| {
        raw(
            doc,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "default"},
            "stringData": {"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                           "tls.key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}}),
        )
    };
    let host = |doc: usize, name: &str, hostname: &str| {
        raw(
            doc,
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"hostname": hostname, "tlsSecret": {"name": format!("{name}-cert")}}}),
        )
    };
    let tables = |objs: &[RawObject]| -> Vec<(String, String)> {
        let t = translate(objs, &Options::default());
        t.ir.listeners
            .iter()
            .flat_map(|l| &l.filter_chains)
            .filter_map(|c| match &c.action {
                crate::ir::ChainAction::Http(h) => Some((c.name.clone(), h.route_table.clone())),
                crate::ir::ChainAction::Tcp(_) => None,
            })
            .collect()
    };
    let one = vec![
        https.clone(),
        secret(2, "b-cert"),
        host(3, "b", "b.example.com"),
    ];
    let mut more = one.clone();
    more.extend([
        secret(4, "a-cert"),
        host(5, "a", "a.example.com"),
        secret(6, "any-cert"),
        host(7, "any", "*"),
    ]);
    let before = tables(&one);
    let after = tables(&more);
    let b = (
        "httpshost-b".to_string(),
        "s/https/b.example.com".to_string(),
    );
    assert!(before.contains(&b), "{before:?}");
    assert!(after.contains(&b), "{after:?}");
    assert!(after.contains(&("httpshost-any".into(), "s/https/*".into())));
    assert!(after.contains(&("httphost-shared".into(), "s/http".into())));
}

/// Members of a canary group must agree on `labels` as read (docs/design.md#groups-canaries-
/// and-weights): a different group name is the same labels, a different descriptor is not, and
/// neither are no labels at all.
#[test]
fn canary_members_agree_on_labels_as_read() {
    let labels = |group: &str, value: &str| json!({"ambassador": [{group: [{"generic_key": {"value": value}}, "remote_address"]}]});
    let mut objs = listener_and_host();
    for (doc, name, group, value) in [
        (3, "a", "one", "v"),
        (4, "b", "renamed", "v"),
        (5, "c", "one", "other"),
    ] {
        objs.push(mapping(
            doc,
            name,
            json!({"hostname": "*", "prefix": "/c/", "service": name, "weight": 30,
                   "labels": labels(group, value)}),
        ));
    }
    objs.push(mapping(
        6,
        "d",
        json!({"hostname": "*", "prefix": "/c/", "service": "d", "weight": 30}),
    ));
    let t = translate(&objs, &Options::default());
    let conflicts = failed_with(&t, "conflicts with Mapping");
    assert_eq!(conflicts, ["default/c", "default/d"], "{:#?}", t.errors);
    let clusters: Vec<String> = user_routes(&t).into_iter().map(|(c, _)| c).collect();
    assert_eq!(clusters, ["cluster_a_default", "cluster_b_default"]);
}

/// The fields that must agree within a group are compared as written, and only between the
/// members of one group (`MappingPlan::consistency`, made again from the Mapping when needed):
/// the same fields in another order agree, a different timeout, load balancer or circuit
/// breaker does not, and a Mapping alone in its group is never compared.
#[test]
fn canary_members_agree_on_the_fields_as_written() {
    let spec = |service: &str, extra: serde_json::Value| {
        let mut s = json!({"hostname": "*", "prefix": "/g/", "service": service, "weight": 20,
                           "connect_timeout_ms": 1500, "load_balancer": {"policy": "round_robin"},
                           "circuit_breakers": [{"max_connections": 10}]});
        for (k, v) in extra.as_object().expect("an object") {
            s[k] = v.clone();
        }
        s
    };
    let mut objs = listener_and_host();
    objs.extend([
        mapping(3, "a", spec("a", json!({}))),
        // The same fields, written in another order: agrees.
        mapping(
            4,
            "b",
            json!({"circuit_breakers": [{"max_connections": 10}], "weight": 20,
                   "load_balancer": {"policy": "round_robin"}, "service": "b",
                   "connect_timeout_ms": 1500, "prefix": "/g/", "hostname": "*"}),
        ),
        mapping(5, "c", spec("c", json!({"connect_timeout_ms": 2500}))),
        mapping(
            6,
            "d",
            spec("d", json!({"load_balancer": {"policy": "least_request"}})),
        ),
        mapping(
            7,
            "e",
            spec("e", json!({"circuit_breakers": [{"max_connections": 11}]})),
        ),
        // Alone in its group, whatever its fields.
        mapping(
            8,
            "f",
            spec("f", json!({"prefix": "/alone/", "connect_timeout_ms": 9})),
        ),
    ]);
    let t = translate(&objs, &Options::default());
    let conflicts = failed_with(&t, "conflicts with Mapping default/a");
    assert_eq!(
        conflicts,
        ["default/c", "default/d", "default/e"],
        "{:#?}",
        t.errors
    );
    let clusters: Vec<String> = user_routes(&t).into_iter().map(|(c, _)| c).collect();
    assert!(
        clusters.iter().any(|c| c.starts_with("cluster_f")),
        "{clusters:?}"
    );
    assert!(
        clusters.iter().any(|c| c.starts_with("cluster_a")),
        "{clusters:?}"
    );
    assert!(
        clusters.iter().any(|c| c.starts_with("cluster_b")),
        "{clusters:?}"
    );
    assert!(
        !clusters.iter().any(|c| c.starts_with("cluster_c")),
        "{clusters:?}"
    );
}

/// Typing a Mapping hides the value of `labels` (only its presence is typed) and changes
/// nothing else: unknown fields and wrongly typed fields are reported as before.
#[test]
fn mapping_typing_notes_labels_and_keeps_the_rest() {
    use crate::api::doc::Document;
    use crate::api::mapping::{MappingSpec, Present};
    use serde::Deserialize;
    let from_value = |v: &serde_json::Value| {
        let doc = Document::from_value(v).expect("a small document");
        MappingSpec::from_doc(doc.root())
    };
    let spec = json!({"prefix": "/x/", "service": "x", "labels": {"ambassador": "not a list"},
                      "colour": "blue"});
    let typed = from_value(&spec).expect("types");
    assert_eq!(typed.labels, Some(Present));
    assert_eq!(typed.prefix.as_deref(), Some("/x/"));
    assert_eq!(typed.extra.keys().collect::<Vec<_>>(), ["colour"]);
    assert_eq!(typed, MappingSpec::deserialize(&spec).expect("types"));
    let null = json!({"prefix": "/x/", "labels": null});
    assert_eq!(from_value(&null).expect("types").labels, None);
    let wrong = json!({"prefix": "/x/", "timeout_ms": "soon", "labels": {}});
    let (a, b) = (
        from_value(&wrong).expect_err("timeout_ms is a number"),
        MappingSpec::deserialize(&wrong).expect_err("timeout_ms is a number"),
    );
    assert_eq!(a.to_string(), b.to_string());
}
