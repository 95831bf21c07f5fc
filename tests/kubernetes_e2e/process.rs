//! `legate run --kubeconfig` as a child process, bound to port 0: the bound addresses come from
//! its `legate started` log line. Killed (with its Envoy, through PR_SET_PDEATHSIG) on drop.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::fake_apiserver::FakeApiServer;
use super::harness::LONG;

const BIN: &str = env!("CARGO_BIN_EXE_legate");

pub struct Process {
    child: Child,
    pub probe: SocketAddr,
    pub admin: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Process {
    pub async fn start(server: &FakeApiServer, envoy: &Path) -> Process {
        Process::start_with(server, envoy, &[]).await
    }

    /// [`Process::start`] with these `LEGATE_*` settings in its environment.
    pub async fn start_with(
        server: &FakeApiServer,
        envoy: &Path,
        settings: &[(&str, &str)],
    ) -> Process {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig);
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--envoy-binary")
            .arg(envoy)
            .arg("--runtime-dir")
            .arg(dir.path().join("run"))
            .args(["--probe-address", "127.0.0.1:0"])
            .args(["--admin-address", "127.0.0.1:0"])
            .args(["--drain-min-ms", "100", "--drain-deadline-ms", "5000"])
            .args(["--log-format", "json"])
            .env_remove("KUBECONFIG")
            .env_remove("LEGATE_CONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("legate starts");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (started_tx, started) = oneshot::channel();
        let keep = lines.clone();
        tokio::spawn(async move {
            let mut started_tx = Some(started_tx);
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(addrs) = bound(&line)
                    && let Some(tx) = started_tx.take()
                {
                    let _ = tx.send(addrs);
                }
                keep.lock().unwrap().push(line);
            }
        });
        let (probe, admin) = match tokio::time::timeout(LONG, started).await {
            Ok(Ok(addrs)) => addrs,
            _ => panic!(
                "no `legate started` line; stderr:\n{}",
                lines.lock().unwrap().join("\n")
            ),
        };
        Process {
            child,
            probe,
            admin,
            lines,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit code (`None` if killed by a signal or not exited in time).
    pub async fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => None,
        }
    }
}

/// `(probe, admin)` from a JSON `legate started` line.
fn bound(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields").unwrap_or(&v);
    if fields["message"] != "legate started" {
        return None;
    }
    let probe = fields["probe"].as_str()?.parse().ok()?;
    let admin = fields["admin"].as_str()?.parse().ok()?;
    Some((probe, admin))
}
