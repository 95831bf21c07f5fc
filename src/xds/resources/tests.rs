use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter, listener_filter};
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, header_matcher, route, route_action,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::*;
use crate::ir::*;

pub(super) mod fixture;
mod http_options;
mod lookup;
mod validate;

use fixture::{CERT, KEY, rich_ir};

// ---- helpers ----

pub(super) fn build(ir: &Ir) -> Snapshot {
    snapshot(ir, 1, "boot").expect("snapshot builds")
}

fn decode<T: Message + Name + Default>(snap: &Snapshot, kind: TypeKind, name: &str) -> T {
    let r = &snap.get(kind).expect("type present").resources[name];
    assert_eq!(r.body.type_url, T::type_url());
    T::decode(r.body.value.as_slice()).expect("decodes")
}

fn any_as<T: Message + Name + Default>(any: &Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).expect("decodes")
}

fn hcm_of(l: &Listener, chain: &str) -> HttpConnectionManager {
    let fc = l
        .filter_chains
        .iter()
        .find(|fc| fc.name == chain)
        .expect("chain exists");
    match &fc.filters[0].config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any_as(any),
        other => panic!("untyped filter: {other:?}"),
    }
}

fn versions(snap: &Snapshot, kind: TypeKind) -> Vec<(String, String)> {
    snap.get(kind)
        .unwrap()
        .resources
        .values()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}

// ---- versions ----

#[test]
fn every_type_is_present_even_when_empty() {
    let snap = build(&Ir::default());
    for kind in TypeKind::ORDER {
        let t = snap.get(kind).expect("type present");
        // The AuthService and RateLimitService filter configs always exist (pass-through).
        if kind == TypeKind::ExtensionConfig {
            assert_eq!(t.resources.len(), 2);
        } else {
            assert!(t.resources.is_empty());
        }
        assert!(t.version.starts_with("boot-"), "{}", t.version);
        assert_eq!(t.version.len(), "boot-".len() + 16);
    }
    assert_eq!(snap.generation, 1);
}

#[test]
fn versions_are_stable_for_equal_ir_and_prefixed_by_boot_id() {
    let a = build(&rich_ir());
    let b = build(&rich_ir());
    assert_eq!(a.versions(), b.versions());
    // Byte-identical bodies as well: no HashMap order leaks into the encoding.
    assert_eq!(a.types, b.types);
    for kind in TypeKind::ORDER {
        assert_eq!(versions(&a, kind), versions(&b, kind));
        for (_, v) in versions(&a, kind) {
            assert!(v.starts_with("boot-"));
        }
    }
    let other_boot = snapshot(&rich_ir(), 1, "other").unwrap();
    assert_ne!(a.versions(), other_boot.versions());
}

#[test]
fn a_route_change_moves_only_the_route_versions() {
    let before = build(&rich_ir());
    let mut ir = rich_ir();
    ir.route_tables[1].virtual_hosts[0].routes[0].matcher = RouteMatch::prefix("/v2");
    let after = build(&ir);

    for kind in [
        TypeKind::Listener,
        TypeKind::Cluster,
        TypeKind::Endpoint,
        TypeKind::Secret,
    ] {
        assert_eq!(before.versions()[&kind], after.versions()[&kind]);
        assert_eq!(versions(&before, kind), versions(&after, kind));
    }
    // The listener resources are byte-identical too, so Envoy never drains them for a route
    // change (prost's random map order must not leak into them).
    assert_eq!(
        before.get(TypeKind::Listener).unwrap().resources,
        after.get(TypeKind::Listener).unwrap().resources
    );
    assert_ne!(
        before.versions()[&TypeKind::Route],
        after.versions()[&TypeKind::Route]
    );
    let (rb, ra) = (
        versions(&before, TypeKind::Route),
        versions(&after, TypeKind::Route),
    );
    assert_eq!(rb[1], ra[1], "edge/plain is unchanged");
    assert_eq!(rb[0].0, "edge/https");
    assert_ne!(rb[0].1, ra[0].1, "edge/https changed");
}

#[test]
fn an_eds_cluster_change_moves_its_endpoint_version() {
    // Envoy re-requests EDS with the version it holds after such a CDS change and keeps the
    // cluster warming until answered (docs/design.md#push-order-and-warming).
    let before = build(&rich_ir());
    let mut ir = rich_ir();
    ir.clusters[3].connect_timeout_ms = 999;
    let after = build(&ir);
    let (eb, ea) = (
        versions(&before, TypeKind::Endpoint),
        versions(&after, TypeKind::Endpoint),
    );
    assert_eq!(eb[0], ea[0], "ns/none untouched");
    assert_eq!(eb[1].0, "ns/svc");
    assert_ne!(eb[1].1, ea[1].1);
    assert_eq!(
        versions(&before, TypeKind::Listener),
        versions(&after, TypeKind::Listener)
    );
}

