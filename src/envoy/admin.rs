//! A small HTTP/1 client for Envoy's admin API, over its unix socket or loopback TCP.
//!
//! One connection per call (admin traffic is a few requests a second) and every call bounded by
//! a timeout, so a wedged Envoy main thread can never stall the supervisor. Mutating endpoints
//! are POSTed: Envoy answers GET with 405 (docs/design.md#admin-api).

use std::time::Duration;
use tracing::Instrument;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::{Address, State};

/// Default bound on one admin call, connect included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Selects every listener `downstream_cx_active` gauge; the data-plane filter is applied here
/// because address-named listeners contain dots (docs/design.md#admin-api).
const CX_ACTIVE_FILTER: &str = r"^listener\..*downstream_cx_active$";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("envoy admin at {target} is unreachable")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("envoy admin {path} failed")]
    Http {
        path: String,
        #[source]
        source: hyper::Error,
    },
    #[error("envoy admin {path} did not answer within {timeout:?}")]
    Timeout { path: String, timeout: Duration },
    #[error("envoy admin {path} answered {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("envoy admin {path} answered malformed JSON")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("envoy admin {path}: {detail}")]
    Unexpected { path: String, detail: String },
}

/// The parts of `/server_info` legate uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    pub state: State,
    pub version: String,
    /// Since this Envoy process started (`uptime_current_epoch`).
    pub uptime: Duration,
    /// Worker threads in use.
    pub concurrency: Option<u64>,
    pub drain_time: Option<Duration>,
    /// `Gradual` or `Immediate`.
    pub drain_strategy: Option<String>,
}

#[derive(Deserialize)]
struct RawServerInfo {
    state: String,
    version: String,
    #[serde(default)]
    uptime_current_epoch: Option<String>,
    #[serde(default)]
    command_line_options: Option<RawOptions>,
}

#[derive(Deserialize)]
struct RawOptions {
    #[serde(default)]
    concurrency: Option<u64>,
    #[serde(default)]
    drain_time: Option<String>,
    #[serde(default)]
    drain_strategy: Option<String>,
}

/// An admin client for one Envoy; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    target: Address,
    timeout: Duration,
}

