//! Small HTTP client helpers and a keep-alive load generator for behaviour tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One response, simplified.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Which test backend answered (from its JSON body).
    pub fn backend(&self) -> Option<String> {
        self.json()
            .get("backend")
            .and_then(|b| b.as_str())
            .map(str::to_string)
    }
}

/// A single request on a fresh connection. `headers` are (name, value) pairs; `Host` defaults to
/// `localhost`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    send(&mut sender, method, path, headers).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply, String> {
    request(addr, "GET", path, &[]).await
}

async fn send(
    sender: &mut http1::SendRequest<Empty<Bytes>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let mut b = hyper::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", "localhost");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Outcome of a load run.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn rate(&self) -> f64 {
        (self.ok + self.failed) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Steady load over `connections` keep-alive connections, each sending a request every
/// `interval`, until `stop` is set. A request fails when it errors or its status is not 200.
/// A connection the server closes (e.g. `Connection: close`) is reopened, not counted as a
/// failure; a request that was sent and got no answer is.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadReport>>,
    started: Instant,
}

impl Load {
    pub fn start(
        addr: SocketAddr,
        path: &'static str,
        connections: usize,
        interval: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..connections)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move { run_connection(addr, path, interval, stop).await })
            })
            .collect();
        Load {
            stop,
            tasks,
            started: Instant::now(),
        }
    }

    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = LoadReport::default();
        for t in self.tasks {
            let r = t.await.expect("load task");
            total.ok += r.ok;
            total.failed += r.failed;
            total.failures.extend(r.failures);
        }
        total.elapsed = self.started.elapsed();
        total
    }
}

async fn run_connection(
    addr: SocketAddr,
    path: &str,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut sender: Option<http1::SendRequest<Empty<Bytes>>> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            match TcpStream::connect(addr).await {
                Ok(stream) => match http1::handshake(TokioIo::new(stream)).await {
                    Ok((s, conn)) => {
                        tokio::spawn(conn);
                        sender = Some(s);
                    }
                    Err(e) => {
                        report.failed += 1;
                        report.failures.push(format!("handshake: {e}"));
                        continue;
                    }
                },
                Err(e) => {
                    report.failed += 1;
                    report.failures.push(format!("connect: {e}"));
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        if s.ready().await.is_err() {
            sender = None;
            continue;
        }
        match send(s, "GET", path, &[]).await {
            Ok(r) if r.status == 200 => {
                report.ok += 1;
                let close = r
                    .headers
                    .get("connection")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                if close {
                    sender = None;
                }
            }
            Ok(r) => {
                report.failed += 1;
                report
                    .failures
                    .push(format!("status {}: {}", r.status, r.body));
            }
            Err(e) => {
                report.failed += 1;
                report.failures.push(e);
                sender = None;
            }
        }
    }
    report
}
