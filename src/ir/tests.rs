use super::*;

fn sample() -> Ir {
    let table = RouteTable {
        name: "l/http".into(),
        virtual_hosts: vec![VirtualHost {
            name: "any".into(),
            domains: vec!["*".into()],
            routes: vec![Route::new(
                RouteMatch::prefix("/"),
                RouteAction::Forward(Forward::to("c1")),
            )],
        }],
    };
    Ir {
        listeners: vec![Listener {
            name: "l".into(),
            address: "0.0.0.0".into(),
            port: 8080,
            stat_prefix: "l".into(),
            proxy_protocol: false,
            per_connection_buffer_limit_bytes: None,
            filter_chains: vec![FilterChain {
                name: "http".into(),
                server_names: vec![],
                match_tls: false,
                tls: None,
                action: ChainAction::Http(HttpManager::new("ingress_http", "l/http")),
            }],
        }],
        route_tables: vec![table],
        clusters: vec![Cluster::new(
            "c1",
            Discovery::StrictDns(vec![Endpoint::new("127.0.0.1", 9000)]),
        )],
        endpoints: vec![],
        secrets: vec![],
    }
}

#[test]
fn valid_ir_passes() {
    assert_eq!(sample().validate(), Ok(()));
}

#[test]
fn dangling_cluster_and_table_are_reported() {
    let mut ir = sample();
    ir.clusters.clear();
    ir.route_tables[0].name = "other".into();
    let errs = ir.validate().unwrap_err();
    assert!(
        errs.iter()
            .any(|e| matches!(e, Dangling::RouteTable { table, .. } if table == "l/http"))
    );
    assert!(
        errs.iter()
            .any(|e| matches!(e, Dangling::Cluster { cluster, .. } if cluster == "c1"))
    );
}

#[test]
fn duplicate_names_are_reported() {
    let mut ir = sample();
    ir.clusters.push(ir.clusters[0].clone());
    let errs = ir.validate().unwrap_err();
    assert_eq!(
        errs,
        vec![Dangling::Duplicate {
            kind: "cluster",
            name: "c1".into()
        }]
    );
}

#[test]
fn hash_is_content_derived() {
    let a = sample();
    let b = sample();
    assert_eq!(Ir::hash_of(&a), Ir::hash_of(&b));
    let mut c = sample();
    c.clusters[0].connect_timeout_ms = 1000;
    assert_ne!(Ir::hash_of(&a), Ir::hash_of(&c));
}

#[test]
fn secrets_are_redacted_in_debug_and_json() {
    let s = Secret {
        name: "s".into(),
        kind: SecretKind::TlsCertificate {
            certificate_chain: "CERT".into(),
            private_key: Sensitive::new("TOPSECRETKEY"),
        },
    };
    assert!(!format!("{s:?}").contains("TOPSECRETKEY"));
    assert!(!serde_json::to_string(&s).unwrap().contains("TOPSECRETKEY"));
}

/// Versions are content hashes (docs/design.md#versions): values a faster multiply-xorshift
/// hash let collide (a difference in two chosen words cancelled out) must hash apart.
#[test]
fn values_chosen_to_cancel_out_do_not_collide() {
    assert_ne!(
        Ir::hash_of("cluster_web_prod"),
        Ir::hash_of("clusterzwebWqroE")
    );
    assert_ne!(
        Ir::hash_of(&(0u64, 0u64)),
        Ir::hash_of(&(1u64 << 63, (1u64 << 63) | (1u64 << 34)))
    );
}

/// `Ir::hash_of` hands SipHash its bytes in blocks; the value must be the one `DefaultHasher`
/// gives when the same value is written piece by piece (versions do not change, and the hash
/// keeps SipHash's strength): small and large values, strings across the block boundary, a
/// whole IR, and a list of many routes.
#[test]
fn gathered_is_siphash_over_the_same_bytes() {
    use std::hash::{Hash, Hasher};
    fn plain<T: Hash + ?Sized>(value: &T) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        value.hash(&mut h);
        h.finish()
    }
    fn same<T: Hash + ?Sized + std::fmt::Debug>(value: &T) {
        assert_eq!(Ir::hash_of(value), plain(value), "{value:?}");
    }
    same(&0u8);
    same("");
    same(&(1u64, "a", 2u16, [3u32; 5]));
    for n in [1, 7, 8, 9, 500, 505, 511, 512, 513, 1024, 1500, 5000] {
        same("x".repeat(n).as_str());
        same(&(7u8, "y".repeat(n), 9u64, "z".repeat(n / 3)));
    }
    let ir = sample();
    same(&ir);
    let mut routes = Vec::new();
    for i in 0..300 {
        let mut r = Route::new(
            RouteMatch::prefix(format!("/svc-{i}/")),
            RouteAction::Forward(Forward::to(format!("cluster_{i}"))),
        );
        r.name = Some(format!("ns/m-{i}"));
        routes.push(r);
    }
    same(&routes);
    same(&ir.clusters);
}