#[test]
fn a_secret_rotation_moves_only_the_secret() {
    let before = build(&rich_ir());
    let mut ir = rich_ir();
    ir.secrets[0].kind = SecretKind::TlsCertificate {
        certificate_chain: CERT.into(),
        private_key: Sensitive::new(format!("{KEY}\n")),
    };
    let after = build(&ir);
    assert_ne!(
        before.versions()[&TypeKind::Secret],
        after.versions()[&TypeKind::Secret]
    );
    for kind in [TypeKind::Listener, TypeKind::Cluster, TypeKind::Route] {
        assert_eq!(before.versions()[&kind], after.versions()[&kind]);
    }
}

#[test]
fn dangling_ir_is_refused() {
    let mut ir = rich_ir();
    ir.clusters.retain(|c| c.name != "grpc");
    match snapshot(&ir, 1, "boot") {
        Err(Error::Dangling(errors)) => assert!(!errors.is_empty()),
        other => panic!("expected a dangling error, got {other:?}"),
    }
}

// ---- listeners ----

#[test]
fn listener_has_stat_prefix_and_filters_in_order() {
    let snap = build(&rich_ir());
    let l: Listener = decode(&snap, TypeKind::Listener, "edge");
    assert_eq!(l.stat_prefix, "edge");
    let names: Vec<&str> = l.listener_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.listener.proxy_protocol",
            "envoy.filters.listener.tls_inspector"
        ]
    );
    for f in &l.listener_filters {
        assert!(matches!(
            f.config_type,
            Some(listener_filter::ConfigType::TypedConfig(_))
        ));
    }
    assert_eq!(l.per_connection_buffer_limit_bytes.unwrap().value, 32768);

    let tcp: Listener = decode(&snap, TypeKind::Listener, "tcp");
    assert!(tcp.listener_filters.is_empty(), "no TLS inspector needed");
}

#[test]
fn filter_chains_match_by_sni_and_transport() {
    let l: Listener = decode(&build(&rich_ir()), TypeKind::Listener, "edge");
    let https = &l.filter_chains[0];
    assert_eq!(https.name, "https");
    let m = https.filter_chain_match.as_ref().unwrap();
    assert_eq!(m.server_names, ["example.com", "*.example.com"]);
    assert_eq!(m.transport_protocol, "tls");
    assert!(https.transport_socket.is_some());
    let pass = l.filter_chains[1].filter_chain_match.as_ref().unwrap();
    assert_eq!(pass.transport_protocol, "tls");
    assert!(l.filter_chains[1].transport_socket.is_none());
    assert!(l.filter_chains[2].filter_chain_match.is_none());
}

#[test]
fn hcm_uses_rds_over_ads_and_typed_filters() {
    let l: Listener = decode(&build(&rich_ir()), TypeKind::Listener, "edge");
    let hcm = hcm_of(&l, "https");
    let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
        panic!("expected RDS");
    };
    assert_eq!(rds.route_config_name, "edge/https");
    let source = rds.config_source.as_ref().unwrap();
    assert_eq!(source, &ads());
    let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.http.rbac",
            "envoy.filters.http.cors",
            "envoy.filters.http.ext_authz",
            "envoy.filters.http.ratelimit",
            "envoy.filters.http.router"
        ]
    );
    for f in &hcm.http_filters {
        // The AuthService and RateLimitService filters come by ECDS.
        let ecds = f.name.ends_with("ext_authz") || f.name.ends_with("ratelimit");
        assert_eq!(
            matches!(
                f.config_type,
                Some(http_filter::ConfigType::ConfigDiscovery(_))
            ),
            ecds,
            "{}",
            f.name
        );
    }
    assert_eq!(hcm.stat_prefix, "ingress_https");
    assert_eq!(hcm.path_with_escaped_slashes_action, 2, "REJECT_REQUEST");
    assert_eq!(hcm.normalize_path, Some(boolv(true)));
    assert!(hcm.merge_slashes);
    assert!(hcm.http_protocol_options.unwrap().accept_http_10);
    assert_eq!(hcm.access_log.len(), 1);
}

