//! The runtime's task table tells the truth (issue 9, item 4): a critical task that ends while
//! legate is not stopping makes legate fail loudly (exit 1) and stop Envoy, instead of staying
//! up unready forever. In process, with the real Envoy.

use std::sync::Arc;
use std::time::Duration;

use legate::app::{App, Overrides, Signals};
use legate::config::{Config, Env};
use legate::ir::Ir;
use legate::pipeline::Input;
use legate::{drain, exit, signal};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ads_server_ending_makes_legate_exit_1_and_stop_envoy() {
    let Some(binary) = legate::envoy::locate::for_tests() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.envoy.binary = Some(binary);
    config.runtime_dir = Some(dir.path().join("run"));
    config.probe.address = "127.0.0.1:0".parse().expect("addr");
    config.admin.address = "127.0.0.1:0".parse().expect("addr");
    let (_tx, rx) = watch::channel(Arc::new(Ir::default()));
    let (trigger, _) = drain::channel();
    let signals = Signals {
        trigger,
        envoy_pid: signal::EnvoyPid::default(),
    };
    let overrides = Overrides {
        input: Some(Input::Ir(rx)),
        no_reaper: true,
    };
    let mut app = match App::start(config, &Env::default(), signals, overrides).await {
        Ok(app) => app,
        Err(e) => panic!("legate did not start: {}", e.message),
    };
    let envoy = app.envoy().clone();
    // Envoy runs before the ADS server goes away, so stopping it is part of the outcome.
    let mut status = envoy.status();
    tokio::time::timeout(
        Duration::from_secs(60),
        status.wait_for(|s| s.pid.is_some()),
    )
    .await
    .expect("envoy started")
    .expect("supervisor alive");
    let pid = envoy.pid().expect("envoy pid");

    app.end_ads_server();
    let code = tokio::time::timeout(Duration::from_secs(30), app.wait())
        .await
        .expect("legate exits instead of staying up unready");
    assert_eq!(code, exit::FATAL);
    // Envoy was stopped and reaped: its pid is gone.
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
    assert!(!alive, "envoy {pid} outlived legate");
}
