//! Issue 10, item 5 (`cargo bench --bench kubernetes -- scale`): 5,000 Mappings, each to its
//! own Service, with 5,000 EndpointSlices, routed by EDS (`source.endpoint_routing`), listed
//! from the fake API server by the release `legate run --kubeconfig` with the real Envoy. Every
//! slice but one lists a loopback address nothing listens on (never called); Mapping `m-0`'s
//! Service `svc-0` has the live backends. Per run:
//!
//! - spawn → `/ready` 200 (then `/m-0/` answered);
//! - 2 s later: legate's RSS and peak (VmHWM, which includes the first translation), Envoy's RSS;
//! - `CHANGES` prefix changes of `m-0`, each timed from the apply to the new prefix answered;
//! - `CHANGES` changes of `svc-0`'s EndpointSlice between backends a and b, each timed from the
//!   apply to the other backend answering;
//! - a burst of 1,000 new Mappings (to `svc-0`), one watch event each, spread over
//!   1 s: the publications it caused (`legate_reconfigurations_total`) and the time from its
//!   first event to its last Mapping served.
//!
//! Prints each run and the medians as Markdown rows for BENCHMARKS.md. With
//! `BENCH_LEGATE_LOG=PATH`, legate's log of each run (JSON lines; `RUST_LOG` passes through)
//! is appended to PATH, to split a change into source, translation and push.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::backend::Backend;
use super::fake_apiserver::FakeApiServer;
use super::harness::{endpoint_slice, free_port, get_host, host, http_listener, local, mapping};
use super::http::metric_value;
use super::process::Process;
use super::{list, median, ms, proc_status, reconfigurations, served, settled, wait_ready};

const SERVICES: usize = 5_000;
const RUNS: usize = 3;
const CHANGES: usize = 7;
const BURST: usize = 1_000;
const BURST_SPREAD: Duration = Duration::from_secs(1);

/// One run's figures.
struct Run {
    ready: Duration,
    rss: f64,
    peak_kib: Option<u64>,
    envoy_rss: Option<f64>,
    prefix: Vec<Duration>,
    slice: Vec<Duration>,
    burst_pushes: u64,
    burst_served: Duration,
}

pub async fn rows(envoy: &Path) -> Vec<(String, String)> {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let r = one_run(envoy, &a, &b).await;
        eprintln!(
            "scale run {run}: ready {}, legate RSS {}, change {} / slice {}, burst {} push(es)",
            ms(r.ready),
            mib(r.rss),
            ms(median(&r.prefix)),
            ms(median(&r.slice)),
            r.burst_pushes
        );
        runs.push(r);
    }
    let per_run = |f: &dyn Fn(&Run) -> String| runs.iter().map(f).collect::<Vec<_>>().join(", ");
    let durations = |f: &dyn Fn(&Run) -> Duration| runs.iter().map(f).collect::<Vec<_>>();
    let all = |f: &dyn Fn(&Run) -> &Vec<Duration>| {
        runs.iter().flat_map(|r| f(r).clone()).collect::<Vec<_>>()
    };
    let ready = durations(&|r| r.ready);
    let served_burst = durations(&|r| r.burst_served);
    let prefix = all(&|r| &r.prefix);
    let slice = all(&|r| &r.slice);
    let mut rss: Vec<f64> = runs.iter().map(|r| r.rss).collect();
    rss.sort_by(f64::total_cmp);
    let mut pushes: Vec<u64> = runs.iter().map(|r| r.burst_pushes).collect();
    pushes.sort();
    let title = format!("{SERVICES} Mappings + Services + EndpointSlices (EDS)");
    vec![
        (
            format!("{title}: spawn → `/ready` 200"),
            format!("median {} ({})", ms(median(&ready)), list(&ready)),
        ),
        (
            format!("{title}: legate RSS 2 s after ready (peak)"),
            format!(
                "median {} ({})",
                mib(rss[rss.len() / 2]),
                per_run(&|r| format!(
                    "{} peak {}",
                    mib(r.rss),
                    r.peak_kib
                        .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                        .unwrap_or_else(|| "?".into())
                ))
            ),
        ),
        (
            format!("{title}: Envoy RSS"),
            per_run(&|r| r.envoy_rss.map(mib).unwrap_or_else(|| "?".into())),
        ),
        (
            format!("{title}: one Mapping's prefix changed → served"),
            spread_of(&prefix),
        ),
        (
            format!("{title}: one EndpointSlice changed → served by the new endpoint"),
            spread_of(&slice),
        ),
        (
            format!("{title}: {BURST} watch events over 1 s → publications"),
            format!(
                "median {} ({}); first event → last Mapping served: median {} ({})",
                pushes[pushes.len() / 2],
                per_run(&|r| r.burst_pushes.to_string()),
                ms(median(&served_burst)),
                list(&served_burst)
            ),
        ),
    ]
}

