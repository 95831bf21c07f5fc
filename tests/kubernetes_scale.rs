//! Issue 10, item 5: the Kubernetes source at scale, in process, with the real Envoy and the fake
//! API server (real list/watch through the real kube client, lists paged by kube-runtime).
//!
//! - 5,000 Mappings, each to its own Service, with 5,000 EndpointSlices, routed by EDS
//!   (`source.endpoint_routing`): ready, the live Mapping served, a change of its prefix served,
//!   a change of its Service's EndpointSlice served (and only EDS changes).
//! - 1,000 objects arriving as separate watch events spread over a second are coalesced into a
//!   few publications (docs/design.md#kubernetes-watches: the first change, lone, at once; the
//!   burst behind it once quiet for `source.debounce_ms`, at most ten windows after its first
//!   change).
//!
//! Timings are not asserted (tests don't time); `cargo bench --bench kubernetes -- scale`
//! measures them (BENCHMARKS.md, issue 10).

#[path = "common/backend.rs"]
mod backend;
#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "kubernetes_e2e/harness.rs"]
mod harness;
#[path = "common/http.rs"]
mod http;
#[path = "common/ports.rs"]
mod ports;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use backend::Backend;
use fake_apiserver::FakeApiServer;
use harness::*;
use http::eventually;
use serde_json::{Value, json};

/// Services, EndpointSlices and Mappings of the scale test.
const SERVICES: usize = 5_000;
/// Objects in the burst.
const BURST: usize = 1_000;
/// How long the burst's events are spread over.
const BURST_SPREAD: Duration = Duration::from_secs(1);

/// Service `svc-<i>` (port 80), its EndpointSlice and Mapping `m-<i>` (`/m-<i>/`, no
/// resolver: EDS through `endpoint_routing`). Every slice but the live one lists one loopback
/// address nothing listens on (`127.2.x.y:8080`), never called by the test.
fn eds_service(i: usize, live: Option<SocketAddr>) -> [Value; 3] {
    let name = format!("svc-{i}");
    let slice = match live {
        Some(addr) => eds_slice(&name, addr),
        None => {
            let ip = format!("127.2.{}.{}", i / 250, i % 250 + 1);
            endpoint_slice(&format!("{name}-x"), &name, 8080, &[(&ip, true, false)])
        }
    };
    [
        service(&name, 80, 8080),
        slice,
        mapping(
            &format!("m-{i}"),
            &format!("/m-{i}/"),
            &format!("{name}:80"),
        ),
    ]
}

/// The EndpointSlice of Service `name` listing `addr` alone.
fn eds_slice(name: &str, addr: SocketAddr) -> Value {
    endpoint_slice(
        &format!("{name}-x"),
        name,
        addr.port(),
        &[(&addr.ip().to_string(), true, false)],
    )
}