// ---- routes ----

fn canary(snap: &Snapshot) -> envoy_types::pb::envoy::config::route::v3::Route {
    let rc: RouteConfiguration = decode(snap, TypeKind::Route, "edge/plain");
    rc.virtual_hosts[0].routes[0].clone()
}

#[test]
fn header_matchers_use_string_match() {
    let r = canary(&build(&rich_ir()));
    let m = r.r#match.unwrap();
    let specs: Vec<_> = m
        .headers
        .iter()
        .map(|h| h.header_match_specifier.clone().unwrap())
        .collect();
    use header_matcher::HeaderMatchSpecifier as H;
    let pattern = |s: &H| match s {
        H::StringMatch(sm) => sm.match_pattern.clone(),
        other => panic!("not a string_match: {other:?}"),
    };
    assert_eq!(pattern(&specs[0]), Some(MatchPattern::Exact("GET".into())));
    assert_eq!(pattern(&specs[1]), Some(MatchPattern::Prefix("pre".into())));
    assert_eq!(pattern(&specs[2]), Some(MatchPattern::Suffix("fix".into())));
    assert!(m.headers[2].invert_match);
    match pattern(&specs[3]) {
        Some(MatchPattern::SafeRegex(re)) => {
            assert_eq!(re.regex, "v[0-9]+");
            assert!(re.engine_type.is_none(), "no max_program_size");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(specs[4], H::PresentMatch(true));
    assert!(!m.case_sensitive.unwrap().value);
    assert_eq!(m.query_parameters.len(), 2);
    let rf = m.runtime_fraction.unwrap();
    assert_eq!(rf.default_value.unwrap().numerator, 30);
    assert_eq!(rf.runtime_key, "routing.traffic_shift.api");
}

#[test]
fn forward_uses_weighted_clusters_and_cors_per_filter_config() {
    let r = canary(&build(&rich_ir()));
    let Some(route::Action::Route(action)) = &r.action else {
        panic!("expected a route action");
    };
    let Some(route_action::ClusterSpecifier::WeightedClusters(wc)) = &action.cluster_specifier
    else {
        panic!("expected weighted clusters");
    };
    let split: Vec<(&str, u32)> = wc
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(split, [("web", 60), ("eds-svc", 40)]);
    let timeout = action.timeout.unwrap();
    assert_eq!((timeout.seconds, timeout.nanos), (0, 0));
    let idle = action.idle_timeout.unwrap();
    assert_eq!((idle.seconds, idle.nanos), (120, 500_000_000));
    assert_eq!(
        action.retry_policy.as_ref().unwrap().retry_on,
        "5xx,retriable-status-codes"
    );
    assert_eq!(action.request_mirror_policies[0].cluster, "grpc");
    assert_eq!(action.hash_policy.len(), 3);

    let cors: CorsPolicy = any_as(&r.typed_per_filter_config["envoy.filters.http.cors"]);
    assert_eq!(cors.allow_methods, "GET, POST");
    assert_eq!(cors.allow_origin_string_match.len(), 2);
    assert!(cors.allow_credentials.unwrap().value);

    let actions: Vec<i32> = r
        .request_headers_to_add
        .iter()
        .chain(&r.response_headers_to_add)
        .map(|h| h.append_action)
        .collect();
    assert_eq!(
        actions,
        [0, 2],
        "APPEND_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS_OR_ADD"
    );
}

// ---- clusters and endpoints ----

#[test]
fn eds_cluster_points_at_ads_and_every_service_has_an_assignment() {
    let snap = build(&rich_ir());
    let c: Cluster = decode(&snap, TypeKind::Cluster, "eds-svc");
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
    let eds = c.eds_cluster_config.unwrap();
    assert_eq!(eds.service_name, "ns/svc");
    assert_eq!(eds.eds_config.unwrap(), ads());
    assert!(c.load_assignment.is_none());
    assert!(
        c.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );

    let cla: ClusterLoadAssignment = decode(&snap, TypeKind::Endpoint, "ns/svc");
    assert_eq!(cla.cluster_name, "ns/svc");
    let weights: Vec<Option<u32>> = cla.endpoints[0]
        .lb_endpoints
        .iter()
        .map(|e| e.load_balancing_weight.map(|w| w.value))
        .collect();
    assert_eq!(weights, [Some(3), None]);
    let empty: ClusterLoadAssignment = decode(&snap, TypeKind::Endpoint, "ns/none");
    assert!(empty.endpoints[0].lb_endpoints.is_empty());
}

#[test]
fn static_bootstrap_inlines_routes_endpoints_and_secrets() {
    let b = static_bootstrap(&build(&rich_ir())).unwrap();
    let sr = b.static_resources.unwrap();
    assert_eq!(sr.listeners.len(), 2);
    assert_eq!(sr.secrets.len(), 3);
    let edge = sr.listeners.iter().find(|l| l.name == "edge").unwrap();
    let Some(RouteSpecifier::RouteConfig(rc)) = hcm_of(edge, "plain").route_specifier else {
        panic!("expected an inline route config");
    };
    assert_eq!(rc.name, "edge/plain");
    let eds = sr.clusters.iter().find(|c| c.name == "eds-svc").unwrap();
    assert!(eds.eds_cluster_config.is_none());
    assert_eq!(
        eds.load_assignment.as_ref().unwrap().cluster_name,
        "eds-svc"
    );
    assert_eq!(
        eds.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32
        ))
    );
}

