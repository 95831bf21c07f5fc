//! Small HTTP client helpers, and the load generator behind every zero-failure check.
//!
//! [`Load`] sends steady HTTP/1.1 traffic and counts *every* failure by [`Failure`] category:
//! an unexpected status, a connection that cannot be opened, one that breaks under a request, a
//! request that times out, and a keep-alive connection that the server closes (or announces it
//! will close with `Connection: close`), which would force a reconnect the test did not ask for.
//! Nothing is retried and nothing reconnects silently: a reconnect only happens after a failure
//! that was counted, or in [`LoadSpec::new_connection_per_request`] mode where every connection
//! is planned. [`LoadReport`]'s `Display` names the counts, so an assertion message says what
//! happened. The harness tests (`tests/harness.rs`) prove each category is seen.

// Shared by several test binaries; each uses only part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A keep-alive HTTP/1.1 connection for [`send`].
pub type Conn = http1::SendRequest<Empty<Bytes>>;

/// Opens a keep-alive connection.
pub async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request on an open connection (see [`request`] for `headers`).
pub async fn send(
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

/// The value of an unlabelled (or exactly labelled, `name{label="x"}`) Prometheus sample in
/// `text`; `None` when there is no such sample.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One sample of `GET /metrics` on `admin`; panics naming the metric when it is missing.
pub async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let text = get(admin, "/metrics").await.expect("admin /metrics").body;
    metric_value(&text, name).unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

// ---- the load generator ----

/// Why a load request (or connection) failed. Every one is counted; none is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// An answer with a status other than the expected one ([`LoadSpec::expect_status`]).
    Status,
    /// A connection could not be opened: refused, unreachable, or its TLS handshake failed.
    Connect,
    /// A connection broke under a request: reset, or closed before the whole answer came.
    Reset,
    /// No complete answer (or connection) within [`LoadSpec::timeout`].
    Timeout,
    /// The server closed an idle keep-alive connection, or answered with `Connection: close`:
    /// the client would have to reconnect, which a keep-alive client did not plan to do.
    Closed,
}

impl Failure {
    pub const ALL: [Failure; 5] = [
        Failure::Status,
        Failure::Connect,
        Failure::Reset,
        Failure::Timeout,
        Failure::Closed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Failure::Status => "status",
            Failure::Connect => "connect",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Closed => "closed by server",
        }
    }
}

/// How many failure messages a report keeps (the counts are always complete).
const SAMPLES: usize = 10;

/// The outcome of a load run.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Failures per category, indexed like [`Failure::ALL`].
    counts: [u64; 5],
    /// The first failures, each `[time since start] category: what happened`.
    pub samples: Vec<String>,
    /// Connections opened (in keep-alive mode: one per connection, plus one after each
    /// counted failure that broke a connection).
    pub connections: u64,
    pub elapsed: Duration,
}

impl LoadReport {
    /// Failures of one category.
    pub fn count(&self, failure: Failure) -> u64 {
        self.counts[failure as usize]
    }

