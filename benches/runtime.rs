//! Runtime benchmarks (issue 2 and 3), run against the built `legate` binary and the real Envoy:
//!
//! * process start → `/ready` 200, one route;
//! * Envoy SIGKILL → `/ready` 200 again;
//! * supervisor (legate) RSS when idle;
//! * an IR change → Envoy serving it (in process, IR fed directly: no file debounce);
//! * one file changed among 5,000 Mappings → Envoy serving the change (file source, whole path).
//!
//! `cargo bench --bench runtime` (release build). Prints medians of repeated runs; the figures in
//! BENCHMARKS.md come from here. Benchmarks measure; they assert nothing about time.

#[path = "../tests/common/backend.rs"]
mod backend;
#[path = "../tests/common/http.rs"]
mod http;
#[path = "../tests/common/ports.rs"]
mod ports;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::Backend;
use http::get;

const RUNS: usize = 7;

use ports::port as free_port;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt(v: &[Duration]) -> String {
    let ms: Vec<String> = v
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect();
    ms.join(" ")
}

fn base_yaml(port: u16) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: l, namespace: default}}\n\
         spec: {{port: {port}, protocol: HTTP, securityModel: XFP, hostBinding: {{namespace: {{from: ALL}}}}}}\n---\n\
         apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: any, namespace: default}}\n\
         spec: {{hostname: \"*\", requestPolicy: {{insecure: {{action: Route}}}}}}\n"
    )
}

fn mapping_yaml(name: &str, prefix: &str, backend: SocketAddr, marker: u32) -> String {
    format!(
        "---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{hostname: \"*\", prefix: {prefix}, service: \"{backend}\", add_response_headers: {{x-v: \"{marker}\"}}}}\n"
    )
}

struct Legate {
    child: Child,
    probe: SocketAddr,
    admin: SocketAddr,
    _run: tempfile::TempDir,
}