/// How many IR clusters are EDS clusters, and how many EDS assignments name a `svc-` Service.
fn eds_counts(ir: &Value) -> (usize, usize) {
    let all = |key: &str| ir[key].as_array().cloned().unwrap_or_default();
    let clusters = all("clusters")
        .iter()
        .filter(|c| c["discovery"].get("eds").is_some())
        .count();
    let assignments = all("endpoints")
        .iter()
        .filter(|e| {
            e["service_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("k8s/default/svc-"))
        })
        .count();
    (clusters, assignments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_services_with_eds_serve_and_follow_mapping_and_slice_changes() {
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let mut objects = vec![http_listener("http", port), host("any", "*")];
    for i in 0..SERVICES {
        objects.extend(eds_service(i, (i == 0).then_some(a.addr)));
    }
    server.apply_all(objects);
    let Some(legate) = Legate::start(&server, |c| c.source.endpoint_routing = true).await else {
        return;
    };
    legate.wait_ready().await;
    let envoy = local(port);
    until_served(envoy, "localhost", "/m-0/x", 200, Some("a")).await;
    assert_eq!(
        eds_counts(&legate.ir().await),
        (SERVICES, SERVICES),
        "every Mapping's cluster is an EDS cluster with its assignment"
    );
    // kube-runtime listed every kind in pages of 500: more than one page each.
    for plural in ["mappings", "services", "endpointslices"] {
        assert!(
            server.count(plural, false) >= SERVICES / 500,
            "{plural} listed in pages: {} list requests",
            server.count(plural, false)
        );
    }
    let before = legate.settled_versions().await;

    // The live Mapping's prefix changes: the new prefix is served, the old one is gone.
    server.apply(mapping("m-0", "/moved/", "svc-0:80"));
    until_served(envoy, "localhost", "/moved/x", 200, Some("a")).await;
    until_served(envoy, "localhost", "/m-0/x", 404, None).await;
    let moved = eventually(LONG, "the route change acked", || async {
        let v = legate.settled_versions().await;
        (v.get("route") != before.get("route")).then_some(v)
    })
    .await;
    assert_eq!(
        moved.get("cluster"),
        before.get("cluster"),
        "a prefix change leaves the clusters alone"
    );

    // The live Service's EndpointSlice moves to b: served by b, and only EDS changed.
    server.apply(eds_slice("svc-0", b.addr));
    until_served(envoy, "localhost", "/moved/x", 200, Some("b")).await;
    let after = eventually(LONG, "the EDS change acked", || async {
        let v = legate.settled_versions().await;
        (v.get("endpoint") != moved.get("endpoint")).then_some(v)
    })
    .await;
    for ty in ["cluster", "listener", "route"] {
        assert_eq!(moved.get(ty), after.get(ty), "{ty} version changed");
    }
    // The other 4,999 Services and their assignments are untouched by the two changes.
    assert_eq!(
        eds_counts(&legate.ir().await),
        (SERVICES, SERVICES),
        "still every service"
    );
}

/// Emits `objects` as one watch event each, object `i` at `i × spread / len` after the start
/// (a batch whenever the schedule is behind); returns how long the emission took.
async fn spread(server: &FakeApiServer, objects: Vec<Value>, spread: Duration) -> Duration {
    let n = objects.len() as u32;
    let start = Instant::now();
    for (i, object) in (0u32..).zip(objects) {
        let due = start + spread * i / n;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        server.apply(object);
    }
    start.elapsed()
}

/// The most publications a burst emitted over `emitted` can cause: the Kubernetes source
/// publishes its first event (a lone change: none in the window before it) with what arrives
/// within one debounce window of it at once, then the rest at the latest ten windows after the
/// first of them, so each `10 × debounce` of the emission can close one publication, plus the
/// one for its tail.
fn publication_bound(emitted: Duration, debounce: Duration) -> u64 {
    let cap = debounce * 10;
    (emitted.as_millis() / cap.as_millis()) as u64 + 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_1000_watch_events_over_a_second_is_coalesced_into_few_publications() {
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let port = free_port();
    server.apply_all(vec![
        http_listener("http", port),
        host("any", "*"),
        mapping("m", "/base/", &a.addr.to_string()),
    ]);
    let mut debounce = Duration::ZERO;
    let Some(legate) = Legate::start(&server, |c| {
        debounce = Duration::from_millis(c.source.debounce_ms);
    })
    .await
    else {
        return;
    };
    legate.wait_ready().await;
    let envoy = local(port);
    until_served(envoy, "localhost", "/base/", 200, Some("a")).await;
    let settled: BTreeMap<String, String> = legate.settled_versions().await;
    let before = legate.metric("legate_reconfigurations_total").await;
    let rv_before = server.resource_version();

    let target = a.addr.to_string();
    let burst = (0..BURST)
        .map(|i| mapping(&format!("burst-{i}"), &format!("/burst-{i}/"), &target))
        .collect();
    let emitted = spread(&server, burst, BURST_SPREAD).await;
    assert_eq!(
        server.resource_version() - rv_before,
        BURST as u64,
        "one watch event per object"
    );
    assert!(
        emitted >= BURST_SPREAD * 9 / 10,
        "the burst was spread over {emitted:?}"
    );

    // The last state is served: every burst Mapping in the IR, the last ones answered.
    eventually(LONG, "1,000 more routes in the IR", || async {
        let routes = legate.ir().await["route_tables"].to_string();
        (0..BURST)
            .all(|i| routes.contains(&format!("\"/burst-{i}/\"")))
            .then_some(())
    })
    .await;
    for i in [0, 1, 500, BURST - 2, BURST - 1] {
        until_served(envoy, "localhost", &format!("/burst-{i}/x"), 200, Some("a")).await;
    }
    let after_versions = legate.settled_versions().await;
    assert_ne!(after_versions.get("route"), settled.get("route"));
    // Publications trailing the last one would show within a few windows.
    tokio::time::sleep(debounce * 20).await;
    let pushes = (legate.metric("legate_reconfigurations_total").await - before) as u64;
    let bound = publication_bound(emitted, debounce);
    eprintln!(
        "{BURST} watch events over {emitted:?}: {pushes} reconfiguration(s) (bound {bound}, \
         debounce {debounce:?})"
    );
    assert!(
        (1..=bound).contains(&pushes),
        "{BURST} watch events over {emitted:?} caused {pushes} reconfigurations (at most \
         {bound} expected)"
    );
}

#[test]
fn publication_bound_counts_one_per_ten_windows_plus_the_tail() {
    let d = Duration::from_millis(75);
    assert_eq!(publication_bound(Duration::from_millis(10), d), 2);
    assert_eq!(publication_bound(Duration::from_millis(1_000), d), 3);
    assert_eq!(publication_bound(Duration::from_millis(1_600), d), 4);
}

#[test]
fn eds_service_builds_a_service_its_slice_and_a_mapping() {
    let [svc, slice, m] = eds_service(251, None);
    assert_eq!(svc["metadata"]["name"], "svc-251");
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "svc-251"
    );
    assert_eq!(slice["endpoints"][0]["addresses"][0], "127.2.1.2");
    assert_eq!(m["spec"]["service"], "svc-251:80");
    assert_eq!(m["spec"]["prefix"], "/m-251/");
    let live: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    let [_, slice, _] = eds_service(0, Some(live));
    assert_eq!(slice["ports"][0]["port"], json!(9999));
    assert_eq!(slice["endpoints"][0]["addresses"][0], "127.0.0.1");
}
