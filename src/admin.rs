//! legate's admin listener (loopback only unless `admin.allow_non_loopback`): effective
//! settings, the current IR, per-client xDS state, configuration errors, Envoy's status,
//! Prometheus metrics, and `POST /drain` (for an `httpGet`-less preStop hook or an operator).
//!
//! The data comes from other modules through [`Views`]: closures the app wires, so this module
//! depends on none of them. `/metrics` first refreshes supervisor and Envoy RSS/CPU from
//! `sysinfo`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::AdminSettings;
use crate::drain::{Phase, Trigger};
use crate::http::{self, Response};
use crate::metrics::Metrics;

/// A JSON view produced on demand.
pub type Provider = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
/// Envoy's pid, when one runs.
pub type PidProvider = Arc<dyn Fn() -> Option<u32> + Send + Sync>;

const INDEX: &str = "legate admin
GET  /          this list
GET  /settings  effective settings (JSON)
GET  /ir        current IR (JSON)
GET  /xds       per-client xDS state: versions sent and ACKed, last NACK (JSON)
GET  /errors    current configuration errors (JSON)
GET  /envoy     Envoy process status (JSON)
GET  /metrics   Prometheus metrics
POST /drain     start a graceful drain
";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "refusing to serve admin on non-loopback address {0}; set admin.allow_non_loopback to allow it"
    )]
    NonLoopback(SocketAddr),
    #[error("cannot bind the admin listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the admin endpoints show. [`Views::new`] fills every provider with an empty view; the
/// app replaces the ones it has.
#[derive(Clone)]
pub struct Views {
    pub settings: serde_json::Value,
    pub ir: Provider,
    pub xds: Provider,
    /// A JSON list of `api::ResourceError`.
    pub errors: Provider,
    pub envoy: Provider,
    pub envoy_pid: PidProvider,
}

impl Views {
    pub fn new(settings: serde_json::Value) -> Self {
        Views {
            settings,
            ir: Arc::new(|| serde_json::Value::Null),
            xds: Arc::new(|| serde_json::json!({})),
            errors: Arc::new(|| serde_json::json!([])),
            envoy: Arc::new(|| serde_json::Value::Null),
            envoy_pid: Arc::new(|| None),
        }
    }
}

struct State {
    views: Views,
    metrics: Arc<Metrics>,
    trigger: Trigger,
    system: Mutex<System>,
}

