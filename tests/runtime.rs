//! issue 2's runtime tests, in process, with the real Envoy: legate started with an IR built in
//! code serves traffic, reconfigures under load without failing a request, and restarts a
//! killed Envoy (exiting with the documented code when the restart budget is spent).

#[path = "common/backend.rs"]
mod backend;
#[path = "common/http.rs"]
mod http;
#[path = "common/ports.rs"]
mod ports;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backend::Backend;
use http::{Failure, Load, LoadReport, eventually, get, metric};
use legate::app::{App, Overrides, Signals};
use legate::config::{Config, Env};
use legate::ir::*;
use legate::pipeline::Input;
use legate::{drain, exit, signal};
use tokio::sync::watch;

const LONG: Duration = Duration::from_secs(60);

use ports::port as free_port;

/// One listener on `port` routing `/` to `cluster` (a static cluster at `backend`), adding the
/// response header `x-gen: <generation>` so a test can tell which version answered.
fn ir(port: u16, cluster: &str, backend: SocketAddr, generation: u32) -> Ir {
    let mut route = Route::new(
        RouteMatch::prefix("/"),
        RouteAction::Forward(Forward::to(cluster)),
    );
    route.response_headers_to_add.push(HeaderValue {
        name: "x-gen".into(),
        value: generation.to_string(),
        append: false,
    });
    Ir {
        listeners: vec![Listener {
            name: "test".into(),
            address: "127.0.0.1".into(),
            port,
            stat_prefix: "test".into(),
            proxy_protocol: false,
            per_connection_buffer_limit_bytes: None,
            filter_chains: vec![FilterChain {
                name: "http".into(),
                server_names: vec![],
                match_tls: false,
                tls: None,
                action: ChainAction::Http(HttpManager::new("ingress_http", "test/http")),
            }],
        }],
        route_tables: vec![RouteTable {
            name: "test/http".into(),
            virtual_hosts: vec![VirtualHost {
                name: "any".into(),
                domains: vec!["*".into()],
                routes: vec![route],
            }],
        }],
        clusters: vec![Cluster::new(
            cluster,
            Discovery::Static(vec![Endpoint::new(
                backend.ip().to_string(),
                backend.port(),
            )]),
        )],
        endpoints: vec![],
        secrets: vec![],
    }
}

struct Running {
    probe: SocketAddr,
    admin: SocketAddr,
    envoy: legate::envoy::supervisor::Handle,
    trigger: drain::Trigger,
    exit: tokio::task::JoinHandle<u8>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        // a failed test must not leave Envoy behind: fast exit, and the runtime's shutdown
        // drops the supervisor, whose launcher kills its children
        self.trigger.fast("test ended");
    }
}

async fn start(
    initial: Ir,
    tweak: impl FnOnce(&mut Config),
) -> Option<(Running, watch::Sender<Arc<Ir>>)> {
    let binary = legate::envoy::locate::for_tests()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.envoy.binary = Some(binary);
    config.runtime_dir = Some(dir.path().to_path_buf());
    config.probe.address = "127.0.0.1:0".parse().expect("addr");
    config.admin.address = "127.0.0.1:0".parse().expect("addr");
    config.drain.min_ms = 100;
    config.drain.deadline_ms = 5_000;
    config.drain.poll_ms = 100;
    tweak(&mut config);
    let (tx, rx) = watch::channel(Arc::new(initial));
    let (trigger, _) = drain::channel();
    let signals = Signals {
        trigger: trigger.clone(),
        envoy_pid: signal::EnvoyPid::default(),
    };
    let overrides = Overrides {
        input: Some(Input::Ir(rx)),
        no_reaper: true,
    };
    let app = match App::start(config, &Env::default(), signals, overrides).await {
        Ok(app) => app,
        Err(e) => panic!("legate did not start: {}", e.message),
    };
    let running = Running {
        probe: app.bound().probe,
        admin: app.bound().admin,
        envoy: app.envoy().clone(),
        trigger,
        exit: tokio::spawn(app.wait()),
        _dir: dir,
    };
    Some((running, tx))
}

