//! Scale behaviour with the built binary and the real Envoy 1.40 (issue 10): an Envoy whose
//! admin is silent because it is busy applying thousands of clusters is left alone, a stopped
//! one is restarted, and `/live` answers 200 throughout; the default `essential` stats still
//! give Prometheus per-cluster request counts and latencies. The 50,000-service start is a
//! benchmark (`scripts/bench-scale`), not a test: it takes Envoy tens of seconds and ~1 GB.

#[path = "common/backend.rs"]
mod backend;
#[path = "common/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "common/process.rs"]
mod legate;
#[path = "common/ports.rs"]
mod ports;

use std::cell::Cell;
use std::fmt::Write as _;
use std::time::Duration;

use backend::Backend;
use legate::{Legate, Spec, WAIT};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Enough distinct clusters that Envoy's main thread (and so its admin) is busy for far longer
/// than the short timeout below while it applies CDS. 20,000 kept it silent for only 1.4 s
/// (under the timeout) once legate stopped freeing its own memory while Envoy applied the
/// first snapshot (docs/design.md#deferred-freeing).
const SERVICES: u32 = 30_000;

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
    // Before issue 10 legate restarted Envoy whenever its admin was silent this long. Short
    // (the default is 10 s), yet longer than a main thread that is runnable but not scheduled
    // can go without CPU time on a saturated 2-core machine: at 400 ms a run at load 14 saw no
    // progress and aborted a busy Envoy. Creating `SERVICES` clusters keeps the admin silent
    // for seconds, so the busy path is still taken (asserted below).
    spec.env("LEGATE_ENVOY__HEALTH_INTERVAL_MS", "100")
        .env("LEGATE_ENVOY__UNRESPONSIVE_TIMEOUT_MS", "1500")
}

async fn restarts(legate: &Legate) -> i64 {
    legate.envoy_status().await["restarts"]
        .as_i64()
        .expect("restarts on admin /envoy")
}

/// Envoy's admin is silent for longer than `unresponsive_timeout_ms` while it creates
/// `SERVICES` clusters; its main thread's CPU time advances, so legate waits instead of killing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_envoy_applying_thousands_of_clusters_is_not_killed() {
    let Some(envoy) = ::legate::envoy::locate::for_tests() else {
        return;
    };
    let backend = Backend::start("live").await;
    let dir = tempfile::tempdir().unwrap();
    many_mappings(&dir.path().join("config"));
    let legate = Legate::start_in(short_timeout(Spec::new(envoy, backend.port())), dir);
    // 20,000 clusters: on a loaded 2-core machine the translation alone took 5.8 s and Envoy
    // 20 s more to initialise (a run that waited 30 s failed); 30,000 take half as long again.
    // What is asserted is that Envoy was never killed, not how long it took.
    legate.wait_ready_within(Duration::from_secs(180)).await;
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

/// The value of the Prometheus sample whose line starts with `metric{` and contains every one
/// of `labels`; `None` when there is no such line.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn prometheus(legate: &Legate) -> String {
    let admin = ::legate::envoy::admin::Client::new(::legate::envoy::Address::Unix(
        legate.runtime_dir.join("envoy-admin.sock"),
    ));
    admin
        .text("/stats/prometheus")
        .await
        .expect("envoy /stats/prometheus")
}

/// With the default `essential` stats, a request through Envoy increments the cluster's 2xx
/// count and records its latency in `/stats/prometheus`, and a dropped per-cluster stat is
/// absent; `envoy.stats: all` brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_keeps_per_cluster_counts_and_latency() {
    let Some(envoy) = ::legate::envoy::locate::for_tests() else {
        return;
    };
    let backend = Backend::start("stats").await;
    let cluster = format!("envoy_cluster_name=\"127_0_0_1_{}\"", backend.port());
    let ok = ["envoy_response_code_class=\"2\"", cluster.as_str()];
    for (stats, dropped_present) in [("essential", false), ("all", true)] {
        let spec = Spec::new(envoy.clone(), backend.port()).env("LEGATE_ENVOY__STATS", stats);
        let legate = Legate::start(spec);
        legate.wait_ready().await;
        legate.wait_traffic("stats").await;
        let before = prometheus(&legate).await;
        let count = sample(&before, "envoy_cluster_upstream_rq_xx", &ok)
            .unwrap_or_else(|| panic!("{stats}: no 2xx count for the cluster:\n{before}"));
        let reply = http::get(legate.listener, "/").await.expect("a request");
        assert_eq!(reply.status, 200);
        let after = prometheus(&legate).await;
        assert_eq!(
            sample(&after, "envoy_cluster_upstream_rq_xx", &ok),
            Some(count + 1.0),
            "{stats}"
        );
        // Histograms reach /stats/prometheus at Envoy's stats flush (every 5 s).
        http::eventually(
            WAIT,
            "the latency histogram counts the requests",
            || async {
                let text = prometheus(&legate).await;
                let n = sample(&text, "envoy_cluster_upstream_rq_time_count", &[&cluster])?;
                (n >= count + 1.0).then_some(())
            },
        )
        .await;
        for kept in [
            "envoy_cluster_upstream_cx_active",
            "envoy_cluster_membership_healthy",
        ] {
            assert!(
                sample(&after, kept, &[&cluster]).is_some(),
                "{stats}: {kept}"
            );
        }
        assert!(sample(&after, "envoy_listener_downstream_cx_active", &[]).is_some());
        let dropped = sample(&after, "envoy_cluster_upstream_cx_total", &[&cluster]);
        assert_eq!(
            dropped.is_some(),
            dropped_present,
            "{stats}: upstream_cx_total"
        );
    }
}

/// Envoy subscribes with delta ADS by default, and state of the world with
/// `envoy.xds_protocol: sotw`; either way a change is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_served_over_delta_by_default_and_over_sotw() {
    let Some(envoy) = ::legate::envoy::locate::for_tests() else {
        return;
    };
    let backend = Backend::start("xds").await;
    for (setting, protocol) in [(None, "Delta"), (Some("sotw"), "Sotw")] {
        let mut spec = Spec::new(envoy.clone(), backend.port());
        if let Some(s) = setting {
            spec = spec.env("LEGATE_ENVOY__XDS_PROTOCOL", s);
        }
        let legate = Legate::start(spec);
        legate.wait_ready().await;
        legate.wait_traffic("xds").await;
        let opened = legate
            .log()
            .into_iter()
            .filter(|l| l.contains("ads stream opened"))
            .collect::<Vec<_>>();
        assert!(
            !opened.is_empty() && opened.iter().all(|l| l.contains(protocol)),
            "{protocol}: {opened:?}"
        );
        let extra = format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\n\
             metadata: {{name: extra, namespace: default}}\n\
             spec: {{hostname: \"*\", prefix: /extra/, rewrite: /x/, \
             service: \"127.0.0.1:{}\"}}\n",
            backend.port()
        );
        std::fs::write(legate.runtime_dir.join("../config/extra.yaml"), extra).unwrap();
        http::eventually(WAIT, "the new Mapping served", || async {
            let r = http::get(legate.listener, "/extra/a").await.ok()?;
            (r.status == 200 && r.body.contains("/x/a")).then_some(())
        })
        .await;
    }
}
