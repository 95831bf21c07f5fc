//! Endpoint resolution through the whole translation: which resolver applies, which endpoints
//! are used, and what changes when a backend scales.

use serde_json::{Value, json};

use crate::api::{Origin, RawObject};
use crate::ir::{Discovery, Endpoint, HashPolicy, LbPolicy, RouteAction};
use crate::translate::{Options, Translation, translate};

fn raw(value: Value) -> RawObject {
    let origin = Origin::Kubernetes {
        namespace: value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .into(),
        name: value["metadata"]["name"].as_str().unwrap_or("").into(),
    };
    RawObject::new(origin, value)
}

fn base() -> Vec<RawObject> {
    vec![
        raw(
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Listener",
            "metadata": {"name": "l", "namespace": "default"},
            "spec": {"port": 8080, "protocol": "HTTP", "securityModel": "INSECURE",
                     "hostBinding": {"namespace": {"from": "ALL"}}}}),
        ),
        raw(
            json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Host",
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {"hostname": "*", "requestPolicy": {"insecure": {"action": "Route"}}}}),
        ),
    ]
}

fn mapping(ns: &str, name: &str, spec: Value) -> RawObject {
    let mut spec = spec;
    spec["hostname"] = json!("*");
    raw(
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping",
        "metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
}

fn service(ns: &str, name: &str, ports: Value) -> RawObject {
    raw(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": ports}}))
}

fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    family: &str,
    ports: Value,
    endpoints: Value,
) -> RawObject {
    raw(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family, "ports": ports, "endpoints": endpoints}),
    )
}

fn ep(ip: &str, ready: Option<bool>, terminating: Option<bool>) -> Value {
    let mut conditions = json!({});
    if let Some(r) = ready {
        conditions["ready"] = json!(r);
    }
    if let Some(t) = terminating {
        conditions["terminating"] = json!(t);
    }
    json!({"addresses": [ip], "conditions": conditions})
}

/// `echo` in `default`: port 80 named `http` → pods' 8080.
fn echo(endpoints: Value) -> Vec<RawObject> {
    vec![
        service(
            "default",
            "echo",
            json!([{"name": "http", "port": 80, "targetPort": "web"}]),
        ),
        slice(
            "default",
            "echo-abc",
            "echo",
            "IPv4",
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            endpoints,
        ),
    ]
}

fn endpoint_routing() -> Options {
    Options {
        endpoint_routing: true,
        ..Options::default()
    }
}

fn discovery(t: &Translation, cluster: &str) -> Discovery {
    t.ir.clusters
        .iter()
        .find(|c| c.name == cluster)
        .unwrap_or_else(|| panic!("no cluster {cluster}: {:#?}", t.ir.clusters))
        .discovery
        .clone()
}

fn endpoints(t: &Translation, service_name: &str) -> Vec<Endpoint> {
    t.ir.endpoints
        .iter()
        .find(|e| e.service_name == service_name)
        .unwrap_or_else(|| panic!("no endpoints {service_name}: {:#?}", t.ir.endpoints))
        .endpoints
        .clone()
}

fn eds(name: &str) -> Discovery {
    Discovery::Eds {
        service_name: name.into(),
    }
}