impl Client {
    pub fn new(target: Address) -> Client {
        Client {
            target,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn target(&self) -> &Address {
        &self.target
    }

    /// `GET /ready`: `true` on 200 (LIVE), `false` on 503 (any other state).
    pub async fn ready(&self) -> Result<bool, AdminError> {
        let (status, body) = self.call(Method::GET, "/ready").await?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            other => Err(status_error("/ready", other, &body)),
        }
    }

    /// `GET /server_info`.
    pub async fn server_info(&self) -> Result<ServerInfo, AdminError> {
        let path = "/server_info";
        let raw: RawServerInfo = self.json(path).await?;
        let state = State::from_envoy(&raw.state).ok_or_else(|| AdminError::Unexpected {
            path: path.into(),
            detail: format!("unknown server state {:?}", raw.state),
        })?;
        let opts = raw.command_line_options;
        Ok(ServerInfo {
            state,
            version: raw.version,
            uptime: raw
                .uptime_current_epoch
                .as_deref()
                .and_then(parse_duration)
                .unwrap_or_default(),
            concurrency: opts.as_ref().and_then(|o| o.concurrency),
            drain_time: opts
                .as_ref()
                .and_then(|o| o.drain_time.as_deref())
                .and_then(parse_duration),
            drain_strategy: opts.and_then(|o| o.drain_strategy),
        })
    }

    /// `POST /drain_listeners[?graceful][&skip_exit]`. In Envoy 1.40 `graceful&skip_exit` keeps
    /// the listeners accepting while every HTTP response carries `Connection: close`; a plain
    /// call stops them at once (docs/design.md#drain).
    pub async fn drain_listeners(&self, graceful: bool, skip_exit: bool) -> Result<(), AdminError> {
        let mut params = vec![];
        if graceful {
            params.push("graceful");
        }
        if skip_exit {
            params.push("skip_exit");
        }
        let path = if params.is_empty() {
            "/drain_listeners".to_string()
        } else {
            format!("/drain_listeners?{}", params.join("&"))
        };
        self.post(&path).await
    }

    /// `POST /healthcheck/fail`: `/ready` turns 503 and responses carry `Connection: close`.
    pub async fn healthcheck_fail(&self) -> Result<(), AdminError> {
        self.post("/healthcheck/fail").await
    }

    /// `POST /healthcheck/ok`: reverts `healthcheck_fail`.
    pub async fn healthcheck_ok(&self) -> Result<(), AdminError> {
        self.post("/healthcheck/ok").await
    }

    /// `POST /quitquitquit`: Envoy exits 0 right away, without draining.
    pub async fn quitquitquit(&self) -> Result<(), AdminError> {
        self.post("/quitquitquit").await
    }

    /// Active downstream connections over data-plane listeners only: the sum of
    /// `listener.<name>.downstream_cx_active`, excluding admin, per-thread series and the
    /// listeners named in `exclude` (their `stat_prefix`).
    pub async fn downstream_cx_active(&self, exclude: &[String]) -> Result<u64, AdminError> {
        let path = format!(
            "/stats?format=json&filter={}",
            percent_encode(CX_ACTIVE_FILTER)
        );
        let stats: serde_json::Value = self.json(&path).await?;
        sum_data_plane(&stats, exclude).map_err(|detail| AdminError::Unexpected { path, detail })
    }

    /// `GET path`, the body as text (e.g. `/stats/prometheus`); any status but 200 is an error.
    pub async fn text(&self, path: &str) -> Result<String, AdminError> {
        let (status, body) = self.call(Method::GET, path).await?;
        if status != StatusCode::OK {
            return Err(status_error(path, status, &body));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn post(&self, path: &str) -> Result<(), AdminError> {
        let (status, body) = self.call(Method::POST, path).await?;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(status_error(path, status, &body))
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, AdminError> {
        let (status, body) = self.call(Method::GET, path).await?;
        if status != StatusCode::OK {
            return Err(status_error(path, status, &body));
        }
        serde_json::from_slice(&body).map_err(|source| AdminError::Json {
            path: path.to_string(),
            source,
        })
    }

    async fn call(&self, method: Method, path: &str) -> Result<(StatusCode, Bytes), AdminError> {
        tokio::time::timeout(self.timeout, self.call_unbounded(method, path))
            .await
            .map_err(|_| AdminError::Timeout {
                path: path.to_string(),
                timeout: self.timeout,
            })?
    }

    async fn call_unbounded(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes), AdminError> {
        let connect = |source| AdminError::Connect {
            target: self.target.to_string(),
            source,
        };
        let http = |source| AdminError::Http {
            path: path.to_string(),
            source,
        };
        let mut sender = match &self.target {
            Address::Unix(p) => {
                let stream = tokio::net::UnixStream::connect(p).await.map_err(connect)?;
                handshake(stream).await.map_err(http)?
            }
            Address::Tcp(a) => {
                let stream = tokio::net::TcpStream::connect(a).await.map_err(connect)?;
                handshake(stream).await.map_err(http)?
            }
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .map_err(|e| AdminError::Unexpected {
                path: path.to_string(),
                detail: e.to_string(),
            })?;
        let resp = sender.send_request(req).await.map_err(http)?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(http)?.to_bytes();
        Ok((status, body))
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn handshake<S>(stream: S) -> Result<Sender, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends when the sender is dropped or Envoy closes the connection.
    tokio::spawn(
        async move {
            if let Err(error) = conn.await {
                tracing::trace!(%error, "envoy admin connection ended");
            }
        }
        .in_current_span(),
    );
    Ok(sender)
}

fn status_error(path: &str, status: StatusCode, body: &[u8]) -> AdminError {
    let body = String::from_utf8_lossy(body);
    AdminError::Status {
        path: path.to_string(),
        status: status.as_u16(),
        body: body.trim().chars().take(200).collect(),
    }
}

/// Sums data-plane `listener.<name>.downstream_cx_active` gauges in a `/stats?format=json`
/// answer. Skips admin, `envoy_internal*` listeners, `worker_N` / `main_thread` series and the
/// names in `exclude`.
pub fn sum_data_plane(stats: &serde_json::Value, exclude: &[String]) -> Result<u64, String> {
    let list = stats
        .get("stats")
        .and_then(|s| s.as_array())
        .ok_or("no `stats` array")?;
    let mut sum = 0u64;
    for stat in list {
        let Some(name) = stat.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let Some(listener) = name
            .strip_prefix("listener.")
            .and_then(|n| n.strip_suffix(".downstream_cx_active"))
        else {
            continue;
        };
        let last = listener.rsplit('.').next().unwrap_or(listener);
        let per_thread = last == "main_thread"
            || last
                .strip_prefix("worker_")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if per_thread
            || listener == "admin"
            || listener.starts_with("envoy_internal")
            || exclude.iter().any(|e| e == listener)
        {
            continue;
        }
        let value = stat
            .get("value")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| format!("{name} has no integer value"))?;
        sum += value;
    }
    Ok(sum)
}

/// Parses a protobuf-JSON duration such as `12s` or `1.500s`.
fn parse_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Percent-encodes everything outside RFC 3986's unreserved set.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sums_only_data_plane_listeners() {
        let stats = json!({"stats": [
            {"name": "listener.admin.downstream_cx_active", "value": 3},
            {"name": "listener.admin.main_thread.downstream_cx_active", "value": 3},
            {"name": "listener.ingress_http.downstream_cx_active", "value": 5},
            {"name": "listener.ingress_http.worker_0.downstream_cx_active", "value": 2},
            {"name": "listener.ingress_http.worker_1.downstream_cx_active", "value": 3},
            {"name": "listener.127.0.0.1_10000.downstream_cx_active", "value": 7},
            {"name": "listener.127.0.0.1_10000.worker_12.downstream_cx_active", "value": 7},
            {"name": "listener.probe.downstream_cx_active", "value": 11},
            {"name": "listener.envoy_internal_x.downstream_cx_active", "value": 13},
            {"name": "http.ingress_http.downstream_cx_active", "value": 17},
        ]});
        assert_eq!(sum_data_plane(&stats, &["probe".to_string()]), Ok(12));
        assert_eq!(sum_data_plane(&stats, &[]), Ok(23));
        assert!(sum_data_plane(&json!({}), &[]).is_err());
    }

    #[test]
    fn durations_and_encoding() {
        assert_eq!(parse_duration("12s"), Some(Duration::from_secs(12)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("12"), None);
        assert_eq!(percent_encode(r"^a\.b$"), "%5Ea%5C.b%24");
    }

    #[tokio::test]
    async fn unreachable_admin_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(Address::Unix(dir.path().join("none.sock")));
        let err = client.ready().await.unwrap_err();
        assert!(matches!(err, AdminError::Connect { .. }), "{err}");
    }
}