/// The bound admin listener.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    /// Binds `settings.address`, refusing a non-loopback one unless allowed.
    pub async fn bind(
        settings: &AdminSettings,
        views: Views,
        metrics: Arc<Metrics>,
        trigger: Trigger,
    ) -> Result<Self, AdminError> {
        let addr = settings.address;
        if !addr.ip().is_loopback() && !settings.allow_non_loopback {
            return Err(AdminError::NonLoopback(addr));
        }
        let bind_error = |source| AdminError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let state = State {
            views,
            metrics,
            trigger,
            system: Mutex::new(System::new()),
        };
        Ok(Server {
            listener,
            addr,
            state: Arc::new(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the task is aborted.
    pub fn spawn(self) -> JoinHandle<()> {
        let Server {
            listener,
            addr,
            state,
        } = self;
        tracing::info!(%addr, "admin listening");
        tokio::spawn(
            http::serve(listener, move |req: http::Request| {
                let state = state.clone();
                async move {
                    let (method, path) = (req.method().clone(), req.uri().path().to_string());
                    match tokio::task::spawn_blocking(move || respond(&state, &method, &path)).await
                    {
                        Ok(response) => response,
                        Err(error) => http::text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("admin handler failed: {error}\n"),
                        ),
                    }
                }
            })
            .instrument(tracing::info_span!("admin")),
        )
    }
}

/// Views are built by closures the app provides and `/metrics` reads `/proc`: run off the
/// async workers (hence `spawn_blocking` above) so a slow view cannot stall the runtime.
fn respond(state: &State, method: &Method, path: &str) -> Response {
    let views = &state.views;
    let get = method == Method::GET || method == Method::HEAD;
    match (path, get) {
        ("/drain", _) if method == Method::POST => drain(&state.trigger),
        ("/drain", _) => http::text(StatusCode::METHOD_NOT_ALLOWED, "use POST /drain\n"),
        ("/", true) => http::text(StatusCode::OK, INDEX),
        ("/settings", true) => http::json(&views.settings),
        ("/ir", true) => http::json(&(views.ir)()),
        ("/xds", true) => http::json(&(views.xds)()),
        ("/errors", true) => http::json(&(views.errors)()),
        ("/envoy", true) => http::json(&(views.envoy)()),
        ("/metrics", true) => {
            refresh_process_metrics(state);
            let mut response = http::text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        ("/" | "/settings" | "/ir" | "/xds" | "/errors" | "/envoy" | "/metrics", false) => {
            http::text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n")
        }
        _ => http::text(
            StatusCode::NOT_FOUND,
            "not found; GET / lists the endpoints\n",
        ),
    }
}

/// Idempotent: a second POST while draining does not escalate to a fast exit (only signals do).
fn drain(trigger: &Trigger) -> Response {
    let phase = trigger.watch().phase();
    if phase != Phase::Running {
        return http::text(StatusCode::ACCEPTED, "drain already in progress\n");
    }
    trigger.start("admin");
    tracing::info!(reason = "admin", "drain requested");
    http::text(StatusCode::ACCEPTED, "drain started\n")
}

fn refresh_process_metrics(state: &State) {
    let own = Pid::from_u32(std::process::id());
    let envoy = (state.views.envoy_pid)().map(Pid::from_u32);
    let pids: Vec<Pid> = std::iter::once(own).chain(envoy).collect();
    let mut system = state.system.lock().unwrap_or_else(|e| e.into_inner());
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&pids),
        true,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    let metrics = &state.metrics;
    for (label, pid) in [("legate", Some(own)), ("envoy", envoy)] {
        let process = pid.and_then(|p| system.process(p));
        let (rss, cpu_ms) = process.map_or((0, 0), |p| (p.memory(), p.accumulated_cpu_time()));
        metrics.process_rss_bytes.set(label, rss as f64);
        metrics
            .process_cpu_seconds
            .set(label, cpu_ms as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain;
    use crate::http::request;

    fn loopback() -> AdminSettings {
        AdminSettings {
            address: "127.0.0.1:0".parse().unwrap(),
            allow_non_loopback: false,
        }
    }

    async fn serve(views: Views) -> (SocketAddr, Arc<Metrics>, drain::Watch) {
        let metrics = Arc::new(Metrics::default());
        let (trigger, watch) = drain::channel();
        let server = Server::bind(&loopback(), views, metrics.clone(), trigger)
            .await
            .unwrap();
        let addr = server.local_addr();
        server.spawn();
        (addr, metrics, watch)
    }

    fn metric(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing from\n{text}"));
        line[series.len()..].trim().parse().unwrap()
    }

    #[tokio::test]
    async fn metrics_include_supervisor_and_envoy_resources() {
        // a child process stands in for Envoy: any pid the provider returns is measured
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let child_pid = child.id();
        let mut views = Views::new(serde_json::json!({}));
        views.envoy_pid = Arc::new(move || Some(child_pid));
        let (addr, metrics, _) = serve(views).await;
        metrics.reconfigurations.inc();
        let (status, text) = request(addr, "GET", "/metrics").await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(status, 200);
        let own = metric(
            &text,
            "legate_process_resident_memory_bytes{process=\"legate\"}",
        );
        assert!(own > 1_000_000.0, "supervisor RSS {own}");
        let envoy = metric(
            &text,
            "legate_process_resident_memory_bytes{process=\"envoy\"}",
        );
        assert!(envoy > 0.0, "envoy RSS {envoy}");
        assert!(
            metric(
                &text,
                "legate_process_cpu_seconds_total{process=\"legate\"}"
            ) >= 0.0
        );
        assert_eq!(metric(&text, "legate_reconfigurations_total"), 1.0);
    }

    #[tokio::test]
    async fn views_are_served_as_json() {
        let mut views = Views::new(serde_json::json!({"drain": {"min_ms": 5}}));
        views.ir = Arc::new(|| serde_json::json!({"listeners": []}));
        views.xds = Arc::new(|| serde_json::json!({"clients": {"envoy-1": {"cds": "v1"}}}));
        views.errors = Arc::new(|| serde_json::json!([{"message": "bad mapping"}]));
        views.envoy = Arc::new(|| serde_json::json!({"state": "LIVE"}));
        let (addr, _, _) = serve(views).await;
        let json = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
        let (status, body) = request(addr, "GET", "/settings").await;
        assert_eq!(
            (status, json(body)["drain"]["min_ms"].as_u64()),
            (200, Some(5))
        );
        assert_eq!(
            json(request(addr, "GET", "/ir").await.1)["listeners"],
            serde_json::json!([])
        );
        assert_eq!(
            json(request(addr, "GET", "/xds").await.1)["clients"]["envoy-1"]["cds"],
            "v1"
        );
        assert_eq!(
            json(request(addr, "GET", "/errors").await.1)[0]["message"],
            "bad mapping"
        );
        assert_eq!(
            json(request(addr, "GET", "/envoy").await.1)["state"],
            "LIVE"
        );
        let (status, index) = request(addr, "GET", "/").await;
        assert_eq!(status, 200);
        assert!(
            index.contains("POST /drain") && index.contains("/metrics"),
            "{index}"
        );
        assert_eq!(request(addr, "GET", "/nope").await.0, 404);
        assert_eq!(request(addr, "POST", "/settings").await.0, 405);
    }

    #[tokio::test]
    async fn post_drain_starts_a_graceful_drain_once() {
        let (addr, _, mut watch) = serve(Views::new(serde_json::Value::Null)).await;
        assert_eq!(request(addr, "GET", "/drain").await.0, 405);
        assert_eq!(watch.phase(), Phase::Running);
        assert_eq!(
            request(addr, "POST", "/drain").await,
            (202, "drain started\n".into())
        );
        watch.started().await;
        assert_eq!((watch.phase(), watch.reason()), (Phase::Draining, "admin"));
        // a repeated POST does not escalate to a fast exit
        assert_eq!(request(addr, "POST", "/drain").await.0, 202);
        assert_eq!(watch.phase(), Phase::Draining);
    }

    #[tokio::test]
    async fn refuses_non_loopback_without_the_flag() {
        let (trigger, _) = drain::channel();
        let open = AdminSettings {
            address: "0.0.0.0:0".parse().unwrap(),
            allow_non_loopback: false,
        };
        let views = Views::new(serde_json::Value::Null);
        let metrics = Arc::new(Metrics::default());
        let refused = Server::bind(&open, views.clone(), metrics.clone(), trigger.clone()).await;
        assert!(matches!(refused, Err(AdminError::NonLoopback(_))));
        let allowed = AdminSettings {
            allow_non_loopback: true,
            ..open
        };
        let server = Server::bind(&allowed, views, metrics, trigger)
            .await
            .unwrap();
        assert!(server.local_addr().ip().is_unspecified());
    }
}