    /// Failures of every category.
    pub fn failures(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Requests attempted per second (answered or not).
    pub fn rate(&self) -> f64 {
        (self.ok + self.failures()) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Panics unless there was no failure at all and at least `min_ok` requests succeeded
    /// (a run that hardly sent anything proves nothing). `what` names the run.
    #[track_caller]
    pub fn assert_clean(&self, what: &str, min_ok: u64) {
        assert_eq!(self.failures(), 0, "{what}: {self}");
        assert!(
            self.ok >= min_ok,
            "{what}: fewer than {min_ok} requests succeeded, too little load to prove anything: {self}"
        );
    }

    fn fail(&mut self, failure: Failure, started: Instant, what: impl std::fmt::Display) {
        self.counts[failure as usize] += 1;
        if self.samples.len() < SAMPLES {
            let at = started.elapsed().as_secs_f64();
            self.samples
                .push(format!("[{at:.3}s] {}: {what}", failure.name()));
        }
    }

    fn merge(&mut self, other: LoadReport) {
        self.ok += other.ok;
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.connections += other.connections;
        let room = SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }
}

impl std::fmt::Display for LoadReport {
    /// `812 ok, 2 failed (status 0, connect 0, reset 1, timeout 0, closed by server 1), 9
    /// connections, 4.1 s, 198 req/s; first failures: [...]`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts: Vec<String> = Failure::ALL
            .iter()
            .map(|c| format!("{} {}", c.name(), self.count(*c)))
            .collect();
        write!(
            f,
            "{} ok, {} failed ({}), {} connections, {:.1} s, {:.0} req/s",
            self.ok,
            self.failures(),
            counts.join(", "),
            self.connections,
            self.elapsed.as_secs_f64(),
            self.rate()
        )?;
        if !self.samples.is_empty() {
            write!(f, "; first failures: {:?}", self.samples)?;
        }
        Ok(())
    }
}

/// A byte stream the load generator can speak HTTP/1.1 over (TCP, or TLS over TCP).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The future a [`Connector`] returns: the open stream, or why it could not be opened.
pub type Connecting = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Box<dyn Io>, String>> + Send + 'static>,
>;

/// Opens one connection to the address; the default is plain TCP. Its errors count as
/// [`Failure::Connect`].
pub type Connector = Arc<dyn Fn(SocketAddr) -> Connecting + Send + Sync>;

fn tcp_connector() -> Connector {
    Arc::new(|addr| {
        Box::pin(async move {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    })
}

/// What to send, how, and what counts as success. Build with [`LoadSpec::new`], adjust, then
/// [`LoadSpec::start`].
#[derive(Clone)]
pub struct LoadSpec {
    addr: SocketAddr,
    path: String,
    host: String,
    connections: usize,
    interval: Duration,
    per_request: bool,
    expect: u16,
    timeout: Duration,
    connector: Connector,
}

impl LoadSpec {
    /// `GET path` with `Host: localhost` to `addr` over 4 keep-alive connections, one request
    /// every 10 ms on each; 200 expected; 10 s per request before it counts as a timeout.
    pub fn new(addr: SocketAddr, path: &str) -> LoadSpec {
        LoadSpec {
            addr,
            path: path.to_string(),
            host: "localhost".to_string(),
            connections: 4,
            interval: Duration::from_millis(10),
            per_request: false,
            expect: 200,
            timeout: Duration::from_secs(10),
            connector: tcp_connector(),
        }
    }

    /// How many connections (each one request at a time).
    pub fn connections(mut self, n: usize) -> LoadSpec {
        self.connections = n;
        self
    }

    /// Time between two requests on one connection.
    pub fn interval(mut self, interval: Duration) -> LoadSpec {
        self.interval = interval;
        self
    }

    pub fn host(mut self, host: &str) -> LoadSpec {
        self.host = host.to_string();
        self
    }

    /// The status that counts as success (200 by default).
    pub fn expect_status(mut self, status: u16) -> LoadSpec {
        self.expect = status;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> LoadSpec {
        self.timeout = timeout;
        self
    }

    /// Opens every connection with `connector` (e.g. a TLS handshake over TCP).
    pub fn connector(mut self, connector: Connector) -> LoadSpec {
        self.connector = connector;
        self
    }

    /// Every request on a connection of its own (sent with `Connection: close`): each connect
    /// is planned, so a server closing the connection after the answer is not a failure.
    pub fn new_connection_per_request(mut self) -> LoadSpec {
        self.per_request = true;
        self
    }

    pub fn start(self) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let started = Instant::now();
        let spec = Arc::new(self);
        let tasks = (0..spec.connections)
            .map(|_| {
                let (spec, stop, live) = (spec.clone(), stop.clone(), live.clone());
                tokio::spawn(async move { run_connection(&spec, &stop, &live, started).await })
            })
            .collect();
        Load {
            stop,
            live,
            tasks,
            started,
        }
    }
}

/// A running load; [`Load::finish`] stops it and returns the report.
pub struct Load {
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    tasks: Vec<tokio::task::JoinHandle<LoadReport>>,
    started: Instant,
}

impl Load {
    /// Keep-alive load: `GET path` over `connections` connections, one request every
    /// `interval` on each (see [`LoadSpec`] for the other settings).
    pub fn start(addr: SocketAddr, path: &str, connections: usize, interval: Duration) -> Load {
        LoadSpec::new(addr, path)
            .connections(connections)
            .interval(interval)
            .start()
    }

    /// Requests answered with the expected status so far.
    pub fn answered(&self) -> u64 {
        self.live.answered.load(Ordering::SeqCst)
    }

    /// Failures counted so far (each connection reports its own at its next request).
    pub fn failed(&self) -> u64 {
        self.live.failed.load(Ordering::SeqCst)
    }

    /// Waits until `n` more requests than now have been answered as expected: the load is
    /// demonstrably flowing (before a change is made, and after it). Panics after 30 s.
    pub async fn until_answered(&self, n: u64) {
        let target = self.answered() + n;
        self.until("answers", || self.answered() >= target).await;
    }

    /// Waits until at least `n` failures have been counted in all (a broken variant is
    /// seen). Panics after 30 s.
    pub async fn until_failed(&self, n: u64) {
        self.until("failures", || self.failed() >= n).await;
    }

    async fn until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "the load did not count enough {what} in 30 s: {} answered, {} failed",
                self.answered(),
                self.failed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops sending (requests in flight complete) and adds up every connection's report.
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = LoadReport::default();
        for t in self.tasks {
            total.merge(t.await.expect("load task"));
        }
        total.elapsed = self.started.elapsed();
        total
    }
}

/// Counts shared by a load's connections while it runs.
#[derive(Default)]
struct Live {
    answered: AtomicU64,
    failed: AtomicU64,
}

/// One connection's loop (or, per request, one connection after another).
async fn run_connection(
    spec: &LoadSpec,
    stop: &AtomicBool,
    live: &Live,
    started: Instant,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut sender: Option<Conn> = None;
    let mut tick = tokio::time::interval(spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shared = 0;
    while !stop.load(Ordering::SeqCst) {
        live.failed
            .fetch_add(report.failures() - shared, Ordering::SeqCst);
        shared = report.failures();
        tick.tick().await;
        if let Some(s) = sender.as_mut() {
            // hyper takes the connection back after the last answer on its own task: wait for
            // that (sending earlier fails with "connection was not ready"). An error means the
            // server closed the idle keep-alive connection.
            match tokio::time::timeout(spec.timeout, s.ready()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let what = format!("the server closed an idle keep-alive connection ({e})");
                    report.fail(Failure::Closed, started, what);
                    sender = None;
                    continue;
                }
                Err(_) => {
                    let what = format!(
                        "the connection was not ready again within {:?}",
                        spec.timeout
                    );
                    report.fail(Failure::Timeout, started, what);
                    sender = None;
                    continue;
                }
            }
        }
        let mut s = match sender.take() {
            Some(s) => s,
            None => match open(spec).await {
                Ok(s) => {
                    report.connections += 1;
                    s
                }
                Err((failure, what)) => {
                    report.fail(failure, started, what);
                    continue;
                }
            },
        };
        let mut headers = vec![("host", spec.host.as_str())];
        if spec.per_request {
            headers.push(("connection", "close"));
        }
        let reply = tokio::time::timeout(spec.timeout, send(&mut s, "GET", &spec.path, &headers));
        let reply = match reply.await {
            Err(_) => {
                let what = format!("no answer within {:?}", spec.timeout);
                report.fail(Failure::Timeout, started, what);
                continue;
            }
            Ok(Err(e)) => {
                report.fail(Failure::Reset, started, e);
                continue;
            }
            Ok(Ok(r)) => r,
        };
        if reply.status == spec.expect {
            report.ok += 1;
            live.answered.fetch_add(1, Ordering::SeqCst);
        } else {
            let body: String = reply.body.chars().take(200).collect();
            let what = format!("{}: {body}", reply.status);
            report.fail(Failure::Status, started, what);
        }
        if spec.per_request {
            continue;
        }
        // Counted apart from the status: an answered request on a connection the server then
        // closes is also an unplanned reconnect.
        let close = reply
            .headers
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if close || s.is_closed() {
            let what = match close {
                true => "the answer said `Connection: close`",
                false => "the server closed the connection after the answer",
            };
            report.fail(Failure::Closed, started, what);
        } else {
            sender = Some(s);
        }
    }
    report
}

/// Opens a connection and starts HTTP/1.1 on it.
async fn open(spec: &LoadSpec) -> Result<Conn, (Failure, String)> {
    let connecting = async {
        let stream = (spec.connector)(spec.addr)
            .await
            .map_err(|e| (Failure::Connect, e))?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| (Failure::Connect, format!("handshake: {e}")))?;
        tokio::spawn(conn);
        Ok(sender)
    };
    tokio::time::timeout(spec.timeout, connecting)
        .await
        .unwrap_or_else(|_| {
            let what = format!("no connection within {:?}", spec.timeout);
            Err((Failure::Timeout, what))
        })
}