/// A route table encoded one route at a time has exactly the bytes of the whole message
/// encoded by prost (so Envoy receives the same resource), with and without virtual hosts.
#[test]
fn route_tables_encode_route_by_route_to_the_same_bytes() {
    let ir = rich_ir();
    let mut tables = ir.route_tables.clone();
    tables.push(crate::ir::RouteTable {
        name: "empty".into(),
        virtual_hosts: vec![],
    });
    let mut no_routes = ir.route_tables[0].clone();
    for vh in &mut no_routes.virtual_hosts {
        vh.routes.clear();
    }
    tables.push(no_routes);
    assert!(
        tables
            .iter()
            .any(|t| t.virtual_hosts.iter().any(|v| v.routes.len() > 1))
    );
    assert_encoded_as_prost(&tables, "");
}

/// Each table's encoding (`route_configuration_any`) is byte for byte prost's encoding of the
/// envoy-types message built from it; `context` prefixes the failure message.
fn assert_encoded_as_prost(tables: &[crate::ir::RouteTable], context: &str) {
    for t in tables {
        assert_eq!(
            super::route::route_configuration_any(t),
            pack(route_configuration(t)),
            "{context}{}",
            t.name
        );
    }
}

/// Rate limits are written straight as bytes and spliced into each forwarding route's
/// encoding: the result is byte for byte prost's encoding of the envoy-types messages, for
/// every action kind, empty and long (multi-byte length) strings, `skip_if_absent` either way,
/// several descriptors per route, routes of every action and shape of the fixture, and routes
/// sharing one list (encoded once, then reused) next to routes with lists of their own.
#[test]
fn rate_limits_written_as_bytes_encode_as_prost_does() {
    // A small deterministic generator (xorshift), so every run checks the same assortment.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn text(&mut self) -> String {
            let len = match self.below(4) {
                0 => 0,
                1 => 1 + self.below(8),
                2 => 120 + self.below(20),
                _ => 200 + self.below(300),
            };
            (0..len)
                .map(|_| char::from(b'a' + u8::try_from(self.below(26)).unwrap()))
                .collect()
        }
        fn limits(&mut self) -> std::sync::Arc<[RateLimit]> {
            (0..1 + self.below(3))
                .map(|_| RateLimit {
                    actions: (0..1 + self.below(4))
                        .map(|_| match self.below(5) {
                            0 => RateLimitAction::SourceCluster,
                            1 => RateLimitAction::DestinationCluster,
                            2 => RateLimitAction::RemoteAddress,
                            3 => RateLimitAction::GenericKey {
                                key: self.text().into(),
                                value: self.text().into(),
                            },
                            _ => RateLimitAction::RequestHeader {
                                key: self.text().into(),
                                header: self.text().into(),
                                skip_if_absent: self.below(2) == 1,
                            },
                        })
                        .collect(),
                })
                .collect()
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ir = rich_ir();
    for round in 0..20 {
        let shared = rng.limits();
        let mut tables = ir.route_tables.clone();
        // More forwarding routes: each of the fixture's, four times.
        for vh in tables.iter_mut().flat_map(|t| &mut t.virtual_hosts) {
            let forward: Vec<_> = vh
                .routes
                .iter()
                .filter(|r| matches!(r.action, crate::ir::RouteAction::Forward(_)))
                .cloned()
                .collect();
            for _ in 0..3 {
                vh.routes.extend(forward.iter().cloned());
            }
        }
        let mut forwarding = 0;
        for r in tables
            .iter_mut()
            .flat_map(|t| &mut t.virtual_hosts)
            .flat_map(|v| &mut v.routes)
        {
            forwarding += usize::from(matches!(r.action, crate::ir::RouteAction::Forward(_)));
            r.rate_limits = match rng.below(3) {
                0 => shared.clone(),
                1 => rng.limits(),
                _ => Default::default(),
            };
        }
        assert!(forwarding >= 12, "{forwarding}");
        assert_encoded_as_prost(&tables, &format!("round {round}, "));
    }
}

