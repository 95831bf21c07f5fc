//! The probe listener (default `0.0.0.0:8877`): `/ready`, `/live` and their Emissary aliases,
//! nothing else.
//!
//! `/ready` (alias `/ambassador/v0/check_ready`) is 200 when no readiness condition is pending,
//! else 503 listing the pending ones, one per line. `/live` (alias
//! `/ambassador/v0/check_alive`) is 200 while the supervisor's event loop runs, proven by a
//! [`Heartbeat`] a task ticks every second: it never depends on config validity, Envoy or the
//! API server. Handlers only read in-memory state, so a probe never waits on anything slow
//! (istio #18046).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::http::{self, Response};
use crate::readiness::Ready;

/// A heartbeat older than this makes `/live` fail.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot bind the probe listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Proof that the event loop runs: the time of the last tick.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
    max_age: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::with_max_age(DEFAULT_MAX_AGE)
    }
}

impl Heartbeat {
    /// A heartbeat that has just beaten.
    pub fn with_max_age(max_age: Duration) -> Self {
        Heartbeat {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            max_age,
        }
    }

    pub fn beat(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    pub fn is_alive(&self) -> bool {
        self.age() <= self.max_age
    }

    /// Ticks every second on the current runtime until aborted.
    pub fn spawn(&self) -> JoinHandle<()> {
        let beat = self.clone();
        tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(TICK);
                loop {
                    tick.tick().await;
                    beat.beat();
                }
            }
            .instrument(tracing::info_span!("heartbeat")),
        )
    }
}

/// The bound probe listener.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    ready: Ready,
    heartbeat: Heartbeat,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(
        addr: SocketAddr,
        ready: Ready,
        heartbeat: Heartbeat,
    ) -> Result<Self, ProbeError> {
        let bind_error = |source| ProbeError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Server {
            listener,
            addr,
            ready,
            heartbeat,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the task is aborted. Probes keep answering during a drain: that is when
    /// `/ready` must say 503.
    pub fn spawn(self) -> JoinHandle<()> {
        let Server {
            listener,
            addr,
            ready,
            heartbeat,
        } = self;
        tracing::info!(%addr, "probe listening");
        tokio::spawn(
            http::serve(listener, move |req: http::Request| {
                let response = respond(req.method(), req.uri().path(), &ready, &heartbeat);
                std::future::ready(response)
            })
            .instrument(tracing::info_span!("probe")),
        )
    }
}

/// The answer to one probe request.
pub fn respond(method: &Method, path: &str, ready: &Ready, heartbeat: &Heartbeat) -> Response {
    let known = matches!(
        path,
        "/ready" | "/ambassador/v0/check_ready" | "/live" | "/ambassador/v0/check_alive"
    );
    if !known {
        return http::text(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET && method != Method::HEAD {
        return http::text(StatusCode::METHOD_NOT_ALLOWED, "use GET or HEAD\n");
    }
    if path.ends_with("ready") {
        let pending = ready.pending();
        if pending.is_empty() {
            http::text(StatusCode::OK, "ready\n")
        } else {
            let mut body = pending.join("\n");
            body.push('\n');
            http::text(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    } else if heartbeat.is_alive() {
        http::text(StatusCode::OK, "alive\n")
    } else {
        let age = heartbeat.age().as_millis();
        http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("event loop stalled: last heartbeat {age} ms ago\n"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request;

    async fn serve(ready: &Ready, heartbeat: Heartbeat) -> SocketAddr {
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), ready.clone(), heartbeat)
            .await
            .unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        server.spawn();
        addr
    }

    #[tokio::test]
    async fn ready_lists_pending_guards_until_released() {
        let ready = Ready::new();
        let source = ready.guard("source synced");
        let envoy = ready.guard("envoy live");
        let addr = serve(&ready, Heartbeat::default()).await;
        for path in ["/ready", "/ambassador/v0/check_ready"] {
            let (status, body) = request(addr, "GET", path).await;
            assert_eq!(status, 503);
            assert_eq!(body, "envoy live\nsource synced\n");
        }
        source.release();
        assert_eq!(
            request(addr, "GET", "/ready").await,
            (503, "envoy live\n".into())
        );
        envoy.release();
        for path in ["/ready", "/ambassador/v0/check_ready"] {
            assert_eq!(request(addr, "GET", path).await, (200, "ready\n".into()));
        }
        let (status, body) = request(addr, "HEAD", "/ready").await;
        assert_eq!((status, body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn live_follows_the_heartbeat_not_readiness() {
        let ready = Ready::new();
        let _blocked = ready.guard("envoy live");
        let heartbeat = Heartbeat::default();
        let beat = heartbeat.spawn();
        let addr = serve(&ready, heartbeat).await;
        for path in ["/live", "/ambassador/v0/check_alive"] {
            assert_eq!(request(addr, "GET", path).await, (200, "alive\n".into()));
        }
        assert_eq!(request(addr, "HEAD", "/live").await.0, 200);
        beat.abort();
    }

    #[tokio::test]
    async fn stale_heartbeat_fails_live() {
        let heartbeat = Heartbeat::with_max_age(Duration::from_millis(20));
        heartbeat.beat();
        assert!(heartbeat.is_alive());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!heartbeat.is_alive());
        let addr = serve(&Ready::new(), heartbeat.clone()).await;
        let (status, body) = request(addr, "GET", "/live").await;
        assert_eq!(status, 503);
        assert!(body.contains("stalled"), "{body}");
        heartbeat.beat();
        assert_eq!(request(addr, "GET", "/live").await.0, 200);
    }

    #[tokio::test]
    async fn nothing_else_is_served() {
        let addr = serve(&Ready::new(), Heartbeat::default()).await;
        for path in ["/", "/metrics", "/settings", "/ready/x", "/drain"] {
            assert_eq!(request(addr, "GET", path).await.0, 404, "{path}");
        }
        assert_eq!(request(addr, "POST", "/ready").await.0, 405);
    }
}