fn warnings(t: &Translation) -> Vec<String> {
    t.errors
        .iter()
        .filter(|e| e.warning)
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn only_ready_not_terminating_ipv4_endpoints_are_used() {
    let mut objs = base();
    objs.extend(echo(json!([
        ep("10.1.0.3", Some(true), Some(false)),
        ep("10.1.0.1", None, None),
        ep("10.1.0.2", Some(false), None),
        ep("10.1.0.4", Some(false), Some(true)),
        ep("10.1.0.5", Some(true), Some(true)),
    ])));
    // The same pods in a second slice (a rollover), an IPv6 slice, an FQDN slice, and slices
    // of another Service and of another namespace: none adds anything.
    let http = json!([{"name": "http", "port": 8080}]);
    objs.push(slice(
        "default",
        "echo-dup",
        "echo",
        "IPv4",
        http.clone(),
        json!([ep("10.1.0.1", Some(true), None)]),
    ));
    objs.push(slice(
        "default",
        "echo-v6",
        "echo",
        "IPv6",
        http.clone(),
        json!([ep("fd00::1", None, None)]),
    ));
    objs.push(slice(
        "default",
        "echo-fqdn",
        "echo",
        "FQDN",
        http.clone(),
        json!([ep("pod.example", None, None)]),
    ));
    objs.push(slice(
        "default",
        "other-1",
        "other",
        "IPv4",
        http.clone(),
        json!([ep("10.9.9.9", None, None)]),
    ));
    objs.push(slice(
        "apps",
        "echo-x",
        "echo",
        "IPv4",
        http,
        json!([ep("10.8.8.8", None, None)]),
    ));
    objs.push(mapping(
        "default",
        "m",
        json!({"prefix": "/e/", "service": "echo", "resolver": "kubernetes-endpoint"}),
    ));
    let t = translate(&objs, &Options::default());
    assert_eq!(t.failures().count(), 0, "{:#?}", t.errors);
    assert_eq!(
        discovery(&t, "cluster_echo_default"),
        eds("k8s/default/echo/80")
    );
    assert_eq!(
        endpoints(&t, "k8s/default/echo/80"),
        vec![
            Endpoint::new("10.1.0.1", 8080),
            Endpoint::new("10.1.0.3", 8080)
        ]
    );
}

#[test]
fn service_ports_select_the_slice_port_by_name() {
    let mut objs = base();
    objs.push(service(
        "default",
        "multi",
        json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "admin", "port": 9000, "targetPort": 9001},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]),
    ));
    objs.push(slice(
        "default",
        "multi-1",
        "multi",
        "IPv4",
        json!([{"name": "admin", "port": 9001}, {"name": "http", "port": 8080}]),
        json!([ep("10.2.0.1", None, None)]),
    ));
    // Another slice serves the pods whose `web` port is a different number.
    objs.push(slice(
        "default",
        "multi-2",
        "multi",
        "IPv4",
        json!([{"name": "admin", "port": 9001}, {"name": "http", "port": 8081}]),
        json!([ep("10.2.0.2", None, None)]),
    ));
    objs.push(mapping(
        "default",
        "web",
        json!({"prefix": "/w/", "service": "multi"}),
    ));
    objs.push(mapping(
        "default",
        "admin",
        json!({"prefix": "/a/", "service": "multi:9000"}),
    ));
    objs.push(mapping(
        "default",
        "udp",
        json!({"prefix": "/u/", "service": "multi:53"}),
    ));
    let t = translate(&objs, &endpoint_routing());
    assert_eq!(
        endpoints(&t, "k8s/default/multi/80"),
        vec![
            Endpoint::new("10.2.0.1", 8080),
            Endpoint::new("10.2.0.2", 8081)
        ]
    );
    assert_eq!(
        endpoints(&t, "k8s/default/multi/9000"),
        vec![
            Endpoint::new("10.2.0.1", 9001),
            Endpoint::new("10.2.0.2", 9001)
        ]
    );
    // A UDP port is not a TCP upstream: endpoint routing leaves it to DNS, with a warning.
    assert_eq!(
        discovery(&t, "cluster_multi_53_default"),
        Discovery::StrictDns(vec![Endpoint::new("multi", 53)])
    );
    assert!(
        warnings(&t)
            .iter()
            .any(|w| w.contains("has no TCP port 53 (ports: 80, 9000, 53); resolved by DNS")),
        "{:#?}",
        t.errors
    );
}