/// A changed route table takes its unchanged routes' encodings from the previous snapshot by
/// route hash and encodes only the changed ones: from the true previous snapshot the result is
/// the fresh one; from a previous snapshot whose pieces 1 and 3 had their hashes swapped, those
/// two routes come out swapped (their bytes were taken, not encoded), the changed route as fresh.
#[test]
fn a_changed_route_table_encodes_only_its_changed_routes() {
    let mut ir = rich_ir();
    let before = build(&ir);
    let at = ir
        .route_tables
        .iter()
        .position(|t| t.name == "edge/plain")
        .expect("the fixture has edge/plain");
    let table = ir.route_tables[at].name.clone();
    assert!(ir.route_tables[at].virtual_hosts.len() > 1);
    ir.route_tables[at].virtual_hosts[0].routes[2].matcher = RouteMatch::prefix("/changed/");
    let fresh = build(&ir);
    let reused = snapshot_reusing(&ir, 1, "boot", Some(&before)).expect("builds");
    let resource = |s: &Snapshot| s.get(TypeKind::Route).unwrap().resources[&table].clone();
    let config = |s: &Snapshot| decode::<RouteConfiguration>(s, TypeKind::Route, &table);
    assert_ne!(resource(&before).version, resource(&fresh).version);
    assert_eq!(resource(&reused).version, resource(&fresh).version);
    assert_eq!(resource(&reused).pieces, resource(&fresh).pieces);
    assert_eq!(resource(&fresh).pieces.len(), 7, "one piece per route");
    assert_eq!(config(&reused), config(&fresh));

    let mut swapped = before.clone();
    let old = swapped
        .types
        .get_mut(&TypeKind::Route)
        .unwrap()
        .resources
        .get_mut(&table)
        .unwrap();
    let mut pieces = old.pieces.to_vec();
    let hash_1 = pieces[1].hash;
    pieces[1].hash = pieces[3].hash;
    pieces[3].hash = hash_1;
    old.pieces = pieces.into();
    let from_swapped = snapshot_reusing(&ir, 1, "boot", Some(&swapped)).expect("builds");
    let (got, want) = (config(&from_swapped), config(&fresh));
    let routes = |c: &RouteConfiguration| c.virtual_hosts[0].routes.clone();
    let (got_routes, want_routes) = (routes(&got), routes(&want));
    assert_ne!(want_routes[1], want_routes[3]);
    assert_eq!(got_routes[1], want_routes[3]);
    assert_eq!(got_routes[3], want_routes[1]);
    for i in [0, 2, 4, 5] {
        assert_eq!(got_routes[i], want_routes[i], "route {i}");
    }
    assert_eq!(got.virtual_hosts[1], want.virtual_hosts[1]);
}

#[test]
fn dns_clusters_of_ip_addresses_are_static_and_hostnames_stay_dns() {
    let ip = crate::ir::Cluster::new(
        "ip",
        Discovery::StrictDns(vec![
            Endpoint::new("127.1.2.3", 80),
            Endpoint::new("::1", 80),
        ]),
    );
    let host = crate::ir::Cluster::new(
        "host",
        Discovery::StrictDns(vec![Endpoint::new("svc.ns", 80)]),
    );
    let logical = crate::ir::Cluster::new(
        "logical",
        Discovery::LogicalDns(vec![Endpoint::new("10.0.0.1", 80)]),
    );
    let ty = |c: &crate::ir::Cluster| super::cluster::cluster(c).cluster_discovery_type;
    let static_ = Some(cluster::ClusterDiscoveryType::Type(
        cluster::DiscoveryType::Static as i32,
    ));
    assert_eq!(ty(&ip), static_);
    assert_eq!(ty(&logical), static_);
    let endpoints = super::cluster::cluster(&ip).load_assignment.unwrap();
    assert_eq!(endpoints.endpoints[0].lb_endpoints.len(), 2);
    assert!(matches!(
        ty(&host),
        Some(cluster::ClusterDiscoveryType::ClusterType(t)) if t.name == "envoy.clusters.dns"
    ));
}