impl Drop for Legate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_legate(dir: &Path, envoy: &Path) -> Legate {
    let run = tempfile::tempdir().expect("runtime dir");
    let (probe, admin) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_legate"))
        .args(["run", "--config-dir"])
        .arg(dir)
        .arg("--envoy-binary")
        .arg(envoy)
        .arg("--runtime-dir")
        .arg(run.path().join("rt"))
        .args(["--probe-address", &format!("127.0.0.1:{probe}")])
        .args(["--admin-address", &format!("127.0.0.1:{admin}")])
        .args(["--log-level", "warn", "--drain-min-ms", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn legate");
    Legate {
        child,
        probe: local(probe),
        admin: local(admin),
        _run: run,
    }
}

async fn wait_status(addr: SocketAddr, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if get(addr, "/ready").await.is_ok_and(|r| r.status == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for /ready {want}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_marker(envoy: SocketAddr, path: &str, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = get(envoy, path).await
            && r.headers
                .get("x-v")
                .is_some_and(|v| v.as_bytes() == marker.as_bytes())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {path} x-v: {marker}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

async fn lifecycle(envoy: &Path) {
    let backend = Backend::start("b").await;
    let mut starts = Vec::new();
    let mut restarts = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("config dir");
        let port = free_port();
        let yaml = base_yaml(port) + &mapping_yaml("m", "/", backend.addr, 1);
        std::fs::write(dir.path().join("config.yaml"), yaml).expect("write");
        let t0 = Instant::now();
        let legate = spawn_legate(dir.path(), envoy);
        wait_status(legate.probe, 200).await;
        starts.push(t0.elapsed());
        assert_eq!(
            get(local(port), "/").await.map(|r| r.status).ok(),
            Some(200)
        );

        tokio::time::sleep(Duration::from_secs(2)).await;
        rss.push(rss_kib(legate.child.id()));

        let status = get(legate.admin, "/envoy")
            .await
            .expect("admin /envoy")
            .json();
        let pid = status["pid"].as_u64().expect("envoy pid") as i32;
        let t1 = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill envoy");
        wait_status(legate.probe, 503).await;
        wait_status(legate.probe, 200).await;
        restarts.push(t1.elapsed());
    }
    rss.sort();
    println!(
        "start → /ready 200 (one route): median {:.1} ms  [runs: {}]",
        median(starts.clone()).as_secs_f64() * 1e3,
        fmt(&starts)
    );
    println!(
        "envoy SIGKILL → /ready 200: median {:.1} ms  [runs: {}]",
        median(restarts.clone()).as_secs_f64() * 1e3,
        fmt(&restarts)
    );
    println!(
        "legate RSS idle: median {} KiB  [runs: {:?} KiB]",
        rss[rss.len() / 2],
        rss
    );
}

/// IR change → Envoy serving it, in process: the IR is published directly (no file debounce).
async fn ir_change(envoy_bin: &Path) {
    use legate::app::{App, Overrides, Signals};
    use legate::config::{Config, Env};
    use legate::ir::*;
    let backend = Backend::start("b").await;
    let port = free_port();
    let make = |v: u32| {
        let mut route = Route::new(
            RouteMatch::prefix("/"),
            RouteAction::Forward(Forward::to("b")),
        );
        route.response_headers_to_add.push(HeaderValue {
            name: "x-v".into(),
            value: v.to_string(),
            append: false,
        });
        Ir {
            listeners: vec![Listener {
                name: "l".into(),
                address: "127.0.0.1".into(),
                port,
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
            route_tables: vec![RouteTable {
                name: "l/http".into(),
                virtual_hosts: vec![VirtualHost {
                    name: "any".into(),
                    domains: vec!["*".into()],
                    routes: vec![route],
                }],
            }],
            clusters: vec![Cluster::new(
                "b",
                Discovery::Static(vec![Endpoint::new("127.0.0.1", backend.addr.port())]),
            )],
            endpoints: vec![],
            secrets: vec![],
        }
    };
    let run = tempfile::tempdir().expect("runtime dir");
    let mut config = Config::default();
    config.envoy.binary = Some(envoy_bin.to_path_buf());
    config.runtime_dir = Some(run.path().join("rt"));
    config.probe.address = "127.0.0.1:0".parse().expect("addr");
    config.admin.address = "127.0.0.1:0".parse().expect("addr");
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(make(0)));
    let (trigger, _) = legate::drain::channel();
    let signals = Signals {
        trigger: trigger.clone(),
        envoy_pid: Default::default(),
    };
    let overrides = Overrides {
        input: Some(legate::pipeline::Input::Ir(rx)),
        no_reaper: true,
    };
    let app = App::start(config, &Env::default(), signals, overrides)
        .await
        .map_err(|e| e.message)
        .expect("start");
    let probe = app.bound().probe;
    let task = tokio::spawn(app.wait());
    wait_status(probe, 200).await;
    let mut samples = Vec::new();
    for v in 1..=21u32 {
        let t = Instant::now();
        tx.send_replace(Arc::new(make(v)));
        wait_marker(local(port), "/", &v.to_string()).await;
        samples.push(t.elapsed());
    }
    println!(
        "IR change → Envoy serving it: median {:.1} ms  [runs: {}]",
        median(samples.clone()).as_secs_f64() * 1e3,
        fmt(&samples)
    );
    trigger.fast("bench done");
    let _ = task.await;
}

/// One file changed among 5,000 Mappings (50 files) → Envoy serving the change.
async fn file_change(envoy: &Path) {
    let backend = Backend::start("b").await;
    let dir = tempfile::tempdir().expect("config dir");
    let port = free_port();
    std::fs::write(dir.path().join("00-base.yaml"), base_yaml(port)).expect("write");
    let write_chunk = |chunk: usize, marker: u32| {
        let mut text = String::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            text += &mapping_yaml(
                &format!("m-{i}"),
                &format!("/svc-{i}/"),
                backend.addr,
                marker,
            );
        }
        std::fs::write(dir.path().join(format!("mappings-{chunk:04}.yaml")), text).expect("write");
    };
    for chunk in 0..50 {
        write_chunk(chunk, 0);
    }
    let t0 = Instant::now();
    let legate = spawn_legate(dir.path(), envoy);
    wait_status(legate.probe, 200).await;
    println!(
        "5,000 Mappings (file source): start → /ready 200 in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let mut samples = Vec::new();
    for v in 1..=11u32 {
        let chunk = (v as usize * 7) % 50;
        let t = Instant::now();
        write_chunk(chunk, v);
        wait_marker(
            local(port),
            &format!("/svc-{}/x", chunk * 100 + 42),
            &v.to_string(),
        )
        .await;
        samples.push(t.elapsed());
    }
    println!(
        "one file changed among 5,000 Mappings → Envoy serving it: median {:.1} ms  [runs: {}] (includes the 75 ms debounce)",
        median(samples.clone()).as_secs_f64() * 1e3,
        fmt(&samples)
    );
    drop(legate);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us without it: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(envoy) = legate::envoy::locate::for_tests() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        lifecycle(&envoy).await;
        ir_change(&envoy).await;
        file_change(&envoy).await;
    });
}
