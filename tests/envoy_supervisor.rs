//! The supervisor with the real Envoy 1.40: start from legate's bootstrap with no ADS server
//! (Envoy stays PRE_INITIALIZING), restart after SIGKILL, restart budget, hang detection, drain
//! and stop. Every Envoy dies with its test: the supervisor's launcher thread ends with the
//! runtime (parent-death signal) and `KillOnDrop` kills the process group.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use legate::config::{DrainSettings, EnvoySettings};
use legate::envoy::supervisor::{EnvoyStatus, Handle, Paths, Supervisor, SupervisorError};
use legate::envoy::{Address, State, bootstrap};
use legate::metrics::Metrics;
use legate::readiness::Ready;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

const WAIT: Duration = Duration::from_secs(30);

struct Harness {
    handle: Handle,
    ready: Ready,
    metrics: Arc<Metrics>,
    run: JoinHandle<Result<Option<legate::envoy::process::ExitInfo>, SupervisorError>>,
    _dir: tempfile::TempDir,
}

/// Kills whatever Envoy the supervisor runs when the test ends, pass or fail.
impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(pid) = self.handle.pid() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        self.run.abort();
    }
}

fn settings() -> EnvoySettings {
    let mut s = EnvoySettings {
        health_interval_ms: 100,
        log_level: "info".into(),
        ..EnvoySettings::default()
    };
    s.restart.initial_backoff_ms = 10;
    s.restart.max_backoff_ms = 50;
    s
}

fn drain_settings() -> DrainSettings {
    DrainSettings {
        delay_ms: 0,
        min_ms: 100,
        deadline_ms: 20_000,
        poll_ms: 50,
        stop_timeout_ms: 2_000,
    }
}

fn start(settings: EnvoySettings) -> Option<Harness> {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("legate=debug,envoy=info")
        .try_init();
    let binary = legate::envoy::locate::for_tests()?;
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths {
        binary,
        runtime_dir: dir.path().join("run"),
        // Nothing listens there: Envoy never gets CDS/LDS.
        xds: Address::Unix(dir.path().join("xds.sock")),
    };
    let ready = Ready::new();
    let metrics = Arc::new(Metrics::default());
    let (sup, handle) = Supervisor::new(
        &settings,
        &drain_settings(),
        paths,
        metrics.clone(),
        ready.guard("envoy live"),
    )
    .unwrap();
    let run = tokio::spawn(sup.run());
    Some(Harness {
        handle,
        ready,
        metrics,
        run,
        _dir: dir,
    })
}

async fn wait_status(h: &Harness, what: &str, f: impl Fn(&EnvoyStatus) -> bool) -> EnvoyStatus {
    let mut rx = h.handle.status();
    let r = timeout(WAIT, rx.wait_for(|s| f(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match r {
        Ok(Ok(s)) => s,
        _ => panic!("timed out waiting for {what}; status {:?}", *rx.borrow()),
    }
}

async fn pre_initializing(h: &Harness) -> EnvoyStatus {
    wait_status(h, "PRE_INITIALIZING", |s| s.state == State::PreInitializing).await
}

/// True once `pid` is gone (exited and reaped): no /proc entry, or not our child any more.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let ppid = rest.split_whitespace().nth(1).unwrap_or("");
            ppid != std::process::id().to_string()
        }
    }
}

