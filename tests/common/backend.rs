//! A real HTTP backend for behaviour tests: answers with JSON naming itself and echoing the
//! request (method, path, headers), so a test can assert which backend answered and what it saw.
//!
//! Special paths: `/slow/<ms>` sleeps before answering; `/held` answers only once the test
//! calls [`Backend::release_held`] (an in-flight request the test controls); `/status/<code>` answers that status;
//! `/flaky/...` fails with 503 every other request (counting per backend). A request with
//! `Upgrade: websocket` is answered `101 Switching Protocols` and the connection then echoes
//! every byte back (enough to prove an upgrade went through a proxy; no websocket framing).
//!
//! [`TcpEcho`] is a raw TCP backend that echoes every byte, for TCPMappings.

// Shared by several test binaries; each uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    /// Every connection's task, so that stopping the backend closes them too.
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    /// Set once: `/held` requests answer.
    released: Arc<watch::Sender<bool>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        Self::serve(name, listener)
    }

    /// Binds exactly `addr` (e.g. `127.0.0.3:<port>`: every 127/8 address is on loopback).
    pub async fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<Backend> {
        Ok(Self::serve(name, TcpListener::bind(addr).await?))
    }

    fn serve(name: &str, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().expect("backend addr");
        let hits = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let released = Arc::new(watch::Sender::new(false));
        let name_owned = name.to_string();
        let (h, conns, gate) = (hits.clone(), connections.clone(), released.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let name = name_owned.clone();
                let hits = h.clone();
                let gate = gate.subscribe();
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        handle(name.clone(), hits.clone(), gate.clone(), req)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
                let mut conns = conns.lock().unwrap();
                conns.retain(|c: &tokio::task::AbortHandle| !c.is_finished());
                conns.push(conn.abort_handle());
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            hits,
            task,
            connections,
            released,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Lets every `/held` request (in flight or to come) answer.
    pub fn release_held(&self) {
        self.released.send_replace(true);
    }

    /// Stops like a killed server: the listening socket is closed (new connections are
    /// refused) and every open connection, idle keep-alive ones included, is closed. Returns
    /// once the listener is gone.
    pub async fn stop(mut self) {
        self.task.abort();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        // Cancelled: the accept loop and its listener are dropped, and no connection is
        // accepted any more, so the list below is complete.
        let _ = task.await;
        self.abort();
    }

    fn abort(&self) {
        self.task.abort();
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn handle(
    name: String,
    hits: Arc<AtomicU64>,
    mut gate: watch::Receiver<bool>,
    mut req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let n = hits.fetch_add(1, Ordering::Relaxed);
    let websocket = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if websocket {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 4096];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let resp = Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("x-backend", name.as_str())
            .body(Full::new(Bytes::new()))
            .expect("response");
        return Ok(resp);
    }
    let path = req.uri().path().to_string();
    let mut status = 200u16;
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|s| s.split('/').next())
    {
        let ms: u64 = ms.parse().unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path.starts_with("/held") {
        let _ = gate.wait_for(|released| *released).await;
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|s| s.split('/').next())
    {
        status = code.parse().unwrap_or(500);
    }
    if path.starts_with("/flaky") && n.is_multiple_of(2) {
        status = 503;
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = serde_json::json!({
        "backend": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    });
    let resp = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-backend", name.as_str())
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response");
    Ok(resp)
}

/// A raw TCP backend echoing every byte it receives.
pub struct TcpEcho {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TcpEcho {
    pub async fn start() -> TcpEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let connections = Arc::new(AtomicU64::new(0));
        let c = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        TcpEcho {
            addr,
            connections,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}