/// The auth and rate-limit services' clusters linger after their last use for the filter's
/// timeout and a margin (a timeout of 0, none, gets the cap); every other cluster goes at once
/// (docs/design.md#push-order-and-warming).
#[test]
fn service_clusters_linger_for_their_timeout() {
    use std::time::Duration;
    let mut ir = validate::golden_ir("svc-auth-and-ratelimit");
    let lingers = |ir: &Ir| -> BTreeMap<String, Duration> {
        let snap = build(ir);
        snap.get(TypeKind::Cluster)
            .unwrap()
            .resources
            .values()
            .map(|r| (r.name.clone(), r.linger))
            .collect()
    };
    let got = lingers(&ir);
    let auth = got.keys().find(|n| n.contains("extauth")).unwrap().clone();
    let rate = got
        .keys()
        .find(|n| n.contains("ratelimit"))
        .unwrap()
        .clone();
    // AuthService's default 5 s, RateLimitService's default 20 ms, plus 1 s.
    assert_eq!(got[&auth], Duration::from_millis(6000));
    assert_eq!(got[&rate], Duration::from_millis(1020));
    for (name, linger) in &got {
        if name != &auth && name != &rate {
            assert_eq!(*linger, Duration::ZERO, "{name}");
        }
    }
    for l in &mut ir.listeners {
        for fc in &mut l.filter_chains {
            if let ChainAction::Http(h) = &mut fc.action {
                if let Some(ExtAuthz::Service(f)) = &mut h.ext_authz {
                    f.timeout_ms = 60_000;
                }
                if let Some(r) = &mut h.rate_limit {
                    r.timeout_ms = 0;
                }
            }
        }
    }
    let got = lingers(&ir);
    assert_eq!(got[&auth], Duration::from_secs(8));
    assert_eq!(got[&rate], Duration::from_secs(8));
}

#[test]
fn eds_resources_merge_given_endpoints_and_the_clusters_using_them() {
    let eds = |name: &str, service: &str| {
        crate::ir::Cluster::new(
            name,
            Discovery::Eds {
                service_name: service.into(),
            },
        )
    };
    let mut ir = Ir::default();
    ir.clusters = vec![
        eds("c1", "k/b"),
        crate::ir::Cluster::new("dns", Discovery::StrictDns(vec![Endpoint::new("x.ns", 80)])),
        eds("c2", "k/c"),
        eds("c3", "k/b"),
    ];
    ir.endpoints = vec![
        Endpoints {
            service_name: "k/b".into(),
            endpoints: vec![Endpoint::new("10.0.0.2", 80)],
        },
        Endpoints {
            service_name: "k/a".into(),
            endpoints: vec![Endpoint::new("10.0.0.1", 80)],
        },
    ];
    let hashes = [1, 2, 3, 4];
    let all = |ir: &Ir, hashes: &[u64]| -> Vec<(String, u64, ClusterLoadAssignment)> {
        endpoint::all(ir, hashes)
            .into_iter()
            .map(|(name, hash, encode)| (name.clone(), hash, any_as(&encode())))
            .collect()
    };
    let before = all(&ir, &hashes);
    let names: Vec<&str> = before.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["k/a", "k/b", "k/c"]);
    for (name, _, cla) in &before {
        let given = ir.endpoints.iter().find(|e| &e.service_name == name);
        let want = endpoint::load_assignment(name, given.map_or(&[], |e| &e.endpoints));
        assert_eq!(cla, &want, "{name}: k/c has none, an empty assignment");
    }
    // A change to a cluster using k/b (c3) moves k/b's version only; a change to the DNS
    // cluster's hash (no EDS resource) moves none.
    let after = all(&ir, &[1, 2, 3, 5]);
    assert_eq!(before[0].1, after[0].1);
    assert_ne!(before[1].1, after[1].1);
    assert_eq!(before[2].1, after[2].1);
    assert_eq!(
        before,
        all(&ir, &[1, 9, 3, 4]),
        "the DNS cluster is no user"
    );
    // Which clusters use a name counts, not only their hashes' values.
    ir.clusters.swap(2, 3);
    let swapped = all(&ir, &hashes);
    assert_ne!(before[1].1, swapped[1].1);
    assert_ne!(before[2].1, swapped[2].1);
}
