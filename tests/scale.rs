//! Hang detection at scale with the built binary and the real Envoy 1.40 (issue 10): an Envoy
//! whose admin is silent because it is busy applying thousands of clusters is left alone, a
//! stopped one is restarted, and `/live` answers 200 throughout. The 50,000-service start is a
//! benchmark (`scripts/bench-scale`), not a test: it takes Envoy tens of seconds and ~1 GB.

#[path = "common/backend.rs"]
mod backend;
#[path = "common/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "common/process.rs"]
mod legate;

use std::cell::Cell;
use std::fmt::Write as _;
use std::time::Duration;

use backend::Backend;
use legate::{Legate, Spec, WAIT};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Enough distinct clusters that Envoy's main thread (and so its admin) is busy for far longer
/// than the short timeout below while it applies CDS.
const SERVICES: u32 = 4_000;

/// `SERVICES` Mappings, each to its own IP address (one STATIC cluster each; no DNS).
fn many_mappings(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut yaml = String::new();
    for i in 0..SERVICES {
        let _ = write!(
            yaml,
            "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
             metadata: {{name: svc-{i}, namespace: default}}\n\
             spec: {{hostname: \"*\", prefix: /svc-{i}/, service: \"127.1.{}.{}:80\"}}\n",
            i / 250,
            i % 250 + 1
        );
    }
    std::fs::write(dir.join("many.yaml"), yaml).unwrap();
}

fn short_timeout(spec: Spec) -> Spec {
    // Before issue 10 legate restarted Envoy whenever its admin was silent this long.
    spec.env("LEGATE_ENVOY__HEALTH_INTERVAL_MS", "100")
        .env("LEGATE_ENVOY__UNRESPONSIVE_TIMEOUT_MS", "400")
}

async fn restarts(legate: &Legate) -> i64 {
    legate.envoy_status().await["restarts"]
        .as_i64()
        .expect("restarts on admin /envoy")
}

/// Envoy's admin is silent for longer than `unresponsive_timeout_ms` while it creates 4,000
/// clusters; its main thread's CPU time advances, so legate waits instead of killing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_envoy_applying_thousands_of_clusters_is_not_killed() {
    let Some(envoy) = ::legate::envoy::locate::for_tests() else {
        return;
    };
    let backend = Backend::start("live").await;
    let dir = tempfile::tempdir().unwrap();
    many_mappings(&dir.path().join("config"));
    let legate = Legate::start_in(short_timeout(Spec::new(envoy, backend.port())), dir);
    legate.wait_ready().await;
    legate.wait_traffic("live").await;
    assert!(
        legate.logged("envoy admin silent but envoy is busy"),
        "the admin was never silent past the timeout: the test proves nothing; raise SERVICES"
    );
    assert!(!legate.logged("envoy hung"), "{:?}", legate.log());
    assert_eq!(restarts(&legate).await, 0);
}

/// A stopped Envoy makes no progress: restarted within the timeout, and `/live` stays 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_envoy_is_restarted_and_live_stays_200() {
    let Some(envoy) = ::legate::envoy::locate::for_tests() else {
        return;
    };
    let backend = Backend::start("live").await;
    let legate = Legate::start(short_timeout(Spec::new(envoy, backend.port())));
    legate.wait_ready().await;
    let pid = legate.envoy_pid().await;
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let live_checks = Cell::new(0);
    http::eventually(WAIT, "envoy restarted after SIGSTOP", || async {
        let live = http::get(legate.probe, "/live")
            .await
            .expect("/live answers");
        assert_eq!(live.status, 200, "/live must not depend on envoy");
        live_checks.set(live_checks.get() + 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        (restarts(&legate).await == 1).then_some(())
    })
    .await;
    assert!(
        live_checks.get() > 1,
        "/live was checked while envoy was stopped"
    );
    assert!(legate.logged("envoy hung"), "{:?}", legate.log());
    assert_ne!(legate.envoy_pid().await, pid);
    legate.wait_ready().await;
    legate.wait_traffic("live").await;
}
