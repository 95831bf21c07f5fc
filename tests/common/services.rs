//! Real doubles of the external services legate configures Envoy to call, each one in-process
//! on `127.0.0.1` (port 0, listener kept): a gRPC ext_authz server and an HTTP auth server
//! (AuthService), and a gRPC rate-limit service (RateLimitService). Each records what it was
//! asked, so a test can assert what Envoy sent.
//!
//! The auth doubles decide per request from the client header `x-auth` (Envoy forwards it):
//! absent or `allow` → allow and add `x-auth-user: alice` upstream; `deny` → 401 with
//! `www-authenticate` and a body; `slow` → answer after 2 s; `error` → fail (HTTP 500 / gRPC
//! INTERNAL). The rate-limit double answers OVER_LIMIT when a descriptor entry has the value
//! `blocked`, OK otherwise.

// Shared by several test binaries; each uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse, check_response,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{
    RateLimitRequest, RateLimitResponse, rate_limit_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// How long `x-auth: slow` makes the auth doubles wait.
pub const SLOW: Duration = Duration::from_secs(2);

/// One check request as the auth double saw it.
#[derive(Debug, Clone, Default)]
pub struct Check {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// gRPC only: `attributes.context_extensions`.
    pub context_extensions: BTreeMap<String, String>,
}

/// What the double was asked, in order.
#[derive(Debug, Clone, Default)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Log<T> {
    fn push(&self, t: T) {
        self.0.lock().unwrap().push(t);
    }

    pub fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn last(&self) -> Option<T> {
        self.0.lock().unwrap().last().cloned()
    }
}

/// A running double: its address; dropping it stops it.
pub struct Running<T> {
    pub addr: SocketAddr,
    pub seen: Log<T>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> Running<T> {
    /// `127.0.0.1:<port>`, as an AuthService or RateLimitService `service` value.
    pub fn service(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind double");
    let addr = listener.local_addr().expect("double address");
    (listener, addr)
}

// ------------------------------------------------------------------------- gRPC ext_authz

#[derive(Clone)]
struct GrpcAuth(Log<Check>);

#[tonic::async_trait]
impl Authorization for GrpcAuth {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let req = request.into_inner();
        let attrs = req.attributes.unwrap_or_default();
        let http = attrs.request.and_then(|r| r.http).unwrap_or_default();
        let headers: BTreeMap<String, String> = http.headers.into_iter().collect();
        let mode = headers.get("x-auth").cloned().unwrap_or_default();
        self.0.push(Check {
            method: http.method,
            path: http.path,
            headers,
            body: http.body,
            context_extensions: attrs.context_extensions.into_iter().collect(),
        });
        let header = |k: &str, v: &str| HeaderValueOption {
            header: Some(HeaderValue {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        match mode.as_str() {
            "slow" => tokio::time::sleep(SLOW).await,
            "error" => return Err(tonic::Status::internal("the auth double fails")),
            "deny" => {
                return Ok(tonic::Response::new(CheckResponse {
                    status: Some(RpcStatus {
                        code: 7, // PERMISSION_DENIED
                        ..Default::default()
                    }),
                    http_response: Some(check_response::HttpResponse::DeniedResponse(
                        DeniedHttpResponse {
                            status: Some(HttpStatus { code: 401 }),
                            headers: vec![header("www-authenticate", "Bearer realm=grpc")],
                            body: "denied by the grpc double".into(),
                        },
                    )),
                    ..Default::default()
                }));
            }
            _ => {}
        }
        Ok(tonic::Response::new(CheckResponse {
            status: Some(RpcStatus::default()),
            http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![header("x-auth-user", "alice")],
                ..Default::default()
            })),
            ..Default::default()
        }))
    }
}

/// A tonic `envoy.service.auth.v3.Authorization` server.
pub async fn grpc_auth() -> Running<Check> {
    let (listener, addr) = bind().await;
    let seen = Log::default();
    let svc = AuthorizationServer::new(GrpcAuth(seen.clone()));
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    Running { addr, seen, task }
}

// ------------------------------------------------------------------------- HTTP auth

/// An HTTP/1.1 auth server (Envoy's raw-HTTP ext_authz protocol): 200 allows (its allowed
/// headers go upstream), anything else is returned to the client.
pub async fn http_auth() -> Running<Check> {
    let (listener, addr) = bind().await;
    let seen: Log<Check> = Log::default();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| http_check(log.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Running { addr, seen, task }
}

async fn http_check(
    log: Log<Check>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let method = req.method().as_str().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let mode = headers.get("x-auth").cloned().unwrap_or_default();
    log.push(Check {
        method,
        path,
        headers,
        body,
        context_extensions: BTreeMap::new(),
    });
    let reply = |status: u16| Response::builder().status(status);
    let resp = match mode.as_str() {
        "deny" => reply(401)
            .header("www-authenticate", "Basic realm=http")
            .header("x-internal-secret", "not for clients")
            .body(Full::new(Bytes::from("denied by the http double"))),
        "error" => reply(500).body(Full::new(Bytes::from("the auth double fails"))),
        other => {
            if other == "slow" {
                tokio::time::sleep(SLOW).await;
            }
            reply(200)
                .header("x-auth-user", "alice")
                .header("x-internal-secret", "not for upstream")
                .body(Full::new(Bytes::new()))
        }
    };
    Ok(resp.expect("auth response"))
}

// ------------------------------------------------------------------------- rate limit

/// One `ShouldRateLimit` call: the domain, and each descriptor's entries in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limit {
    pub domain: String,
    pub descriptors: Vec<Vec<(String, String)>>,
}

#[derive(Clone)]
struct Rls(Log<Limit>);

#[tonic::async_trait]
impl RateLimitService for Rls {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let req = request.into_inner();
        let descriptors: Vec<Vec<(String, String)>> = req
            .descriptors
            .iter()
            .map(|d| {
                d.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect()
            })
            .collect();
        let over = descriptors.iter().flatten().any(|(_, v)| v == "blocked");
        self.0.push(Limit {
            domain: req.domain,
            descriptors,
        });
        let code = if over {
            rate_limit_response::Code::OverLimit
        } else {
            rate_limit_response::Code::Ok
        };
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: code as i32,
            ..Default::default()
        }))
    }
}

/// A tonic `envoy.service.ratelimit.v3.RateLimitService` server.
pub async fn rate_limit() -> Running<Limit> {
    let (listener, addr) = bind().await;
    let seen = Log::default();
    let svc = RateLimitServiceServer::new(Rls(seen.clone()));
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    Running { addr, seen, task }
}