#[test]
fn a_slice_without_ports_uses_the_numeric_target_port() {
    let mut objs = base();
    objs.push(service(
        "default",
        "manual",
        json!([{"port": 80, "targetPort": 3000}]),
    ));
    objs.push(raw(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "manual-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.7"]}]}),
    ));
    objs.push(mapping(
        "default",
        "m",
        json!({"prefix": "/m/", "service": "manual"}),
    ));
    let t = translate(&objs, &endpoint_routing());
    assert_eq!(
        endpoints(&t, "k8s/default/manual/80"),
        vec![Endpoint::new("192.0.2.7", 3000)]
    );
}

#[test]
fn dns_is_the_default_and_endpoint_routing_needs_an_existing_service() {
    let mut objs = base();
    objs.extend(echo(json!([ep("10.1.0.1", None, None)])));
    objs.push(mapping(
        "default",
        "m",
        json!({"prefix": "/e/", "service": "echo"}),
    ));
    objs.push(mapping(
        "default",
        "missing",
        json!({"prefix": "/x/", "service": "nowhere"}),
    ));
    objs.push(mapping(
        "default",
        "ip",
        json!({"prefix": "/ip/", "service": "192.0.2.1:8080"}),
    ));
    objs.push(mapping(
        "default",
        "pinned",
        json!({"prefix": "/p/", "service": "echo", "resolver": "kubernetes-service",
               "cluster_tag": "dns"}),
    ));

    // Emissary's default: DNS everywhere, even for a Service that exists.
    let t = translate(&objs, &Options::default());
    assert_eq!(
        discovery(&t, "cluster_echo_default"),
        Discovery::StrictDns(vec![Endpoint::new("echo", 80)])
    );
    assert!(t.ir.endpoints.is_empty());

    // endpoint_routing: EDS for the Service that exists; everything else is unchanged and
    // quiet; an explicit kubernetes-service resolver still wins.
    let t = translate(&objs, &endpoint_routing());
    assert_eq!(
        discovery(&t, "cluster_echo_default"),
        eds("k8s/default/echo/80")
    );
    assert_eq!(
        discovery(&t, "cluster_nowhere_default"),
        Discovery::StrictDns(vec![Endpoint::new("nowhere", 80)])
    );
    assert_eq!(
        discovery(&t, "cluster_192_0_2_1_8080_default"),
        Discovery::StrictDns(vec![Endpoint::new("192.0.2.1", 8080)])
    );
    assert_eq!(
        discovery(&t, "cluster_dns_echo_default"),
        Discovery::StrictDns(vec![Endpoint::new("echo", 80)])
    );
    assert!(t.errors.is_empty(), "{:#?}", t.errors);
    assert_eq!(t.ir.endpoints.len(), 1);
}

#[test]
fn an_explicit_endpoint_resolver_keeps_eds_for_a_missing_service() {
    let mut objs = base();
    objs.push(mapping(
        "default",
        "later",
        json!({"prefix": "/l/", "service": "later:8080", "resolver": "endpoint"}),
    ));
    objs.push(mapping(
        "default",
        "ip",
        json!({"prefix": "/ip/", "service": "192.0.2.1", "resolver": "kubernetes-endpoint"}),
    ));
    let t = translate(&objs, &Options::default());
    assert_eq!(t.failures().count(), 0, "{:#?}", t.errors);
    assert_eq!(
        discovery(&t, "cluster_later_8080_default"),
        eds("k8s/default/later/8080")
    );
    assert_eq!(endpoints(&t, "k8s/default/later/8080"), vec![]);
    assert_eq!(
        discovery(&t, "cluster_192_0_2_1_default"),
        Discovery::StrictDns(vec![Endpoint::new("192.0.2.1", 80)])
    );
    let w = warnings(&t);
    assert!(
        w.iter()
            .any(|w| w.contains("Service default/later not found: no endpoints until it exists")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("192.0.2.1 is not a Kubernetes Service name; resolved by DNS")),
        "{w:#?}"
    );

    // The Service appears: same cluster, now with endpoints.
    objs.push(service("default", "later", json!([{"port": 8080}])));
    objs.push(slice(
        "default",
        "later-1",
        "later",
        "IPv4",
        json!([{"port": 8080}]),
        json!([ep("10.3.0.1", None, None)]),
    ));
    let t2 = translate(&objs, &Options::default());
    assert_eq!(t2.ir.clusters, t.ir.clusters);
    assert_eq!(
        endpoints(&t2, "k8s/default/later/8080"),
        vec![Endpoint::new("10.3.0.1", 8080)]
    );
}

