//! The built `legate` binary as a test subject: a temp `--config-dir` of getambassador.io YAML
//! routing a free listener port to a test backend, a temp `--runtime-dir`, probe and admin on
//! port 0 (read back from the `legate started` JSON log line), stderr kept for assertions and
//! printed when a test fails, and `/proc` helpers to find Envoys, zombies and namespaced pids.
//!
//! Every process dies with its test: legate (or the `unshare` wrapper around it) runs in its own
//! process group, which [`Legate`]'s `Drop` kills with SIGKILL; Envoy dies with legate through
//! its parent-death signal, and any Envoy still found with this test's runtime dir on its
//! command line is killed as well.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::http;

pub const BIN: &str = env!("CARGO_BIN_EXE_legate");
/// Generous: real Envoy on a shared 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// A port for an Envoy listener, exclusive to this test process (see `common/ports.rs`).
pub use super::ports::port as free_port;

/// Writes a Listener on `listener_port`, a Host `*` routing insecure requests, and a Mapping
/// of `/` to `127.0.0.1:<backend_port>` with no route timeout (slow requests are fine).
pub fn write_config(dir: &Path, listener_port: u16, backend_port: u16) {
    std::fs::create_dir_all(dir).unwrap();
    let yaml = format!(
        r#"apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {{name: http, namespace: default}}
spec:
  port: {listener_port}
  protocol: HTTP
  securityModel: XFP
  hostBinding: {{namespace: {{from: ALL}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {{name: any, namespace: default}}
spec:
  hostname: "*"
  requestPolicy: {{insecure: {{action: Route}}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {{name: backend, namespace: default}}
spec:
  hostname: "*"
  prefix: /
  service: 127.0.0.1:{backend_port}
  timeout_ms: 0
"#
    );
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
}

/// How to start legate.
pub struct Spec {
    pub envoy_binary: PathBuf,
    pub backend_port: u16,
    /// Extra `run` flags (drain settings etc.).
    pub args: Vec<String>,
    /// Extra environment (the process otherwise gets only `PATH` and `HOME`).
    pub env: Vec<(String, String)>,
    /// Run as PID 1 of a new PID namespace: `unshare --pid --fork --mount-proc`.
    pub pid1: bool,
    /// Write the YAML into the config dir (false: the dir is left empty).
    pub config: bool,
}

impl Spec {
    pub fn new(envoy_binary: PathBuf, backend_port: u16) -> Spec {
        Spec {
            envoy_binary,
            backend_port,
            args: vec![],
            env: vec![],
            pid1: false,
            config: true,
        }
    }

    pub fn args(mut self, args: &[&str]) -> Spec {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Spec {
        self.env.push((name.into(), value.into()));
        self
    }
}

/// A running legate (or `unshare` wrapper around it).
pub struct Legate {
    /// legate itself, or `unshare` when [`Spec::pid1`].
    pub child: Child,
    pub probe: SocketAddr,
    pub admin: SocketAddr,
    /// Envoy's listener from the YAML (127.0.0.1:<port>).
    pub listener: SocketAddr,
    pub runtime_dir: PathBuf,
    /// The temp dir holding the config dir, the runtime dir and anything a test puts there.
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    exited: Option<ExitStatus>,
}

impl Legate {
    /// Starts legate in a fresh temp dir and waits for its `legate started` line.
    pub fn start(spec: Spec) -> Legate {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(spec, dir)
    }

    /// Like [`Legate::start`], in a temp dir the test prepared (e.g. with an Envoy wrapper).
    pub fn start_in(spec: Spec, dir: tempfile::TempDir) -> Legate {
        let config_dir = dir.path().join("config");
        let runtime_dir = dir.path().join("run");
        let listener_port = free_port();
        if spec.config {
            write_config(&config_dir, listener_port, spec.backend_port);
        } else {
            std::fs::create_dir_all(&config_dir).unwrap();
        }
        let mut cmd = if spec.pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"])
                .arg(BIN);
            c
        } else {
            Command::new(BIN)
        };
        cmd.arg("run")
            .arg("--config-dir")
            .arg(&config_dir)
            .arg("--runtime-dir")
            .arg(&runtime_dir)
            .arg("--envoy-binary")
            .arg(&spec.envoy_binary)
            .args(["--probe-address", "127.0.0.1:0"])
            .args(["--admin-address", "127.0.0.1:0"])
            .args(["--log-format", "json", "--log-level", "info"])
            .args(&spec.args)
            // Nothing from the test's environment (LEGATE_*, RUST_LOG, KUBECONFIG) leaks in.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        let mut legate = Legate {
            child,
            probe: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: SocketAddr::from(([127, 0, 0, 1], listener_port)),
            runtime_dir,
            dir,
            log,
            exited: None,
        };
        let started = Instant::now();
        let line = loop {
            let left = WAIT.saturating_sub(started.elapsed());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && v["message"] == "legate started"
                    {
                        break v;
                    }
                }
                Err(_) => panic!(
                    "legate did not log `legate started` (exit: {:?})",
                    legate.child.try_wait()
                ),
            }
        };
        let addr = |field: &str| -> SocketAddr {
            line[field]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no {field} address in {line}"))
        };
        legate.probe = addr("probe");
        legate.admin = addr("admin");
        legate
    }

    /// legate's pid as the test sees it (the `unshare` wrapper's pid with [`Spec::pid1`]).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// stderr so far, one line each.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Whether some stderr line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// `/ready`'s status and body (`None` when the probe cannot be reached).
    pub async fn ready(&self) -> Option<(u16, String)> {
        http::get(self.probe, "/ready")
            .await
            .ok()
            .map(|r| (r.status, r.body))
    }

    pub async fn wait_ready(&self) {
        self.wait_ready_within(WAIT).await;
    }

    /// [`wait_ready`](Self::wait_ready) with a longer wait, for a start-up that is slow by
    /// design (thousands of clusters on a shared 2-core machine).
    pub async fn wait_ready_within(&self, wait: Duration) {
        http::eventually(wait, "/ready 200", || async {
            matches!(self.ready().await, Some((200, _))).then_some(())
        })
        .await;
    }

    /// Polls `/ready` every 20 ms until it answers 503; returns the body.
    pub async fn wait_not_ready(&self) -> String {
        let start = Instant::now();
        loop {
            if let Some((503, body)) = self.ready().await {
                return body;
            }
            assert!(start.elapsed() < WAIT, "/ready never answered 503");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Envoy's status from legate's admin `/envoy`.
    pub async fn envoy_status(&self) -> serde_json::Value {
        http::get(self.admin, "/envoy").await.unwrap().json()
    }

    /// The running Envoy's pid, from admin `/envoy`.
    pub async fn envoy_pid(&self) -> i32 {
        http::eventually(WAIT, "an envoy pid on admin /envoy", || async {
            let status = http::get(self.admin, "/envoy").await.ok()?.json();
            status["pid"].as_i64().map(|p| p as i32)
        })
        .await
    }

    /// Waits until a request through Envoy reaches `backend` (fresh connection each try).
    pub async fn wait_traffic(&self, backend: &str) -> http::Reply {
        http::eventually(WAIT, "traffic through envoy", || async {
            let reply = http::get(self.listener, "/").await.ok()?;
            (reply.status == 200 && reply.backend().as_deref() == Some(backend)).then_some(reply)
        })
        .await
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exited = Some(status);
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "legate did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Live (non-zombie) Envoys started for this legate (found by the runtime dir on their
    /// command line).
    pub fn envoys(&self) -> Vec<i32> {
        let needle = self.runtime_dir.join("envoy.yaml");
        let needle = needle.to_string_lossy();
        pids()
            .into_iter()
            .filter(|&pid| state(pid).is_some_and(|s| s != 'Z'))
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle.as_ref()))
            })
            .collect()
    }
}

impl Drop for Legate {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = killpg(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
        for pid in self.envoys() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if std::thread::panicking() {
            eprintln!("---- legate stderr ----");
            for line in self.log() {
                eprintln!("{line}");
            }
        }
    }
}

/// Every pid in `/proc`.
pub fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// A field of `/proc/<pid>/status` (`None` when the process is gone).
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The process state letter (`R`, `S`, `Z`…), `None` when the process is gone.
pub fn state(pid: i32) -> Option<char> {
    status_field(pid, "State")?.chars().next()
}

pub fn parent(pid: i32) -> Option<i32> {
    status_field(pid, "PPid")?.parse().ok()
}

/// The pid in each PID namespace, outermost (this test's view) first.
pub fn ns_pids(pid: i32) -> Vec<i32> {
    status_field(pid, "NSpid")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn running(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// Children of `parent` that are zombies.
pub fn zombie_children(parent_pid: i32) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|&p| parent(p) == Some(parent_pid) && state(p) == Some('Z'))
        .collect()
}