fn pgrp(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_without_ads_stays_pre_initializing() {
    let Some(h) = start(settings()) else { return };
    let status = pre_initializing(&h).await;
    let pid = status.pid.unwrap();
    assert_eq!(pgrp(pid), pid, "envoy leads its own process group");
    assert!(status.version.as_deref().unwrap().contains("1.40"));
    // Envoy took legate's flags (an unknown one would have stopped it): among them the one
    // that skips the per-update field walk (src/envoy/process.rs).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    assert!(
        argv.contains(&&b"--ignore-unknown-dynamic-fields"[..]),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );

    let admin = h.handle.admin().unwrap();
    let Address::Unix(sock) = admin.target().clone() else {
        panic!("default admin is a unix socket")
    };
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let info = admin.server_info().await.unwrap();
    assert_eq!(info.state, State::PreInitializing);
    assert_eq!(info.drain_strategy.as_deref(), Some("Immediate"));
    assert_eq!(info.drain_time, Some(Duration::from_secs(25)));
    assert!(!admin.ready().await.unwrap());
    // Our own admin connections do not count as data-plane connections.
    assert_eq!(admin.downstream_cx_active(&[]).await.unwrap(), 0);

    assert_eq!(h.ready.pending(), vec!["envoy live"]);
    assert_eq!(h.metrics.envoy_state.get(), 2);
    assert_eq!(h.metrics.envoy_live.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_restarts_envoy() {
    let Some(h) = start(settings()) else { return };
    let first = pre_initializing(&h).await.pid.unwrap();
    let mut rx = h.handle.status();
    rx.borrow_and_update();
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();

    // The supervisor notices at once: the pid goes away before a new one appears.
    let down = timeout(WAIT, rx.wait_for(|s| s.pid != Some(first)))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(down.last_exit.unwrap().signal, Some(9), "{down:?}");
    assert!(h.ready.pending().contains(&"envoy live".to_string()));

    let after = wait_status(&h, "restarted envoy", |s| {
        s.restarts == 1 && s.state == State::PreInitializing
    })
    .await;
    assert_ne!(after.pid, Some(first));
    assert!(gone(first), "the killed envoy was reaped");
    assert_eq!(h.metrics.envoy_restarts.get("signal"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_budget_is_enforced() {
    let mut s = settings();
    s.restart.budget = 2;
    let Some(mut h) = start(s) else { return };
    let mut previous = None;
    for round in 0..3 {
        let st = wait_status(&h, "a running envoy", |s| {
            s.state == State::PreInitializing && s.pid.is_some() && s.pid != previous
        })
        .await;
        assert_eq!(st.restarts, round);
        let pid = st.pid.unwrap();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        previous = Some(pid);
    }
    let result = timeout(WAIT, &mut h.run).await.unwrap().unwrap();
    match result {
        Err(SupervisorError::BudgetExhausted { deaths, .. }) => assert_eq!(deaths, 3),
        other => panic!("expected the budget error, got {other:?}"),
    }
    assert!(gone(previous.unwrap()));
    assert_eq!(h.metrics.envoy_state.get(), -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_admin_gets_envoy_restarted() {
    let mut s = settings();
    s.unresponsive_timeout_ms = 1_000;
    let Some(h) = start(s) else { return };
    let first = pre_initializing(&h).await.pid.unwrap();
    // A stopped Envoy cannot answer admin (nor act on SIGABRT): the supervisor must kill it.
    kill(Pid::from_raw(first as i32), Signal::SIGSTOP).unwrap();
    // A new Envoy is started. (Not waiting for it to answer admin: with a 1 s timeout, a cold
    // start on a loaded machine can itself count as a hang, which is the same path again.)
    let after = wait_status(&h, "a new envoy after the hang", |s| {
        s.restarts >= 1 && s.pid.is_some() && s.pid != Some(first)
    })
    .await;
    assert!(
        gone(first),
        "the hung envoy {first} was killed and reaped: {after:?}"
    );
    let restarts = &h.metrics.envoy_restarts;
    assert!(restarts.get("unresponsive") >= 1.0, "{after:?}");
    assert_eq!(
        (restarts.get("signal"), restarts.get("exited")),
        (0.0, 0.0),
        "every restart was for a hang: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_without_connections_completes_and_reaps_envoy() {
    let Some(mut h) = start(settings()) else {
        return;
    };
    let pid = pre_initializing(&h).await.pid.unwrap();
    let outcome = timeout(
        WAIT,
        h.handle
            .drain(&drain_settings(), Instant::now() + Duration::from_secs(20)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(outcome.completed, "{outcome:?}");
    assert_eq!(outcome.active_connections, Some(0));
    assert!(!outcome.envoy_died);
    assert_eq!(outcome.envoy_exit.unwrap().code, Some(0), "{outcome:?}");
    let exit = timeout(WAIT, &mut h.run).await.unwrap().unwrap().unwrap();
    assert_eq!(exit.unwrap().code, Some(0));
    assert!(gone(pid), "no envoy process remains");
    assert_eq!(h.handle.pid(), None);
    assert!(matches!(
        h.handle.stop_now().await,
        Err(SupervisorError::Gone)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_now_terminates_envoy() {
    let Some(mut h) = start(settings()) else {
        return;
    };
    let pid = pre_initializing(&h).await.pid.unwrap();
    let exit = timeout(WAIT, h.handle.stop_now()).await.unwrap().unwrap();
    assert_eq!(exit.unwrap().code, Some(0), "SIGTERM makes envoy exit 0");
    timeout(WAIT, &mut h.run).await.unwrap().unwrap().unwrap();
    assert!(gone(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_admin_on_port_zero_is_discovered() {
    let mut s = settings();
    s.admin = "127.0.0.1:0".into();
    let Some(h) = start(s) else { return };
    pre_initializing(&h).await;
    let admin = h.handle.admin().unwrap();
    let Address::Tcp(addr) = admin.target().clone() else {
        panic!("tcp admin expected")
    };
    assert_ne!(addr.port(), 0);
    assert_eq!(
        admin.server_info().await.unwrap().state,
        State::PreInitializing
    );
}

#[tokio::test]
async fn rendered_bootstraps_pass_envoy_validate() {
    let Some(binary) = legate::envoy::locate::for_tests() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unix = bootstrap::Params::new(
        "legate-test",
        "edge",
        Address::Unix(dir.path().join("admin.sock")),
        Address::Unix(dir.path().join("xds.sock")),
    );
    let tcp = bootstrap::Params::new(
        "legate-test",
        "edge",
        Address::Tcp("127.0.0.1:0".parse().unwrap()),
        Address::Tcp("[::1]:18000".parse().unwrap()),
    );
    for (name, params) in [("unix.yaml", unix), ("tcp.yaml", tcp)] {
        let path = dir.path().join(name);
        bootstrap::write(&params, &path).unwrap();
        bootstrap::validate(&binary, &path)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "static_resources: {clusters: [{name: x, type: NOPE}]}",
    )
    .unwrap();
    let err = bootstrap::validate(&binary, Path::new(&broken))
        .await
        .unwrap_err();
    assert!(
        matches!(err, bootstrap::BootstrapError::Invalid { .. }),
        "{err}"
    );
}

fn slow_drain() -> DrainSettings {
    DrainSettings {
        min_ms: 20_000,
        ..drain_settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_dying_during_the_drain_ends_it_at_once() {
    let Some(mut h) = start(settings()) else {
        return;
    };
    let pid = pre_initializing(&h).await.pid.unwrap();
    let handle = h.handle.clone();
    let drain = tokio::spawn(async move {
        handle
            .drain(&slow_drain(), Instant::now() + Duration::from_secs(25))
            .await
    });
    wait_status(&h, "DRAINING", |s| s.state == State::Draining).await;
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let outcome = timeout(WAIT, drain).await.unwrap().unwrap().unwrap();
    assert!(outcome.envoy_died, "{outcome:?}");
    assert!(!outcome.completed);
    assert_eq!(outcome.envoy_exit.unwrap().signal, Some(9));
    timeout(WAIT, &mut h.run).await.unwrap().unwrap().unwrap();
    assert!(gone(pid));
    assert_eq!(
        h.metrics.envoy_restarts.get("signal"),
        0.0,
        "no restart while draining"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_now_cuts_a_drain_short() {
    let Some(mut h) = start(settings()) else {
        return;
    };
    let pid = pre_initializing(&h).await.pid.unwrap();
    let handle = h.handle.clone();
    let drain = tokio::spawn(async move {
        handle
            .drain(&slow_drain(), Instant::now() + Duration::from_secs(25))
            .await
    });
    wait_status(&h, "DRAINING", |s| s.state == State::Draining).await;
    let exit = timeout(WAIT, h.handle.stop_now()).await.unwrap().unwrap();
    assert_eq!(exit.unwrap().code, Some(0));
    let outcome = timeout(WAIT, drain).await.unwrap().unwrap().unwrap();
    assert!(!outcome.completed && !outcome.envoy_died, "{outcome:?}");
    timeout(WAIT, &mut h.run).await.unwrap().unwrap().unwrap();
    assert!(gone(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_sigterm_exit_is_restarted_as_exited() {
    let Some(h) = start(settings()) else { return };
    let first = pre_initializing(&h).await.pid.unwrap();
    h.handle.forward(Signal::SIGTERM).unwrap();
    let after = wait_status(&h, "restarted envoy", |s| {
        s.restarts == 1 && s.state == State::PreInitializing
    })
    .await;
    assert_ne!(after.pid, Some(first));
    assert_eq!(after.last_exit.unwrap().code, Some(0));
    assert_eq!(h.metrics.envoy_restarts.get("exited"), 1.0);
}
