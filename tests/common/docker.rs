//! The real Docker Engine, through the `docker` CLI, for tests of legate's image.
//!
//! Tests **fail** when Docker is missing or the image has not been built (`scripts/image`;
//! `scripts/test` builds it first). `LEGATE_SKIP_DOCKER_TESTS=1` is the explicit opt-out.
//! Every container and network a test creates has a name unique to the run and is removed
//! when its [`Scope`] is dropped, pass or fail.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `docker run` flags every legate container of the image tests gets;
/// image/kubernetes/deployment.yaml says the same in pod-spec terms (tests/manifests.rs checks
/// it against this list): read-only root filesystem with a tmpfs for the runtime dir (/tmp),
/// every capability dropped, no privilege escalation. The user is the image's (65532).
pub const HARDENED: &[&str] = &[
    "--read-only",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
];

/// The image's user and group, as `USER` in image/Dockerfile.
pub const IMAGE_UID: u64 = 65532;

/// The image under test: `$LEGATE_IMAGE`, else `legate:latest` (what `scripts/image` builds).
pub fn image() -> String {
    std::env::var("LEGATE_IMAGE").unwrap_or_else(|_| "legate:latest".into())
}

/// The demo upstream image (`scripts/image` builds it next to legate's).
pub fn upstream_image() -> String {
    std::env::var("LEGATE_UPSTREAM_IMAGE").unwrap_or_else(|_| "legate-upstream:latest".into())
}

/// `None` when the tests are explicitly skipped; panics, saying what to do, when Docker or the
/// image is missing.
pub fn require() -> Option<Scope> {
    if std::env::var("LEGATE_SKIP_DOCKER_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("LEGATE_SKIP_DOCKER_TESTS=1: skipping a Docker test");
        return None;
    }
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Docker Engine does not answer (`docker info`: {}); image tests need it \
             (LEGATE_SKIP_DOCKER_TESTS=1 skips them)",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "docker is not installed ({e}); image tests need it (LEGATE_SKIP_DOCKER_TESTS=1 \
             skips them)"
        ),
    }
    for image in [image(), upstream_image()] {
        let ok = Command::new("docker")
            .args(["image", "inspect", &image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "image {image} is missing: run scripts/image (scripts/test does)"
        );
    }
    Some(Scope::default())
}