#[test]
fn a_service_without_ready_endpoints_has_an_empty_assignment() {
    let mut objs = base();
    objs.extend(echo(json!([ep("10.1.0.1", Some(false), None)])));
    objs.push(mapping(
        "default",
        "m",
        json!({"prefix": "/e/", "service": "echo"}),
    ));
    let t = translate(&objs, &endpoint_routing());
    assert_eq!(
        discovery(&t, "cluster_echo_default"),
        eds("k8s/default/echo/80")
    );
    assert_eq!(endpoints(&t, "k8s/default/echo/80"), vec![]);
}

#[test]
fn scaling_changes_only_the_endpoints() {
    let objs = |eps: Value| {
        let mut o = base();
        o.extend(echo(eps));
        o.push(mapping(
            "default",
            "m",
            json!({"prefix": "/e/", "service": "echo",
                   "load_balancer": {"policy": "ring_hash", "cookie": {"name": "s", "ttl": "1h"}}}),
        ));
        o
    };
    let one = translate(
        &objs(json!([ep("10.1.0.1", None, None)])),
        &endpoint_routing(),
    );
    let three = translate(
        &objs(json!([
            ep("10.1.0.1", None, None),
            ep("10.1.0.2", None, None),
            ep("10.1.0.3", Some(true), None),
            ep("10.1.0.4", None, Some(true)),
        ])),
        &endpoint_routing(),
    );
    assert_eq!(one.errors, three.errors);
    assert_eq!(one.ir.clusters, three.ir.clusters);
    assert_eq!(one.ir.route_tables, three.ir.route_tables);
    assert_eq!(one.ir.listeners, three.ir.listeners);
    assert_eq!(one.ir.secrets, three.ir.secrets);
    assert_ne!(one.ir.endpoints, three.ir.endpoints);
    assert_eq!(three.ir.endpoints[0].endpoints.len(), 3);
}

