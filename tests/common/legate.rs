//! An in-process legate for behaviour tests: [`Legate::start`] runs a whole `App` (file source
//! on a temp config directory, pipeline, ADS server, the real Envoy, probes, admin) inside the
//! test process and returns once `/ready` says 200.
//!
//! Everything is torn down with the value: `Drop` asks for a fast drain and SIGKILLs Envoy's
//! process group, so a failing test leaves no Envoy behind. The orphan reaper is off (it would
//! steal the exit statuses of the test's other children, e.g. `curl`).
//!
//! Listener ports come from [`free_port`] (`common/ports.rs`); Envoy binds `0.0.0.0:<port>`, tests connect to
//! `127.0.0.1:<port>`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use legate::app::{App, Overrides, Signals};
use legate::config::{Config, Env};
use legate::envoy::supervisor;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::task::JoinHandle;

use super::http;

/// Generous: a cold Envoy start on a loaded 2-core machine.
pub const START: Duration = Duration::from_secs(60);
/// How long a test waits for a configuration change to take effect before giving up.
pub const CHANGE: Duration = Duration::from_secs(30);

pub struct Legate {
    dir: tempfile::TempDir,
    _run: tempfile::TempDir,
    pub probe: SocketAddr,
    pub admin: SocketAddr,
    trigger: legate::drain::Trigger,
    envoy: supervisor::Handle,
    task: Option<JoinHandle<u8>>,
}

/// A port for an Envoy listener, exclusive to this test process (see `common/ports.rs`).
pub use super::ports::port as free_port;

/// `127.0.0.1:<port>`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("legate=info,envoy=warn")
        .try_init();
}

impl Legate {
    /// Writes `files` (name, YAML) into a fresh config directory, starts legate on it and waits
    /// until it is ready. `None` only when `LEGATE_SKIP_ENVOY_TESTS=1`.
    pub async fn start(files: &[(&str, &str)]) -> Option<Legate> {
        Self::start_with(files, |_| {}).await
    }

    /// [`Legate::start`], with settings changed by `configure` after the test defaults.
    pub async fn start_with(
        files: &[(&str, &str)],
        configure: impl FnOnce(&mut Config),
    ) -> Option<Legate> {
        init_tracing();
        let binary = legate::envoy::locate::for_tests()?;
        let dir = tempfile::tempdir().expect("config dir");
        for (name, yaml) in files {
            write_file(dir.path(), name, yaml);
        }
        let run = tempfile::Builder::new()
            .prefix("lg")
            .tempdir()
            .expect("runtime dir");
        let mut config = Config::default();
        config.source.config_dir = Some(dir.path().to_path_buf());
        config.source.debounce_ms = 20;
        config.probe.address = "127.0.0.1:0".parse().expect("addr");
        config.admin.address = "127.0.0.1:0".parse().expect("addr");
        config.runtime_dir = Some(run.path().join("rt"));
        config.envoy.binary = Some(binary);
        config.envoy.concurrency = Some(1);
        config.envoy.health_interval_ms = 200;
        config.drain.delay_ms = 0;
        config.drain.min_ms = 0;
        config.drain.deadline_ms = 2_000;
        config.drain.poll_ms = 50;
        config.drain.stop_timeout_ms = 1_000;
        configure(&mut config);
        let (trigger, _watch) = legate::drain::channel();
        let signals = Signals {
            trigger: trigger.clone(),
            envoy_pid: legate::signal::EnvoyPid::default(),
        };
        let overrides = Overrides {
            no_reaper: true,
            ..Overrides::default()
        };
        let app = match App::start(config, &Env::default(), signals, overrides).await {
            Ok(app) => app,
            Err(e) => panic!("legate did not start (exit code {}): {}", e.code, e.message),
        };
        let bound = app.bound().clone();
        let envoy = app.envoy().clone();
        let task = tokio::spawn(app.wait());
        let legate = Legate {
            dir,
            _run: run,
            probe: bound.probe,
            admin: bound.admin,
            trigger,
            envoy,
            task: Some(task),
        };
        legate.wait_ready().await;
        Some(legate)
    }

