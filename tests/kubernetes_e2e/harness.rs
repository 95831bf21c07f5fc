//! legate started in process with the Kubernetes source reading the fake API server through a
//! kubeconfig (the same path `legate run --kubeconfig` takes), the real Envoy, and helpers to
//! build objects and read legate's admin views.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use legate::app::{App, Overrides, Signals};
use legate::config::{Config, Env};
use legate::{drain, signal};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::fake_apiserver::FakeApiServer;
use super::http::{Reply, eventually, get, request};

/// Generous: real Envoy on 2 shared cores, with other tests running.
pub const LONG: Duration = Duration::from_secs(60);

/// A port for an Envoy listener, exclusive to this test process (see `common/ports.rs`).
pub use super::ports::port as free_port;

pub fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// A running in-process legate; a fast exit is triggered when dropped, and the runtime's
/// shutdown then kills Envoy.
pub struct Legate {
    pub probe: SocketAddr,
    pub admin: SocketAddr,
    pub trigger: drain::Trigger,
    pub exit: tokio::task::JoinHandle<u8>,
    pub dir: tempfile::TempDir,
}

impl Drop for Legate {
    fn drop(&mut self) {
        self.trigger.fast("test ended");
    }
}

impl Legate {
    /// Starts legate against `server`. `None` only when Envoy tests are explicitly skipped.
    pub async fn start(server: &FakeApiServer, tweak: impl FnOnce(&mut Config)) -> Option<Legate> {
        let binary = legate::envoy::locate::for_tests()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig);
        let mut config = Config::default();
        config.envoy.binary = Some(binary);
        config.runtime_dir = Some(dir.path().join("run"));
        config.probe.address = "127.0.0.1:0".parse().expect("addr");
        config.admin.address = "127.0.0.1:0".parse().expect("addr");
        config.drain.min_ms = 100;
        config.drain.deadline_ms = 5_000;
        config.drain.poll_ms = 100;
        config.source.kubeconfig = Some(kubeconfig);
        tweak(&mut config);
        let (trigger, _) = drain::channel();
        let signals = Signals {
            trigger: trigger.clone(),
            envoy_pid: signal::EnvoyPid::default(),
        };
        let overrides = Overrides {
            no_reaper: true,
            ..Overrides::default()
        };
        let app = match App::start(config, &Env::default(), signals, overrides).await {
            Ok(app) => app,
            Err(e) => panic!("legate did not start: {}", e.message),
        };
        Some(Legate {
            probe: app.bound().probe,
            admin: app.bound().admin,
            trigger,
            exit: tokio::spawn(app.wait()),
            dir,
        })
    }

    pub async fn ready_status(&self) -> Option<Reply> {
        get(self.probe, "/ready").await.ok()
    }

    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            let ready = self.ready_status().await;
            if ready.as_ref().is_some_and(|r| r.status == 200) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "not ready after {LONG:?}: {:?}\nxds: {:#}",
                    ready.map(|r| r.body),
                    self.admin_json("/xds").await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn admin_json(&self, path: &str) -> Value {
        let reply = get(self.admin, path).await.expect("admin answers");
        assert_eq!(reply.status, 200, "admin {path}: {}", reply.body);
        reply.json()
    }

    pub async fn ir(&self) -> Value {
        self.admin_json("/ir").await
    }

    /// The xDS versions Envoy ACKed, per type (`cluster`, `listener`, `route`, `endpoint`,
    /// `secret`), once it has ACKed everything legate last published.
    pub async fn settled_versions(&self) -> BTreeMap<String, String> {
        eventually(LONG, "envoy acked the last snapshot", || async {
            let ready = self.ready_status().await?;
            if ready.status != 200 {
                return None;
            }
            acked_versions(&self.admin_json("/xds").await)
        })
        .await
    }

    pub async fn metric(&self, name: &str) -> f64 {
        super::http::metric(self.admin, name).await
    }
}

/// `acked_version` per type of the one connected Envoy, if every subscribed type has one.
pub fn acked_versions(xds: &Value) -> Option<BTreeMap<String, String>> {
    let clients = xds.as_array()?;
    if clients.len() != 1 {
        return None;
    }
    let mut out = BTreeMap::new();
    for (ty, state) in clients[0]["types"].as_object()? {
        let subscribed =
            state["wildcard"] == true || state["names"].as_array().is_some_and(|n| !n.is_empty());
        if !subscribed {
            continue;
        }
        let acked = state["acked_version"].as_str()?;
        if state["sent_version"].as_str() != Some(acked) {
            return None;
        }
        out.insert(ty.clone(), acked.to_string());
    }
    Some(out)
}