async fn ready_status(probe: SocketAddr) -> Option<u16> {
    get(probe, "/ready").await.ok().map(|r| r.status)
}

async fn wait_ready(probe: SocketAddr) {
    eventually(LONG, "/ready 200", || async {
        (ready_status(probe).await == Some(200)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_through_envoy() {
    let backend = Backend::start("a").await;
    let port = free_port();
    let Some((app, _tx)) = start(ir(port, "a", backend.addr, 1), |_| {}).await else {
        return;
    };
    let not_ready = get(app.probe, "/ready").await.expect("probe answers");
    assert_eq!(
        not_ready.status, 503,
        "not ready before Envoy ACKs: {}",
        not_ready.body
    );
    wait_ready(app.probe).await;
    let envoy: SocketAddr = ([127, 0, 0, 1], port).into();
    let reply = get(envoy, "/hello?x=1")
        .await
        .expect("request through envoy");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend().as_deref(), Some("a"));
    assert_eq!(reply.json()["path"], "/hello?x=1");
    assert_eq!(
        reply.headers.get("x-gen").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    // the Emissary probe aliases and the admin views answer too
    assert_eq!(
        get(app.probe, "/ambassador/v0/check_ready")
            .await
            .expect("alias")
            .status,
        200
    );
    assert_eq!(get(app.probe, "/live").await.expect("live").status, 200);
    assert_eq!(
        metric(app.admin, "legate_reconfigurations_total").await,
        1.0
    );
    assert_eq!(metric(app.admin, "legate_envoy_live").await, 1.0);
    // per-client xDS state on admin: the one Envoy ACKed what it was sent, NACKed nothing
    let xds = get(app.admin, "/xds").await.expect("xds").json();
    assert_eq!(xds.as_array().map(Vec::len), Some(1), "one client: {xds}");
    for ty in ["cluster", "listener", "route"] {
        let state = &xds[0]["types"][ty];
        let sent = state["sent_version"].as_str().unwrap_or_default();
        assert!(!sent.is_empty(), "{ty}: nothing sent: {xds:#}");
        assert_eq!(state["acked_version"], sent, "{ty} not acked: {xds:#}");
        assert_eq!(state["nack_count"], 0, "{ty} NACKed: {xds:#}");
    }
    let ir_json = get(app.admin, "/ir").await.expect("ir").json();
    assert_eq!(ir_json["listeners"][0]["port"], port);
}

/// 100 IR changes under keep-alive load (8 connections, a request every 10 ms on each), each
/// published as its own reconfiguration: the next change is made only once the counter shows
/// the last one (and a few more requests were answered), so none can be merged into another. With `drain_listener` every change also
/// changes a listener-level field, so Envoy replaces the listener and drains its connections:
/// the deliberately broken variant that the load generator must catch.
///
/// Returns the load's report and the number of reconfigurations counted.
async fn hundred_changes_under_load(drain_listener: bool) -> Option<(LoadReport, f64)> {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let (app, tx) = start(ir(port, "c0", a.addr, 0), |_| {}).await?;
    wait_ready(app.probe).await;
    let envoy: SocketAddr = ([127, 0, 0, 1], port).into();
    let before = metric(app.admin, "legate_reconfigurations_total").await;

    let load = Load::start(envoy, "/load", 8, Duration::from_millis(10));
    load.until_answered(50).await;
    for i in 1..=100u32 {
        // the cluster name changes too, so clusters are added and removed under traffic
        let backend = if i % 2 == 0 { a.addr } else { b.addr };
        let mut next = ir(port, &format!("c{}", i % 4), backend, i);
        if drain_listener {
            next.listeners[0].per_connection_buffer_limit_bytes = Some(1 << 20 | i);
        }
        tx.send_replace(Arc::new(next));
        let published = before + f64::from(i);
        eventually(LONG, &format!("change {i} published"), || async {
            (metric(app.admin, "legate_reconfigurations_total").await >= published).then_some(())
        })
        .await;
        // traffic flows between every two changes
        load.until_answered(5).await;
    }
    // the last change is served: generation 100 (even → backend a)
    eventually(LONG, "the last change served", || async {
        let r = get(envoy, "/last").await.ok()?;
        (r.headers.get("x-gen")?.as_bytes() == b"100" && r.backend().as_deref() == Some("a"))
            .then_some(())
    })
    .await;
    load.until_answered(50).await;
    let report = load.finish().await;
    let pushes = metric(app.admin, "legate_reconfigurations_total").await - before;
    Some((report, pushes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfiguration_under_load_drops_nothing() {
    let Some((report, pushes)) = hundred_changes_under_load(false).await else {
        return;
    };
    eprintln!("reconfiguration under load: {report}");
    assert_eq!(
        pushes, 100.0,
        "each of the 100 changes is one reconfiguration"
    );
    // at least 50 + 100 × 5 + 50 answers were waited for
    report.assert_clean("reconfiguration under load", 600);
}

/// The broken variant of [`reconfiguration_under_load_drops_nothing`]: changes that make Envoy
/// drain its listener close the load's keep-alive connections, and the load generator counts
/// that. Proves the zero-failure check above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfiguration_that_drains_the_listener_is_caught() {
    let Some((report, pushes)) = hundred_changes_under_load(true).await else {
        return;
    };
    eprintln!("reconfiguration draining the listener: {report}");
    assert_eq!(pushes, 100.0);
    let closed = report.count(Failure::Closed) + report.count(Failure::Reset);
    assert!(
        closed > 0,
        "drained listeners closed no connection the load generator saw: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_envoy_is_restarted_and_serves_again() {
    let backend = Backend::start("a").await;
    let port = free_port();
    let Some((app, _tx)) = start(ir(port, "a", backend.addr, 1), |_| {}).await else {
        return;
    };
    wait_ready(app.probe).await;
    let envoy: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(get(envoy, "/").await.expect("before").status, 200);

    let pid = app.envoy.pid().expect("envoy pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill envoy");
    // readiness goes false while Envoy is down...
    eventually(LONG, "/ready 503 after SIGKILL", || async {
        (ready_status(app.probe).await == Some(503)).then_some(())
    })
    .await;
    // ...then Envoy is restarted, re-fetches its config over ADS and is ready again
    wait_ready(app.probe).await;
    let new_pid = app.envoy.pid().expect("restarted envoy pid");
    assert_ne!(new_pid, pid);
    let reply = get(envoy, "/again").await.expect("traffic after restart");
    assert_eq!((reply.status, reply.backend().as_deref()), (200, Some("a")));
    assert_eq!(
        metric(app.admin, "legate_envoy_restarts_total{reason=\"signal\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_restart_budget_exits_with_its_code() {
    let backend = Backend::start("a").await;
    let port = free_port();
    let Some((mut app, _tx)) = start(ir(port, "a", backend.addr, 1), |c| {
        c.envoy.restart.budget = 1;
        c.envoy.restart.initial_backoff_ms = 10;
        c.envoy.restart.max_backoff_ms = 20;
    })
    .await
    else {
        return;
    };
    wait_ready(app.probe).await;
    let kill = |pid: u32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill envoy")
    };
    let first = app.envoy.pid().expect("pid");
    kill(first);
    let second = eventually(LONG, "a restarted envoy", || async {
        app.envoy.pid().filter(|p| *p != first)
    })
    .await;
    kill(second);
    let code = tokio::time::timeout(LONG, &mut app.exit)
        .await
        .expect("legate exits")
        .expect("join");
    assert_eq!(code, exit::RESTART_BUDGET);
}