fn spread_of(samples: &[Duration]) -> String {
    format!(
        "median {} (of {}; min {}, max {})",
        ms(median(samples)),
        samples.len(),
        ms(*samples.iter().min().expect("samples")),
        ms(*samples.iter().max().expect("samples"))
    )
}

async fn one_run(envoy: &Path, a: &Backend, b: &Backend) -> Run {
    let server = FakeApiServer::start().await;
    let port = free_port();
    let mut objects = vec![http_listener("http", port), host("any", "*")];
    for i in 0..SERVICES {
        objects.extend(eds_service(i, (i == 0).then_some(a.addr)));
    }
    server.apply_all(objects);
    let started = Instant::now();
    let legate = Process::start_with(
        &server,
        envoy,
        &[("LEGATE_SOURCE__ENDPOINT_ROUTING", "true")],
    )
    .await;
    wait_ready(legate.probe).await;
    let ready = started.elapsed();
    let envoy_addr = local(port);
    served_by(envoy_addr, "/m-0/", "a").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = super::http::get(legate.admin, "/metrics")
        .await
        .expect("metrics")
        .body;
    let rss = metric_value(
        &text,
        "legate_process_resident_memory_bytes{process=\"legate\"}",
    )
    .expect("legate rss metric");
    let envoy_rss = metric_value(
        &text,
        "legate_process_resident_memory_bytes{process=\"envoy\"}",
    );
    let peak_kib = proc_status(legate.pid(), "VmHWM");

    let mut prefix = Vec::new();
    let mut marks = Vec::new();
    for i in 0..CHANGES {
        let path = format!("/moved-{i}/");
        let t0 = Instant::now();
        marks.push(format!("applied {path} at {}", now_utc()));
        server.apply(mapping("m-0", &path, "svc-0:80"));
        served(envoy_addr, &path).await;
        prefix.push(t0.elapsed());
        marks.push(format!("served {path} at {}", now_utc()));
        settled(legate.admin).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let path = format!("/moved-{}/", CHANGES - 1);
    let mut slice = Vec::new();
    for i in 0..CHANGES {
        let (to, name) = if i % 2 == 0 { (b, "b") } else { (a, "a") };
        let t0 = Instant::now();
        server.apply(eds_slice("svc-0", to.addr));
        served_by(envoy_addr, &path, name).await;
        slice.push(t0.elapsed());
        settled(legate.admin).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let before = reconfigurations(legate.admin).await;
    let burst: Vec<Value> = (0..BURST)
        .map(|i| mapping(&format!("burst-{i}"), &format!("/burst-{i}/"), "svc-0:80"))
        .collect();
    let t0 = Instant::now();
    spread(&server, burst, BURST_SPREAD).await;
    served(envoy_addr, &format!("/burst-{}/", BURST - 1)).await;
    let burst_served = t0.elapsed();
    settled(legate.admin).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let burst_pushes = (reconfigurations(legate.admin).await - before) as u64;
    if let Some(path) = std::env::var_os("BENCH_LEGATE_LOG") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("BENCH_LEGATE_LOG opens");
        writeln!(f, "{}\n{}", marks.join("\n"), legate.stderr()).expect("BENCH_LEGATE_LOG written");
    }
    drop(legate);
    Run {
        ready,
        rss,
        peak_kib,
        envoy_rss,
        prefix,
        slice,
        burst_pushes,
        burst_served,
    }
}

/// Now, as seconds since the Unix epoch (to line up with legate's log timestamps).
fn now_utc() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", t.as_secs(), t.subsec_micros())
}

/// Service `svc-<i>` (port 80), its EndpointSlice and Mapping `m-<i>` (no resolver: EDS by
/// `endpoint_routing`); the slice lists `live`, or a loopback address nothing listens on.
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
        super::harness::service(&name, 80, 8080),
        slice,
        mapping(
            &format!("m-{i}"),
            &format!("/m-{i}/"),
            &format!("{name}:80"),
        ),
    ]
}

fn eds_slice(name: &str, addr: SocketAddr) -> Value {
    endpoint_slice(
        &format!("{name}-x"),
        name,
        addr.port(),
        &[(&addr.ip().to_string(), true, false)],
    )
}

/// One watch event per object, object `i` due at `i × spread / len`.
async fn spread(server: &FakeApiServer, objects: Vec<Value>, spread: Duration) {
    let n = objects.len() as u32;
    let start = Instant::now();
    for (i, object) in (0u32..).zip(objects) {
        let due = start + spread * i / n;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        server.apply(object);
    }
}

/// Waits until `path` is answered 200 by backend `name`.
async fn served_by(envoy: SocketAddr, path: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if get_host(envoy, "localhost", path)
            .await
            .is_ok_and(|r| r.status == 200 && r.backend().as_deref() == Some(name))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never served by {name}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1048576.0)
}