#[test]
fn load_balancers_with_endpoint_routing() {
    let mut objs = base();
    objs.extend(echo(json!([ep("10.1.0.1", None, None)])));
    objs.push(mapping(
        "default",
        "hash",
        json!({"prefix": "/h/", "service": "echo", "resolver": "kubernetes-endpoint",
               "load_balancer": {"policy": "ring_hash", "header": "x-user"}}),
    ));
    objs.push(mapping(
        "default",
        "lr",
        json!({"prefix": "/lr/", "service": "echo", "resolver": "kubernetes-endpoint",
               "load_balancer": {"policy": "least_request"}}),
    ));
    objs.push(mapping(
        "default",
        "mag",
        json!({"prefix": "/mg/", "service": "echo", "resolver": "kubernetes-endpoint",
               "load_balancer": {"policy": "maglev", "source_ip": true}}),
    ));
    objs.push(mapping(
        "default",
        "dns-hash",
        json!({"prefix": "/d/", "service": "echo",
               "load_balancer": {"policy": "maglev", "source_ip": true}}),
    ));
    let t = translate(&objs, &Options::default());
    let cluster = |name: &str| {
        t.ir.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name}: {:#?}", t.ir.clusters))
    };
    assert_eq!(
        cluster("cluster_echo_default_er_ring_hash_hdr_x_user").lb_policy,
        LbPolicy::RingHash
    );
    assert_eq!(
        cluster("cluster_echo_default_er_least_request").lb_policy,
        LbPolicy::LeastRequest
    );
    assert_eq!(
        cluster("cluster_echo_default_er_maglev_srcip").lb_policy,
        LbPolicy::Maglev
    );
    let hash_of = |route: &str| {
        t.ir.route_tables
            .iter()
            .flat_map(|rt| &rt.virtual_hosts)
            .flat_map(|v| &v.routes)
            .find(|r| r.name.as_deref() == Some(route))
            .and_then(|r| match &r.action {
                RouteAction::Forward(f) => Some(f.hash_policy.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no route {route}"))
    };
    assert_eq!(
        hash_of("default/hash"),
        vec![HashPolicy::Header("x-user".into())]
    );
    assert_eq!(hash_of("default/mag"), vec![HashPolicy::SourceIp]);
    assert_eq!(hash_of("default/lr"), vec![]);
    // Hashing under DNS drops the Mapping.
    let failures: Vec<String> = t.failures().map(|e| e.to_string()).collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].contains("default/dns-hash: spec.load_balancer.policy: ring_hash and maglev need the endpoint resolver"));
}

#[test]
fn the_module_resolver_and_qualified_names() {
    let mut objs = base();
    objs.push(raw(
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Module",
        "metadata": {"name": "ambassador", "namespace": "default"},
        "spec": {"config": {"resolver": "kubernetes-endpoint"}}}),
    ));
    objs.push(service("apps", "users", json!([{"port": 8080}])));
    objs.push(slice(
        "apps",
        "users-1",
        "users",
        "IPv4",
        json!([{"port": 8080}]),
        json!([ep("10.4.0.1", None, None)]),
    ));
    // A bare name in `apps` is qualified to users.apps; the FQDN form names it too.
    objs.push(mapping(
        "apps",
        "short",
        json!({"prefix": "/s/", "service": "users:8080"}),
    ));
    objs.push(mapping(
        "default",
        "fqdn",
        json!({"prefix": "/f/", "service": "users.apps.svc.cluster.local:8080"}),
    ));
    objs.push(raw(
        json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "TCPMapping",
        "metadata": {"name": "tcp", "namespace": "default"},
        "spec": {"port": 9000, "service": "users.apps:8080"}}),
    ));
    let t = translate(&objs, &Options::default());
    assert_eq!(t.failures().count(), 0, "{:#?}", t.errors);
    assert_eq!(
        discovery(&t, "cluster_users_apps_8080_apps"),
        eds("k8s/apps/users/8080")
    );
    assert_eq!(
        discovery(&t, "cluster_users_apps_svc_cluster_local_8080_default"),
        eds("k8s/apps/users/8080")
    );
    assert_eq!(
        discovery(&t, "cluster_users_apps_8080_default"),
        eds("k8s/apps/users/8080")
    );
    let tcp_clusters: Vec<&str> =
        t.ir.listeners
            .iter()
            .flat_map(|l| &l.filter_chains)
            .filter_map(|c| match &c.action {
                crate::ir::ChainAction::Tcp(p) => Some(p.clusters[0].name.as_str()),
                _ => None,
            })
            .collect();
    assert_eq!(tcp_clusters, ["cluster_users_apps_8080_default"]);
    assert_eq!(
        endpoints(&t, "k8s/apps/users/8080"),
        vec![Endpoint::new("10.4.0.1", 8080)]
    );
    assert_eq!(t.ir.endpoints.len(), 1);
}

#[test]
fn unknown_resolvers_are_errors() {
    let mut objs = base();
    objs.push(mapping(
        "default",
        "consul",
        json!({"prefix": "/c/", "service": "c", "resolver": "consul-dc1"}),
    ));
    objs.push(mapping(
        "default",
        "ok",
        json!({"prefix": "/ok/", "service": "ok"}),
    ));
    let t = translate(&objs, &Options::default());
    let failures: Vec<String> = t.failures().map(|e| e.to_string()).collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].contains("spec.resolver: \"consul-dc1\""));
}