/// Runs `docker ARGS`; panics with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `docker ARGS`, whatever its outcome.
pub fn docker_output(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// Names unique to this test run, and cleanup of everything created under them.
#[derive(Default)]
pub struct Scope {
    containers: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Scope {
    /// A name unique to this process and call: `legate-test-<pid>-<n>-<what>`.
    pub fn name(&self, what: &str) -> String {
        format!(
            "legate-test-{}-{}-{what}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A user-defined bridge network (container names resolve on it).
    pub fn network(&self) -> String {
        let name = self.name("net");
        docker(&["network", "create", &name]);
        self.networks.lock().unwrap().push(name.clone());
        name
    }

    /// `docker run -d --name NAME ARGS…`; the container is removed with the scope.
    pub fn run(&self, what: &str, args: &[&str]) -> Container {
        let name = self.name(what);
        self.containers.lock().unwrap().push(name.clone());
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        docker(&all);
        Container { name }
    }

    /// `docker run --name NAME ARGS…` in the foreground: its output and exit status. The
    /// container is killed after `limit` (so a legate that serves instead of failing cannot
    /// hang the test) and removed with the scope.
    pub fn run_to_exit(&self, what: &str, args: &[&str], limit: Duration) -> Output {
        let name = self.name(what);
        self.containers.lock().unwrap().push(name.clone());
        let mut all = vec!["run", "--name", &name];
        all.extend_from_slice(args);
        let child = Command::new("docker")
            .args(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker");
        let (done, waited) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(child.wait_with_output()));
        match waited.recv_timeout(limit) {
            Ok(out) => out.expect("docker run"),
            Err(_) => {
                let _ = docker_output(&["rm", "-f", &name]);
                panic!("container {name} ({args:?}) was still running after {limit:?}")
            }
        }
    }

    /// An upstream echo container named `backend` on `network`, answering on port 9000.
    pub fn upstream(&self, network: &str, backend: &str) -> Container {
        self.run(
            backend,
            &[
                "--network",
                network,
                "--network-alias",
                backend,
                "-e",
                &format!("UPSTREAM_NAME={backend}"),
                &upstream_image(),
            ],
        )
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut *self.containers.lock().unwrap());
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(containers.iter().map(String::as_str));
            let _ = docker_output(&args);
        }
        for network in std::mem::take(&mut *self.networks.lock().unwrap()) {
            let _ = docker_output(&["network", "rm", &network]);
        }
    }
}

/// A running (or exited) container.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
}

impl Container {
    /// The host address a container port is published on (`-p 127.0.0.1::PORT`).
    pub fn port(&self, port: u16) -> SocketAddr {
        let out = docker(&["port", &self.name, &format!("{port}/tcp")]);
        out.lines()
            .find_map(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("port {port} of {} is not published: {out}", self.name))
    }

    /// `docker inspect -f FORMAT`.
    pub fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.name])
    }

    pub fn logs(&self) -> String {
        let out = docker_output(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Processes as `docker top` shows them: (host pid, state, command), from `ps -o`.
    pub fn top(&self) -> Vec<(i32, String, String)> {
        let out = docker(&["top", &self.name, "-eo", "pid,stat,comm"]);
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.to_string(),
                    f.collect::<Vec<_>>().join(" "),
                ))
            })
            .collect()
    }

    /// Waits until `/ready` on the published probe port answers 200.
    pub fn wait_ready(&self, within: Duration) {
        let probe = self.port(8877);
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = get(probe, "/ready") {
                return;
            }
            if start.elapsed() > within {
                panic!(
                    "{} not ready within {within:?}; logs:\n{}",
                    self.name,
                    self.logs()
                );
            }
            assert_eq!(
                self.inspect("{{.State.Running}}"),
                "true",
                "{} exited; logs:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One `GET` with `Connection: close`: (status, body), or the error as text. Any failure to
/// connect, send or read is an `Err`: nothing is retried.
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    get_with(addr, path, &[])
}

pub fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let timeout = Duration::from_secs(30);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {raw:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The `backend` field of the demo upstream's JSON echo.
pub fn backend_of(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["backend"].as_str().map(str::to_string)
}

/// Polls `f` until it returns `Some`, or panics naming `what`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A directory on the host to mount at /config: readable by the image's user 65532.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(files: &[(&str, &str)]) -> ConfigDir {
        let dir = tempfile::tempdir().expect("tempdir");
        set_mode(dir.path(), 0o755);
        let c = ConfigDir { dir };
        for (name, text) in files {
            c.write(name, text);
        }
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes atomically (temp file + rename), as editors and config management do.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        set_mode(&tmp, 0o644);
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("rename");
    }

    /// `-v DIR:/config:ro`.
    pub fn mount(&self) -> String {
        format!("{}:/config:ro", self.dir.path().display())
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The demo upstream binary built by `scripts/image` (for mounting into a container).
pub fn upstream_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // <target>/<profile>/deps/<test> → <target>/image-upstream/upstream
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the target directory")
        .to_path_buf();
    let bin = target.join("image-upstream/upstream");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/image (scripts/test does)",
        bin.display()
    );
    bin
}

/// The standard Listener (port 8080) and Host of the image tests, and a Mapping per
/// (name, prefix, service).
pub fn routes(mappings: &[(&str, &str, &str)]) -> String {
    let mut yaml = String::from(
        "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {name: http, namespace: default}\n\
         spec: {port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}\n\
         ---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: any, namespace: default}\n\
         spec: {hostname: \"*\", requestPolicy: {insecure: {action: Route}}}\n",
    );
    for (name, prefix, service) in mappings {
        yaml.push_str("---\n");
        yaml.push_str(&mapping(name, prefix, service));
    }
    yaml
}

/// One Mapping of `prefix` (any host) to `service`.
pub fn mapping(name: &str, prefix: &str, service: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{hostname: \"*\", prefix: {prefix}, service: \"{service}\", timeout_ms: 30000}}\n"
    )
}