    async fn wait_ready(&self) {
        let probe = self.probe;
        let deadline = Instant::now() + START;
        loop {
            let reply = http::get(probe, "/ready").await;
            if reply.as_ref().is_ok_and(|r| r.status == 200) {
                return;
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                panic!("legate exited before it was ready");
            }
            if Instant::now() > deadline {
                panic!("legate not ready after {START:?}: {reply:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces) one file atomically: a hidden temp file renamed into place, so the
    /// source never sees it half-written.
    pub fn write(&self, name: &str, yaml: &str) {
        write_file(self.dir.path(), name, yaml);
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove config file");
    }

    /// Admin `GET /errors`, each rendered as one line like the golden `errors.txt`.
    pub async fn errors(&self) -> Vec<String> {
        let reply = http::get(self.admin, "/errors")
            .await
            .expect("admin /errors");
        assert_eq!(reply.status, 200, "admin /errors: {}", reply.body);
        let mut lines: Vec<String> = reply
            .json()
            .as_array()
            .expect("errors array")
            .iter()
            .map(render_error)
            .collect();
        lines.sort();
        lines
    }

    /// Polls admin `/errors` until it equals `expected` (sorted).
    pub async fn wait_errors(&self, expected: &[String]) {
        let mut expected = expected.to_vec();
        expected.sort();
        let deadline = Instant::now() + CHANGE;
        loop {
            let actual = self.errors().await;
            if actual == expected {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "admin /errors never matched\n--- expected\n{}\n--- actual\n{}",
                    expected.join("\n"),
                    actual.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops legate through a fast drain and returns its exit code.
    pub async fn stop(mut self) -> u8 {
        self.trigger.fast("test finished");
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("legate stops")
            .expect("legate task")
    }
}

impl Drop for Legate {
    fn drop(&mut self) {
        self.trigger.fast("test finished");
        if let Some(pid) = self.envoy.pid() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

fn write_file(dir: &Path, name: &str, yaml: &str) {
    let path: PathBuf = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, yaml).expect("write config file");
    std::fs::rename(&tmp, &path).expect("rename config file");
}

/// One `ResourceError` as JSON → `origin: [warning: ]Kind ns/name: field: message`, the
/// `Display` form used by `errors.txt`.
fn render_error(e: &serde_json::Value) -> String {
    let origin = match &e["origin"] {
        serde_json::Value::Object(o) if o.contains_key("file") => {
            let f = &o["file"];
            format!("{}#{}", f["file"].as_str().unwrap_or("?"), f["doc"])
        }
        serde_json::Value::Object(o) if o.contains_key("kubernetes") => {
            let k = &o["kubernetes"];
            format!(
                "{}/{}",
                k["namespace"].as_str().unwrap_or("?"),
                k["name"].as_str().unwrap_or("?")
            )
        }
        _ => "<builtin>".to_string(),
    };
    let mut line = format!("{origin}: ");
    if e["warning"].as_bool() == Some(true) {
        line.push_str("warning: ");
    }
    let kind = e["kind"].as_str().unwrap_or_default();
    if !kind.is_empty() {
        line.push_str(&format!(
            "{kind} {}: ",
            e["name"].as_str().unwrap_or_default()
        ));
    }
    if let Some(field) = e["field"].as_str() {
        line.push_str(&format!("{field}: "));
    }
    line.push_str(e["message"].as_str().unwrap_or_default());
    line
}

/// YAML builders for the common resources.
pub mod yaml {
    /// An HTTP Listener on `port` taking Hosts from every namespace.
    pub fn listener(name: &str, port: u16, protocol: &str, security: &str) -> String {
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{port: {port}, protocol: {protocol}, securityModel: {security}, hostBinding: {{namespace: {{from: ALL}}}}}}\n"
        )
    }

    /// A Host; `extra` is more flow-mapping spec fields (`tlsSecret: {name: x}`), or empty.
    pub fn host(name: &str, hostname: &str, insecure: &str, extra: &str) -> String {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{hostname: '{hostname}', requestPolicy: {{insecure: {{action: {insecure}}}}}{extra}}}\n"
        )
    }

    /// A Mapping; `spec` is the inside of a flow mapping (`hostname: '*', prefix: /a/, ...`).
    pub fn mapping(name: &str, spec: &str) -> String {
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{{spec}}}\n"
        )
    }

    /// Joins documents into one multi-document file.
    pub fn docs(docs: &[String]) -> String {
        docs.join("---\n")
    }

    /// The usual base: an HTTP/INSECURE Listener on `port` and a `*` Host routing plain traffic.
    pub fn base(port: u16) -> String {
        docs(&[
            listener("http", port, "HTTP", "INSECURE"),
            host("any", "*", "Route", ""),
        ])
    }
}
