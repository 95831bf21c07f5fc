//! Issue 4's Kubernetes benchmarks (`scripts/bench-kubernetes`, or `cargo bench --bench
//! kubernetes`): the release `legate` binary started with `--kubeconfig` pointing at the fake
//! API server (in this process), with the real Envoy. Prints a Markdown table for
//! BENCHMARKS.md.
//!
//! - 5,000 Mappings listed at start → `/ready` 200 (spawn to 200; median of 3 starts);
//! - one Mapping modified → Envoy serving it (apply to the first 200 on the new path; median
//!   of 15, with 1 and with 5,000 Mappings);
//! - a 1,000-Mapping burst → pushes (`legate_reconfigurations_total`) and time to settle
//!   (apply to the last route served and Envoy ACKed);
//! - supervisor RSS (the legate process, not Envoy) with 5,000 Mappings and 5,000
//!   EndpointSlices (each Mapping to its own Service through its slice, EDS).
//!
//! `cargo bench --bench kubernetes -- slices` runs only the last measure (memory work);
//! `cargo bench --bench kubernetes -- scale` runs only issue 10's Kubernetes scale benchmark
//! (`kubernetes/scale.rs`: 5,000 Mappings + Services + EndpointSlices with EDS).

#[path = "../tests/common/backend.rs"]
mod backend;
#[path = "../tests/common/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "../tests/kubernetes_e2e/harness.rs"]
mod harness;
#[path = "../tests/common/http.rs"]
mod http;
#[path = "../tests/common/ports.rs"]
mod ports;
#[path = "../tests/kubernetes_e2e/process.rs"]
mod process;
#[path = "kubernetes/scale.rs"]
mod scale;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use backend::Backend;
use fake_apiserver::FakeApiServer;
use harness::{
    acked_versions, amb, endpoint_slice, free_port, get_host, host, http_listener, local, mapping,
    service,
};
use http::metric_value;
use process::Process;
use serde_json::{Value, json};

const MAPPINGS: usize = 5_000;
const SLICES: usize = 5_000;
const STARTS: usize = 3;
const MODIFICATIONS: usize = 15;
const BURST: usize = 1_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let envoy = legate::envoy::locate::for_tests().expect("envoy (scripts/install-envoy)");
    let backend = Backend::start("a").await;
    let mut rows: Vec<(String, String)> = Vec::new();
    if std::env::args().any(|a| a == "scale") {
        rows = scale::rows(&envoy).await;
    } else {
        if !std::env::args().any(|a| a == "slices") {
            counts(&envoy, &backend, &mut rows).await;
        }
        rows.push(slices_rss(&envoy, &backend).await);
    }

    println!("| measure | result |\n|---|---|");
    for (measure, result) in rows {
        println!("| {measure} | {result} |");
    }
}

/// Measures 1 to 3: start, modification and burst timings, and RSS with Mappings only.
async fn counts(envoy: &Path, backend: &Backend, rows: &mut Vec<(String, String)>) {
    // 1 + 2: 5,000 Mappings at start, then modifications
    let mut starts = Vec::new();
    let mut modify_5000 = Vec::new();
    let mut rss_5000 = 0.0;
    for run in 0..STARTS {
        let server = FakeApiServer::start().await;
        let port = free_port();
        server.apply_all(base(port, backend.addr, MAPPINGS));
        let started = Instant::now();
        let legate = Process::start(&server, envoy).await;
        wait_ready(legate.probe).await;
        starts.push(started.elapsed());
        served(local(port), &format!("/m-{}/", MAPPINGS - 1)).await;
        eprintln!("start {run}: {:?}", starts.last());
        if run == STARTS - 1 {
            rss_5000 = legate_rss(legate.admin).await;
            modify_5000 = modifications(&server, port, backend.addr).await;
        }
        drop(legate);
    }
    rows.push((
        format!("{MAPPINGS} Mappings listed at start → `/ready` 200"),
        format!(
            "median {} (of {STARTS}: {})",
            ms(median(&starts)),
            list(&starts)
        ),
    ));
    let (rss_1, modify_1) = {
        let server = FakeApiServer::start().await;
        let port = free_port();
        server.apply_all(base(port, backend.addr, 1));
        let legate = Process::start(&server, envoy).await;
        wait_ready(legate.probe).await;
        let rss = legate_rss(legate.admin).await;
        (rss, modifications(&server, port, backend.addr).await)
    };
    rows.push((
        "supervisor RSS, 1 Mapping / 5000 Mappings".into(),
        format!("{} / {}", mib(rss_1), mib(rss_5000)),
    ));
    for (n, samples) in [(1, &modify_1), (MAPPINGS, &modify_5000)] {
        rows.push((
            format!("one Mapping modified → Envoy serving it ({n} Mappings)"),
            format!(
                "median {} (of {}; min {}, max {})",
                ms(median(samples)),
                samples.len(),
                ms(*samples.iter().min().expect("samples")),
                ms(*samples.iter().max().expect("samples"))
            ),
        ));
    }

    // 3: a burst of 1,000 Mappings
    {
        let server = FakeApiServer::start().await;
        let port = free_port();
        server.apply_all(base(port, backend.addr, 1));
        let legate = Process::start(&server, envoy).await;
        wait_ready(legate.probe).await;
        settled(legate.admin).await;
        let before = reconfigurations(legate.admin).await;
        let target = backend.addr.to_string();
        let objects = (0..BURST)
            .map(|i| mapping(&format!("burst-{i}"), &format!("/burst-{i}/"), &target))
            .collect();
        let t0 = Instant::now();
        server.apply_all(objects);
        served(local(port), &format!("/burst-{}/", BURST - 1)).await;
        settled(legate.admin).await;
        let settle = t0.elapsed();
        // count pushes that might trail the first one
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pushes = reconfigurations(legate.admin).await - before;
        rows.push((
            format!("{BURST}-Mapping burst"),
            format!("{pushes} push(es); settled in {}", ms(settle)),
        ));
    }
}