#[test]
fn eds_names_and_service_references() {
    use super::{eds_name, service_ref};
    use crate::ir::DnsFamily;
    assert_eq!(eds_name("ns", "web", 0, DnsFamily::V4Only), "k8s/ns/web/0");
    assert_eq!(
        eds_name("ns", "web", 8, DnsFamily::V6Only),
        "k8s/ns/web/8/ipv6"
    );
    assert_eq!(eds_name("n", "w", 80, DnsFamily::Auto), "k8s/n/w/80/dual");
    assert_eq!(
        eds_name("n", "w", 65535, DnsFamily::V4Only),
        "k8s/n/w/65535"
    );
    for port in [1, 9, 10, 99, 100, 1000, 10000, 12345] {
        assert_eq!(
            eds_name("a", "b", port, DnsFamily::V4Only),
            format!("k8s/a/b/{port}")
        );
    }
    let cases = [
        ("web", Some(("dflt", "web"))),
        ("web.ns", Some(("ns", "web"))),
        ("web.ns.svc", Some(("ns", "web"))),
        ("web.ns.svc.cluster.local", Some(("ns", "web"))),
        ("web.ns.other", None),
        ("web.ns.other.svc", None),
        ("", Some(("dflt", ""))),
        ("localhost", None),
        ("10.0.0.1", None),
        ("::1", None),
    ];
    for (host, want) in cases {
        assert_eq!(service_ref(host, "dflt"), want, "{host}");
    }
}

#[test]
fn the_read_order_of_services_and_slices_does_not_matter() {
    // Services and EndpointSlices are not sorted into processing order (docs/design.md,
    // "Processing order and duplicates"): reading them in another order changes nothing.
    let port = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
    let objects = || {
        let mut objects = base();
        objects.push(mapping(
            "default",
            "m",
            json!({"prefix": "/", "service": "echo"}),
        ));
        objects.push(mapping(
            "default",
            "n",
            json!({"prefix": "/n/", "service": "bad"}),
        ));
        objects.push(service(
            "default",
            "echo",
            json!([{"name": "http", "port": 80, "targetPort": 8080}]),
        ));
        objects.push(service("default", "bad", json!("not a list")));
        objects.push(slice(
            "default",
            "echo-b",
            "echo",
            "IPv4",
            port.clone(),
            json!([ep("10.0.0.2", None, None), ep("10.0.0.1", None, None)]),
        ));
        objects.push(slice(
            "default",
            "echo-a",
            "echo",
            "IPv4",
            port.clone(),
            json!([ep("10.0.0.3", None, None), ep("10.0.0.1", Some(true), None)]),
        ));
        objects.push(slice(
            "default",
            "echo-c",
            "echo",
            "IPv4",
            json!(7),
            json!([]),
        ));
        objects
    };
    // The same objects read in the opposite order (origins numbered the other way).
    let numbered = |reverse: bool| -> Vec<RawObject> {
        let objects = objects();
        let n = objects.len();
        objects
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let doc = if reverse { n - i } else { i + 1 };
                let file = std::path::PathBuf::from("in.yaml");
                RawObject::new(Origin::file(file, doc), o.value.to_value())
            })
            .collect()
    };
    let options = Options {
        endpoint_routing: true,
        ..Options::default()
    };
    let (a, b) = (
        translate(&numbered(false), &options),
        translate(&numbered(true), &options),
    );
    assert_eq!(a.ir, b.ir);
    let endpoints: Vec<&str> = a.ir.endpoints[0]
        .endpoints
        .iter()
        .map(|e| e.address.as_str())
        .collect();
    assert_eq!(endpoints, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    let problems = |t: &Translation| -> Vec<String> {
        let mut p: Vec<String> = t
            .errors
            .iter()
            .map(|e| format!("{} {} {:?} {}", e.kind, e.name, e.field, e.message))
            .collect();
        p.sort();
        p
    };
    assert_eq!(problems(&a), problems(&b));
    assert!(
        problems(&a)
            .iter()
            .any(|p| p.starts_with("Service default/bad"))
    );
    assert!(
        problems(&a)
            .iter()
            .any(|p| p.starts_with("EndpointSlice default/echo-c"))
    );
}
