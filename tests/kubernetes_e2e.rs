//! Issue 4 end to end: legate (in process, and as a process) reading the fake API server through
//! the real kube client and a kubeconfig, serving through the real Envoy. Every kind is applied,
//! modified and deleted and the result checked with real requests and legate's admin views;
//! an EndpointSlice scales under load, a Secret rotates under TLS traffic, the API server goes
//! away and comes back, watches are cut, and 1,000 Mappings arrive at once.

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
#[path = "kubernetes_e2e/process.rs"]
mod process;
#[path = "kubernetes_e2e/tls.rs"]
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backend::Backend;
use fake_apiserver::FakeApiServer;
use harness::*;
use http::{Failure, Load, LoadSpec, eventually};
use serde_json::{Value, json};
use tls::{Ca, TlsClient};
use tokio_rustls::rustls;

/// The basic three: an HTTP Listener on `port`, a Host for every name, and Mapping `m`.
fn basic(port: u16, prefix: &str, backend: SocketAddr) -> Vec<Value> {
    vec![
        http_listener("http", port),
        host("any", "*"),
        mapping("m", prefix, &backend.to_string()),
    ]
}

fn server_header(reply: &http::Reply) -> Option<String> {
    reply
        .headers
        .get("server")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_initial_sync_then_mapping_host_listener_apply_modify_delete() {
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    server.apply_all(basic(port, "/one/", a.addr));
    // the initial list of Mappings is slow: legate must not be ready before it completes
    server.hold_lists("mappings", true);
    let Some(legate) = Legate::start(&server, |_| {}).await else {
        return;
    };
    eventually(LONG, "mappings listed", || async {
        (server.count("mappings", false) > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let not_ready = legate.ready_status().await.expect("probe answers");
    assert_eq!(not_ready.status, 503, "{}", not_ready.body);
    assert!(
        not_ready.body.contains("source kubernetes synced"),
        "the pending sync is named: {}",
        not_ready.body
    );
    server.hold_lists("mappings", false);
    legate.wait_ready().await;
    let envoy = local(port);
    until_served(envoy, "localhost", "/one/x", 200, Some("a")).await;

    // Mapping: modify the prefix and the service → new path served by b, old one 404
    server.apply(mapping("m", "/two/", &b.addr.to_string()));
    until_served(envoy, "localhost", "/two/x", 200, Some("b")).await;
    assert_eq!(
        get_host(envoy, "localhost", "/one/x").await.unwrap().status,
        404
    );
    // delete → 404
    assert!(server.delete("mappings", "default", "m"));
    until_served(envoy, "localhost", "/two/x", 404, None).await;
    server.apply(mapping("m", "/m/", &a.addr.to_string()));
    until_served(envoy, "localhost", "/m/", 200, Some("a")).await;

    // Host: narrow `*` to a.example.com → other names 404
    server.apply(host("any", "a.example.com"));
    until_served(envoy, "localhost", "/m/", 404, None).await;
    until_served(envoy, "a.example.com", "/m/", 200, Some("a")).await;
    // a second Host, then its deletion
    server.apply(host("second", "b.example.com"));
    until_served(envoy, "b.example.com", "/m/", 200, Some("a")).await;
    assert!(server.delete("hosts", "default", "second"));
    until_served(envoy, "b.example.com", "/m/", 404, None).await;
    until_served(envoy, "a.example.com", "/m/", 200, Some("a")).await;

    // Listener: move to another port → served there, the old port closes
    let port2 = free_port();
    server.apply(http_listener("http", port2));
    until_served(local(port2), "a.example.com", "/m/", 200, Some("a")).await;
    until_refused(port).await;
    let ports = listener_ports(&legate.ir().await);
    assert!(
        ports.contains(&port2) && !ports.contains(&port),
        "{ports:?}"
    );
    // delete → nothing listens
    assert!(server.delete("listeners", "default", "http"));
    until_refused(port2).await;
    eventually(LONG, "listener gone from the IR", || async {
        (!listener_ports(&legate.ir().await).contains(&port2)).then_some(())
    })
    .await;
    // ready again once Envoy has ACKed it: an empty config is a valid config
    legate.wait_ready().await;
}

fn listener_ports(ir: &Value) -> BTreeSet<u16> {
    ir["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["port"].as_u64())
        .map(|p| p as u16)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_and_tcp_mapping_apply_modify_delete() {
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let port = free_port();
    server.apply_all(basic(port, "/m/", a.addr));
    let Some(legate) = Legate::start(&server, |_| {}).await else {
        return;
    };
    legate.wait_ready().await;
    let envoy = local(port);
    let first = until_served(envoy, "localhost", "/m/", 200, Some("a")).await;
    assert_eq!(server_header(&first).as_deref(), Some("envoy"));

    // Module: server_name shows in every response's `server` header
    let module = |name: &str| {
        amb(
            "Module",
            "ambassador",
            json!({"config": {"server_name": name}}),
        )
    };
    for name in ["legate-e2e-1", "legate-e2e-2"] {
        server.apply(module(name));
        eventually(LONG, &format!("server: {name}"), || async {
            let r = get_host(envoy, "localhost", "/m/").await.ok()?;
            (r.status == 200 && server_header(&r).as_deref() == Some(name)).then_some(())
        })
        .await;
    }
    assert!(server.delete("modules", "default", "ambassador"));
    eventually(LONG, "server: envoy again", || async {
        let r = get_host(envoy, "localhost", "/m/").await.ok()?;
        (server_header(&r).as_deref() == Some("envoy")).then_some(())
    })
    .await;

    // TCPMapping: a synthesized TCP listener proxies to an echo server; moving the service
    // reaches the other one; deleting it closes the port
    let (e1, e2) = (Echo::start("e1").await, Echo::start("e2").await);
    let tcp_port = free_port();
    let tcp = |service: SocketAddr| {
        amb(
            "TCPMapping",
            "echo",
            json!({"port": tcp_port, "address": "127.0.0.1", "service": service.to_string()}),
        )
    };
    server.apply(tcp(e1.addr));
    for (echo, expect) in [(None, "e1:ping"), (Some(e2.addr), "e2:ping")] {
        if let Some(addr) = echo {
            server.apply(tcp(addr));
        }
        eventually(LONG, &format!("tcp echo {expect}"), || async {
            (tcp_exchange(local(tcp_port), "ping").await.ok()? == expect).then_some(())
        })
        .await;
    }
    assert!(server.delete("tcpmappings", "default", "echo"));
    until_refused(tcp_port).await;
    // the HTTP side was never disturbed
    until_served(envoy, "localhost", "/m/", 200, Some("a")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_context_and_secret_apply_modify_delete() {
    let (_certs, dir) = scratch();
    let ca = Ca::new(&dir);
    let one = ca.leaf("one", "tls-one", 1001, "tls.example.com");
    let two = ca.leaf("two", "tls-two", 1002, "tls.example.com");
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let port = free_port();
    let context = |min: &str| {
        amb(
            "TLSContext",
            "ctx",
            json!({"hosts": ["tls.example.com"], "min_tls_version": min}),
        )
    };
    server.apply_all(vec![
        https_listener("https", port),
        tls_secret("cert", &one.cert, &one.key),
        context("v1.2"),
        amb(
            "Host",
            "tls",
            json!({"hostname": "tls.example.com", "tlsSecret": {"name": "cert"},
                   "tlsContext": {"name": "ctx"},
                   "requestPolicy": {"insecure": {"action": "Route"}}}),
        ),
        mapping("m", "/tls/", &a.addr.to_string()),
    ]);
    let Some(legate) = Legate::start(&server, |_| {}).await else {
        return;
    };
    legate.wait_ready().await;
    let envoy = local(port);
    let any = TlsClient::any_version(&ca.pem);
    let tls12 = TlsClient::new(&ca.pem, &[&rustls::version::TLS12]);
    let served = |client: TlsClient, der: Vec<u8>| async move {
        let r = client.get(envoy, "tls.example.com", "/tls/").await.ok()?;
        (r.status == 200 && r.peer == der && r.body.contains("\"backend\":\"a\"")).then_some(())
    };
    let refused = |client: TlsClient| async move {
        client
            .get(envoy, "tls.example.com", "/tls/")
            .await
            .err()
            .filter(|e| e.starts_with("handshake"))
    };
    // without its only Host the HTTPS Listener is left out: connections are refused
    let gone = |client: TlsClient| async move {
        client
            .get(envoy, "tls.example.com", "/tls/")
            .await
            .err()
            .filter(|e| e.starts_with("connect"))
    };
    eventually(LONG, "TLS served with cert one", || {
        served(any.clone(), one.der.clone())
    })
    .await;
    assert!(
        served(tls12.clone(), one.der.clone()).await.is_some(),
        "TLS 1.2 allowed"
    );

    // TLSContext: raise the minimum version → TLS 1.2 handshakes fail, 1.3 works
    server.apply(context("v1.3"));
    eventually(LONG, "TLS 1.2 refused", || refused(tls12.clone())).await;
    assert!(served(any.clone(), one.der.clone()).await.is_some());

    // Secret: a new certificate is presented
    server.apply(tls_secret("cert", &two.cert, &two.key));
    eventually(LONG, "TLS served with cert two", || {
        served(any.clone(), two.der.clone())
    })
    .await;

    // TLSContext deleted: the Host names a missing context → dropped, with an error on admin
    assert!(server.delete("tlscontexts", "default", "ctx"));
    eventually(LONG, "no TLS without the context", || gone(any.clone())).await;
    let errors = legate.admin_json("/errors").await;
    assert!(
        errors
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "Host"
                && e["name"] == "default/tls"
                && e["field"] == "spec.tlsContext"
                && e["message"]
                    .to_string()
                    .contains("TLSContext ctx not found")),
        "the Host's error names the missing TLSContext: {errors:#}"
    );
    server.apply(context("v1.2"));
    eventually(LONG, "TLS back", || served(tls12.clone(), two.der.clone())).await;

    // Secret deleted: no certificate, no TLS; back when it returns
    assert!(server.delete("secrets", "default", "cert"));
    eventually(LONG, "no TLS without the secret", || gone(any.clone())).await;
    server.apply(tls_secret("cert", &one.cert, &one.key));
    eventually(LONG, "TLS back with cert one", || {
        served(any.clone(), one.der.clone())
    })
    .await;
    let ir = legate.ir().await;
    assert!(
        ir["secrets"].to_string().contains("cert"),
        "the certificate is an SDS secret: {}",
        ir["secrets"]
    );
}

/// Three backends on 127.0.0.2–4 with one port (EndpointSlice endpoints carry addresses; the
/// port is the slice's), from the test port allocator so that no other test can hold it.
async fn three_backends() -> (Backend, Backend, Backend, u16) {
    let port = free_port();
    let on = |name: &'static str, last: u8| async move {
        Backend::start_on(name, ([127, 0, 0, last], port).into())
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.{last}:{port}: {e}"))
    };
    (on("a", 2).await, on("b", 3).await, on("c", 4).await, port)
}

fn eds_addresses(ir: &Value) -> BTreeSet<String> {
    ir["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["address"].as_str().map(str::to_string))
        .collect()
}

fn hits(b: &Backend) -> u64 {
    b.hits.load(Ordering::Relaxed)
}

fn assert_only_endpoints_changed(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) {
    for ty in ["cluster", "listener", "route"] {
        assert_eq!(
            before.get(ty),
            after.get(ty),
            "{ty} version changed: {before:?} → {after:?}"
        );
    }
    assert_ne!(
        before.get("endpoint"),
        after.get("endpoint"),
        "EDS did not change"
    );
}

/// Waits until the IR's EDS addresses are `addrs` and Envoy ACKed the change; checks that only
/// EDS moved since `before`; returns the new versions.
async fn until_endpoints(
    legate: &Legate,
    addrs: &[&str],
    before: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let want: BTreeSet<String> = addrs.iter().map(|a| a.to_string()).collect();
    eventually(LONG, &format!("EDS endpoints {want:?}"), || async {
        (eds_addresses(&legate.ir().await) == want).then_some(())
    })
    .await;
    let after = eventually(LONG, "the EDS change acked", || async {
        let v = legate.settled_versions().await;
        (v.get("endpoint") != before.get("endpoint")).then_some(v)
    })
    .await;
    assert_only_endpoints_changed(before, &after);
    after
}

/// Waits until traffic reaches a only: the removed backends got no request while the load got
/// 20 more answers and 20 requests on fresh connections were answered by a. (Envoy ACKs an
/// EDS change once its main thread applied it; its workers get the new hosts just after.)
async fn until_only_a(envoy: SocketAddr, load: &Load, removed: &[&Backend]) {
    let removed_hits = || removed.iter().map(|b| hits(b)).sum::<u64>();
    eventually(LONG, "traffic to a only", || async {
        let before = removed_hits();
        load.until_answered(20).await;
        for _ in 0..20 {
            let r = get_host(envoy, "localhost", "/web/").await.ok()?;
            if r.backend().as_deref() != Some("a") {
                return None;
            }
        }
        (removed_hits() == before).then_some(())
    })
    .await;
}

/// The slice's three endpoints (a, b, c on 127.0.0.2–4) in force, under keep-alive load on
/// `/web/load`: the start of both EndpointSlice scaling tests.
struct Scaling {
    server: FakeApiServer,
    legate: Legate,
    envoy: SocketAddr,
    load: Load,
    versions: BTreeMap<String, String>,
}

async fn scaled_to_three(
    a: &Backend,
    b: &Backend,
    c: &Backend,
    backend_port: u16,
) -> Option<Scaling> {
    let server = FakeApiServer::start().await;
    let port = free_port();
    server.apply_all(vec![
        http_listener("http", port),
        host("any", "*"),
        service("web", 8080, backend_port),
        web_slice(backend_port, &[("127.0.0.2", true, false)]),
        amb(
            "Mapping",
            "web",
            json!({"hostname": "*", "prefix": "/web/", "service": "web:8080",
                   "resolver": "kubernetes-endpoint"}),
        ),
    ]);
    let legate = Legate::start(&server, |_| {}).await?;
    legate.wait_ready().await;
    let envoy = local(port);
    until_served(envoy, "localhost", "/web/", 200, Some("a")).await;
    let v1 = legate.settled_versions().await;

    let load = Load::start(envoy, "/web/load", 4, Duration::from_millis(10));
    load.until_answered(20).await;

    // 1 → 3: the new endpoints take traffic
    server.apply(web_slice(
        backend_port,
        &[
            ("127.0.0.2", true, false),
            ("127.0.0.3", true, false),
            ("127.0.0.4", true, false),
        ],
    ));
    eventually(LONG, "b and c answer", || async {
        (hits(b) > 0 && hits(c) > 0).then_some(())
    })
    .await;
    let versions = until_endpoints(&legate, &["127.0.0.2", "127.0.0.3", "127.0.0.4"], &v1).await;
    assert!(hits(a) > 0);
    Some(Scaling {
        server,
        legate,
        envoy,
        load,
        versions,
    })
}

/// The test's EndpointSlice for Service `web`.
fn web_slice(backend_port: u16, eps: &[Ep<'_>]) -> Value {
    endpoint_slice("web-x1", "web", backend_port, eps)
}

/// Scaling 1 → 3 → 1 → 2 → 1 under keep-alive load fails no request. Each backend that leaves
/// the assignment is stopped once Envoy has ACKed the change and sends it nothing more (like
/// a pod that exits after its endpoint is gone), so a request still routed to it would fail
/// and be counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slice_scaling_under_load_fails_no_request() {
    let (a, b, c, backend_port) = three_backends().await;
    let Some(Scaling {
        server,
        legate,
        envoy,
        load,
        versions: v3,
        ..
    }) = scaled_to_three(&a, &b, &c, backend_port).await
    else {
        return;
    };
    let slice = |eps: &[Ep<'_>]| web_slice(backend_port, eps);

    // b not ready, c terminating: both leave the assignment, then stop
    server.apply(slice(&[
        ("127.0.0.2", true, false),
        ("127.0.0.3", false, false),
        ("127.0.0.4", true, true),
    ]));
    let v_down = until_endpoints(&legate, &["127.0.0.2"], &v3).await;
    until_only_a(envoy, &load, &[&b, &c]).await;
    b.stop().await;
    c.stop().await;
    load.until_answered(20).await;

    // b back (a new process on its address) and ready again, c gone: b takes traffic again
    let b = Backend::start_on("b", ([127, 0, 0, 3], backend_port).into())
        .await
        .expect("b restarts on its address");
    server.apply(slice(&[
        ("127.0.0.2", true, false),
        ("127.0.0.3", true, false),
    ]));
    let v_two = until_endpoints(&legate, &["127.0.0.2", "127.0.0.3"], &v_down).await;
    eventually(LONG, "b answers again", || async {
        (hits(&b) > 0).then_some(())
    })
    .await;

    // → 1: the slice lists a alone, then b stops
    server.apply(slice(&[("127.0.0.2", true, false)]));
    until_endpoints(&legate, &["127.0.0.2"], &v_two).await;
    until_only_a(envoy, &load, &[&b]).await;
    b.stop().await;
    load.until_answered(20).await;
    let report = load.finish().await;
    eprintln!("endpoint slice scaling: {report}");
    report.assert_clean("requests while scaling", 60);

    // EndpointSlice deleted: no endpoints (503), same cluster; back (with b) when it returns
    let _b = Backend::start_on("b", ([127, 0, 0, 3], backend_port).into())
        .await
        .expect("b restarts on its address");
    assert!(server.delete("endpointslices", "default", "web-x1"));
    until_served(envoy, "localhost", "/web/", 503, None).await;
    server.apply(slice(&[("127.0.0.3", true, false)]));
    until_served(envoy, "localhost", "/web/", 200, Some("b")).await;
    // Service modified to another port: the Mapping's port no longer exists → no endpoints
    server.apply(service("web", 9090, backend_port));
    until_served(envoy, "localhost", "/web/", 503, None).await;
    server.apply(service("web", 8080, backend_port));
    until_served(envoy, "localhost", "/web/", 200, Some("b")).await;
    // Service deleted: the explicit resolver keeps EDS, with no endpoints
    assert!(server.delete("services", "default", "web"));
    until_served(envoy, "localhost", "/web/", 503, None).await;
    let v_end = legate.settled_versions().await;
    assert_eq!(
        v_end.get("cluster"),
        v3.get("cluster"),
        "the cluster never changed"
    );
}

/// The broken variant of the scaling test: backends stopped *before* the slice drops them
/// (pods killed while still listed) make Envoy route requests to dead endpoints, and the load
/// generator counts the failed requests. Proves the zero-failure check above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slice_scale_down_after_the_backends_stopped_is_caught() {
    let (a, b, c, backend_port) = three_backends().await;
    let Some(scaling) = scaled_to_three(&a, &b, &c, backend_port).await else {
        return;
    };
    b.stop().await;
    c.stop().await;
    scaling.load.until_failed(1).await;
    scaling
        .server
        .apply(web_slice(backend_port, &[("127.0.0.2", true, false)]));
    until_endpoints(&scaling.legate, &["127.0.0.2"], &scaling.versions).await;
    let report = scaling.load.finish().await;
    eprintln!("endpoint slice scaling with stopped backends: {report}");
    assert!(
        report.count(Failure::Status) + report.count(Failure::Reset) > 0,
        "{report}"
    );
}

/// An HTTPS listener on `port` serving `tls.example.com` with Secret `cert` (`leaf`), routing
/// everything to `backend`; legate started and serving it.
async fn tls_served(
    server: &FakeApiServer,
    ca: &Ca,
    leaf: &tls::Leaf,
    backend: SocketAddr,
) -> Option<(Legate, SocketAddr)> {
    let port = free_port();
    server.apply_all(vec![
        https_listener("https", port),
        tls_secret("cert", &leaf.cert, &leaf.key),
        amb(
            "Host",
            "tls",
            json!({"hostname": "tls.example.com", "tlsSecret": {"name": "cert"},
                   "requestPolicy": {"insecure": {"action": "Route"}}}),
        ),
        mapping("m", "/", &backend.to_string()),
    ]);
    let legate = Legate::start(server, |_| {}).await?;
    legate.wait_ready().await;
    let envoy = local(port);
    let client = TlsClient::any_version(&ca.pem);
    eventually(LONG, "TLS served", || async {
        let r = client.get(envoy, "tls.example.com", "/").await.ok()?;
        (r.status == 200 && r.peer == leaf.der).then_some(())
    })
    .await;
    Some((legate, envoy))
}

/// TLS load: every request on a new connection (a new handshake, checked against `ca`), the
/// certificate each handshake got recorded in the returned list.
fn tls_load(envoy: SocketAddr, ca: &Ca) -> (Load, Arc<Mutex<Vec<Vec<u8>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = TlsClient::any_version(&ca.pem);
    let record = seen.clone();
    let connector: http::Connector = Arc::new(move |addr| {
        let (client, record) = (client.clone(), record.clone());
        Box::pin(async move {
            let (stream, peer) = client.connect(addr, "tls.example.com").await?;
            record.lock().unwrap().push(peer);
            Ok(Box::new(stream) as Box<dyn http::Io>)
        })
    });
    let load = LoadSpec::new(envoy, "/")
        .host("tls.example.com")
        .connections(3)
        .interval(Duration::from_millis(5))
        .new_connection_per_request()
        .connector(connector)
        .start();
    (load, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation_under_tls_traffic_fails_no_handshake() {
    let (_certs, dir) = scratch();
    let ca = Ca::new(&dir);
    let one = ca.leaf("one", "rotate-one", 2001, "tls.example.com");
    let two = ca.leaf("two", "rotate-two", 2002, "tls.example.com");
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let Some((legate, envoy)) = tls_served(&server, &ca, &one, a.addr).await else {
        return;
    };
    let before = legate.settled_versions().await;

    // continuous TLS requests, each on a new connection (a new handshake)
    let (load, seen) = tls_load(envoy, &ca);
    load.until_answered(20).await;
    server.apply(tls_secret("cert", &two.cert, &two.key));
    let after = eventually(LONG, "the rotation acked", || async {
        let v = legate.settled_versions().await;
        (v.get("secret") != before.get("secret")).then_some(v)
    })
    .await;
    // new connections present the new certificate (10 in a row: Envoy's workers get the
    // secret just after the ACK)
    let client = TlsClient::any_version(&ca.pem);
    eventually(
        LONG,
        "10 new connections in a row with the new certificate",
        || async {
            for _ in 0..10 {
                let r = client.get(envoy, "tls.example.com", "/").await.ok()?;
                if r.peer != two.der {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    load.until_answered(20).await;
    let report = load.finish().await;
    eprintln!("secret rotation: {report}");
    report.assert_clean("TLS requests during the rotation", 40);
    let seen = seen.lock().unwrap().clone();
    let old = seen.iter().filter(|p| **p == one.der).count();
    let new = seen.iter().filter(|p| **p == two.der).count();
    assert!(
        old > 0 && new > 0,
        "traffic before and after: {old} old, {new} new"
    );
    assert_eq!(
        old + new,
        seen.len(),
        "an unknown certificate was presented"
    );
    // SDS only: no listener (so no drain), cluster or route change
    for ty in ["listener", "cluster", "route"] {
        assert_eq!(
            before.get(ty),
            after.get(ty),
            "{ty} changed: {before:?} → {after:?}"
        );
    }
}

/// The broken variant of the rotation test: a rotation to a certificate the clients do not
/// trust (signed by another CA) fails handshakes, and the TLS load counts them. Proves the
/// zero-failure check above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation_to_an_untrusted_certificate_is_caught() {
    let (_certs, dir) = scratch();
    let (_other, other_dir) = scratch();
    let ca = Ca::new(&dir);
    let one = ca.leaf("one", "rotate-one", 3001, "tls.example.com");
    let stranger = Ca::new(&other_dir).leaf("bad", "rotate-bad", 3002, "tls.example.com");
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let Some((_legate, envoy)) = tls_served(&server, &ca, &one, a.addr).await else {
        return;
    };
    let (load, _seen) = tls_load(envoy, &ca);
    load.until_answered(20).await;
    server.apply(tls_secret("cert", &stranger.cert, &stranger.key));
    load.until_failed(1).await;
    let report = load.finish().await;
    eprintln!("secret rotation to an untrusted certificate: {report}");
    assert!(report.count(Failure::Connect) > 0, "{report}");
    assert!(
        report.samples.iter().any(|s| s.contains("handshake")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_and_cut_watches_lose_nothing() {
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let port = free_port();
    server.apply_all(basic(port, "/one/", a.addr));
    let Some(legate) = Legate::start(&server, |_| {}).await else {
        return;
    };
    legate.wait_ready().await;
    let envoy = local(port);
    until_served(envoy, "localhost", "/one/", 200, Some("a")).await;

    // down: Envoy keeps the last config and legate stays ready
    server.set_down(true);
    for _ in 0..12 {
        let ready = legate.ready_status().await.expect("probe");
        assert_eq!(
            ready.status, 200,
            "ready while the API server is down: {}",
            ready.body
        );
        let r = get_host(envoy, "localhost", "/one/").await.expect("envoy");
        assert_eq!(r.status, 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // a change made while legate cannot see it arrives once the server is back
    server.apply(mapping("m2", "/two/", &a.addr.to_string()));
    server.set_down(false);
    until_served(envoy, "localhost", "/two/", 200, Some("a")).await;

    // watches cut right after changes, and changes made while they reconnect: none is lost
    let watches = server.count("mappings", true);
    server.apply(mapping("m3", "/three/", &a.addr.to_string()));
    server.drop_watches();
    server.apply(mapping("m4", "/four/", &a.addr.to_string()));
    assert!(server.delete("mappings", "default", "m"));
    for path in ["/three/", "/four/"] {
        until_served(envoy, "localhost", path, 200, Some("a")).await;
    }
    until_served(envoy, "localhost", "/one/", 404, None).await;
    assert!(
        server.count("mappings", true) > watches,
        "the Mapping watch was re-established"
    );
    legate.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_1000_mappings_causes_few_reconfigurations() {
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let port = free_port();
    server.apply_all(basic(port, "/base/", a.addr));
    let Some(legate) = Legate::start(&server, |_| {}).await else {
        return;
    };
    legate.wait_ready().await;
    let envoy = local(port);
    until_served(envoy, "localhost", "/base/", 200, Some("a")).await;
    legate.settled_versions().await;
    let before = legate.metric("legate_reconfigurations_total").await;

    let service = a.addr.to_string();
    server.apply_all(
        (0..1000)
            .map(|i| mapping(&format!("burst-{i}"), &format!("/burst-{i}/"), &service))
            .collect(),
    );
    eventually(LONG, "1,000 more routes in the IR", || async {
        let routes = legate.ir().await["route_tables"].to_string();
        routes.contains("/burst-999/").then_some(())
    })
    .await;
    legate.settled_versions().await;
    for i in [0, 1, 123, 500, 998, 999] {
        until_served(envoy, "localhost", &format!("/burst-{i}/x"), 200, Some("a")).await;
    }
    let after = legate.metric("legate_reconfigurations_total").await;
    let pushes = after - before;
    assert!(
        (1.0..=10.0).contains(&pushes),
        "1,000 objects caused {pushes} reconfigurations"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legate_process_with_kubeconfig_serves_and_exits_0_on_sigterm() {
    let Some(envoy_bin) = legate::envoy::locate::for_tests() else {
        return;
    };
    let server = FakeApiServer::start().await;
    let a = Backend::start("a").await;
    let port = free_port();
    server.apply_all(basic(port, "/p/", a.addr));
    let mut legate = process::Process::start(&server, &envoy_bin).await;
    let probe = legate.probe;
    eventually(LONG, "/ready 200", || async {
        (http::get(probe, "/ready").await.ok()?.status == 200).then_some(())
    })
    .await;
    let envoy = local(port);
    until_served(envoy, "localhost", "/p/", 200, Some("a")).await;
    server.apply(mapping("m", "/q/", &a.addr.to_string()));
    until_served(envoy, "localhost", "/q/", 200, Some("a")).await;
    let code = legate.terminate().await;
    assert_eq!(code, Some(0), "stderr:\n{}", legate.stderr());
}