/// Measure 4: RSS with 5,000 Mappings and 5,000 EndpointSlices.
async fn slices_rss(envoy: &Path, backend: &Backend) -> (String, String) {
    {
        let server = FakeApiServer::start().await;
        let port = free_port();
        server.apply_all(with_slices(port, backend.addr, MAPPINGS, SLICES));
        let started = Instant::now();
        let legate = Process::start(&server, envoy).await;
        wait_ready(legate.probe).await;
        let ready = started.elapsed();
        served(local(port), &format!("/s-{}/", SLICES - 1)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let text = http::get(legate.admin, "/metrics")
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
        let hwm = proc_status(legate.pid(), "VmHWM");
        (
            format!("supervisor RSS, {MAPPINGS} Mappings + {SLICES} EndpointSlices"),
            format!(
                "{:.1} MiB (peak {}; Envoy {}; ready in {})",
                rss / 1048576.0,
                hwm.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                    .unwrap_or_else(|| "?".into()),
                envoy_rss
                    .map(|b| format!("{:.1} MiB", b / 1048576.0))
                    .unwrap_or_else(|| "?".into()),
                ms(ready)
            ),
        )
    }
}

/// A Listener, a Host and `n` Mappings `/m-<i>/` to `backend`.
fn base(port: u16, backend: SocketAddr, n: usize) -> Vec<Value> {
    let target = backend.to_string();
    let mut objects = vec![http_listener("http", port), host("any", "*")];
    objects.extend((0..n).map(|i| mapping(&format!("m-{i}"), &format!("/m-{i}/"), &target)));
    objects
}

/// `mappings` Mappings `/s-<i>/`, each to Service `svc-<i>` (EDS) whose slice has three
/// endpoints (the first is the backend).
fn with_slices(port: u16, backend: SocketAddr, mappings: usize, slices: usize) -> Vec<Value> {
    let mut objects = vec![http_listener("http", port), host("any", "*")];
    for i in 0..slices {
        let svc = format!("svc-{i}");
        objects.push(service(&svc, 80, backend.port()));
        objects.push(endpoint_slice(
            &format!("{svc}-abcde"),
            &svc,
            backend.port(),
            &[
                ("127.0.0.1", true, false),
                ("127.0.0.11", true, false),
                ("127.0.0.12", false, false),
            ],
        ));
    }
    objects.extend((0..mappings).map(|i| {
        amb(
            "Mapping",
            &format!("s-{i}"),
            json!({"hostname": "*", "prefix": format!("/s-{i}/"),
                   "service": format!("svc-{}:80", i % slices),
                   "resolver": "kubernetes-endpoint"}),
        )
    }));
    objects
}

/// Modifies Mapping `m-0` to a new prefix `MODIFICATIONS` times; each sample is the time from
/// the apply to the first 200 on the new path.
async fn modifications(server: &FakeApiServer, port: u16, backend: SocketAddr) -> Vec<Duration> {
    let mut samples = Vec::new();
    for i in 0..MODIFICATIONS {
        let path = format!("/mod-{i}/");
        let t0 = Instant::now();
        server.apply(mapping("m-0", &path, &backend.to_string()));
        served(local(port), &path).await;
        samples.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    samples
}

async fn served(envoy: SocketAddr, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if get_host(envoy, "localhost", path)
            .await
            .is_ok_and(|r| r.status == 200)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never served");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_ready(probe: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !http::get(probe, "/ready")
        .await
        .is_ok_and(|r| r.status == 200)
    {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Envoy ACKed everything sent.
async fn settled(admin: SocketAddr) {
    loop {
        let xds = http::get(admin, "/xds").await.expect("xds").json();
        if acked_versions(&xds).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn reconfigurations(admin: SocketAddr) -> f64 {
    let text = http::get(admin, "/metrics").await.expect("metrics").body;
    metric_value(&text, "legate_reconfigurations_total").expect("reconfigurations")
}

/// A `/proc/<pid>/status` field in kB.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn legate_rss(admin: SocketAddr) -> f64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let text = http::get(admin, "/metrics").await.expect("metrics").body;
    metric_value(
        &text,
        "legate_process_resident_memory_bytes{process=\"legate\"}",
    )
    .expect("legate rss metric")
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1048576.0)
}

fn median(samples: &[Duration]) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn list(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| ms(*d))
        .collect::<Vec<_>>()
        .join(", ")
}