/// A request through Envoy with this `Host`.
pub async fn get_host(addr: SocketAddr, host: &str, path: &str) -> Result<Reply, String> {
    request(addr, "GET", path, &[("host", host)]).await
}

/// Waits until `GET path` (Host `host`) through Envoy answers `status` (and, for 200, from
/// `backend`).
pub async fn until_served(
    addr: SocketAddr,
    host: &str,
    path: &str,
    status: u16,
    backend: Option<&str>,
) -> Reply {
    let what = format!("GET {host}{path} → {status} {backend:?} on {addr}");
    eventually(LONG, &what, || async {
        let r = get_host(addr, host, path).await.ok()?;
        (r.status == status && (backend.is_none() || r.backend().as_deref() == backend))
            .then_some(r)
    })
    .await
}

/// Waits until nothing listens on `port` any more.
pub async fn until_refused(port: u16) {
    eventually(LONG, &format!("port {port} closed"), || async {
        TcpStream::connect(local(port)).await.is_err().then_some(())
    })
    .await;
}

// ---- objects ----

pub fn amb(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "getambassador.io/v3alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": "default"}, "spec": spec,
    })
}

/// An HTTP Listener (securityModel XFP, Hosts from every namespace).
pub fn http_listener(name: &str, port: u16) -> Value {
    amb(
        "Listener",
        name,
        json!({"port": port, "protocol": "HTTP", "securityModel": "XFP",
               "hostBinding": {"namespace": {"from": "ALL"}}}),
    )
}

/// An HTTPS Listener (TLS and cleartext chains).
pub fn https_listener(name: &str, port: u16) -> Value {
    amb(
        "Listener",
        name,
        json!({"port": port, "protocol": "HTTPS", "securityModel": "XFP",
               "hostBinding": {"namespace": {"from": "ALL"}}}),
    )
}

/// A cleartext Host routing insecure requests.
pub fn host(name: &str, hostname: &str) -> Value {
    amb(
        "Host",
        name,
        json!({"hostname": hostname, "requestPolicy": {"insecure": {"action": "Route"}}}),
    )
}

pub fn mapping(name: &str, prefix: &str, service: &str) -> Value {
    amb(
        "Mapping",
        name,
        json!({"hostname": "*", "prefix": prefix, "service": service}),
    )
}

pub fn tls_secret(name: &str, cert_pem: &str, key_pem: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": name, "namespace": "default"},
           "data": {"tls.crt": base64(cert_pem.as_bytes()), "tls.key": base64(key_pem.as_bytes())}})
}

/// A Service `name` in `default` with one TCP port `port` (target `target`).
pub fn service(name: &str, port: u16, target: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"ports": [{"port": port, "targetPort": target, "protocol": "TCP"}]}})
}

/// An endpoint of a slice: `(address, ready, terminating)`.
pub type Ep<'a> = (&'a str, bool, bool);

pub fn endpoint_slice(name: &str, service: &str, port: u16, endpoints: &[Ep<'_>]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready, terminating)| {
            json!({"addresses": [ip],
                   "conditions": {"ready": ready, "serving": ready, "terminating": terminating}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": "default",
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4", "endpoints": endpoints,
           "ports": [{"name": "", "port": port, "protocol": "TCP"}]})
}

/// Standard base64 with padding (Secret `data`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- a TCP echo server ----

/// Answers every connection by echoing each read back, prefixed with its name: `name:data`.
pub struct Echo {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    pub async fn start(name: &str) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let name = name.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let name = name.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let mut reply = format!("{name}:").into_bytes();
                        reply.extend_from_slice(&buf[..n]);
                        if stream.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Echo { addr, task }
    }
}

/// Sends `message` on a new connection to `addr` and returns the reply.
pub async fn tcp_exchange(addr: SocketAddr, message: &str) -> Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(message.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = vec![0u8; 1024];
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed without a reply".to_string());
        }
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// A directory for certificates and the like that outlives the test's legate.
pub fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"cert"), "Y2VydA==");
}
