//! Real collectors for LogService and TracingService tests, in-process on `127.0.0.1`: a gRPC
//! access-log service (Envoy's `AccessLogService`, from envoy-types, served by tonic) and a
//! Zipkin receiver (`POST /api/v2/spans`, JSON v2, served by hyper).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::{
    AccessLogService, AccessLogServiceServer,
};
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use envoy_types::pb::envoy::service::accesslog::v3::{
    StreamAccessLogsMessage, StreamAccessLogsResponse,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

/// One access-log entry as the collector received it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// `identifier.log_name` of the stream it came on.
    pub log_name: String,
    /// `http` or `tcp`.
    pub kind: &'static str,
    /// HTTP entries: the request path; TCP entries: empty.
    pub path: String,
    pub status: Option<u32>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Als {
    entries: Arc<Mutex<Vec<LogEntry>>>,
}

#[tonic::async_trait]
impl AccessLogService for Als {
    async fn stream_access_logs(
        &self,
        request: tonic::Request<tonic::Streaming<StreamAccessLogsMessage>>,
    ) -> Result<tonic::Response<StreamAccessLogsResponse>, tonic::Status> {
        let mut stream = request.into_inner();
        let mut log_name = String::new();
        while let Some(message) = stream.next().await {
            let message = message?;
            // Only the first message of a stream carries the identifier.
            if let Some(id) = message.identifier {
                log_name = id.log_name;
            }
            let mut out = Vec::new();
            match message.log_entries {
                Some(LogEntries::HttpLogs(logs)) => {
                    for e in logs.log_entry {
                        let request = e.request.unwrap_or_default();
                        let response = e.response.unwrap_or_default();
                        let sorted = |m: std::collections::HashMap<String, String>| {
                            let mut v: Vec<(String, String)> = m.into_iter().collect();
                            v.sort();
                            v
                        };
                        out.push(LogEntry {
                            log_name: log_name.clone(),
                            kind: "http",
                            path: request.path,
                            status: response.response_code.map(|c| c.value),
                            request_headers: sorted(request.request_headers),
                            response_headers: sorted(response.response_headers),
                        });
                    }
                }
                Some(LogEntries::TcpLogs(logs)) => {
                    for _ in logs.log_entry {
                        out.push(LogEntry {
                            log_name: log_name.clone(),
                            kind: "tcp",
                            path: String::new(),
                            status: None,
                            request_headers: Vec::new(),
                            response_headers: Vec::new(),
                        });
                    }
                }
                None => {}
            }
            self.entries.lock().unwrap().extend(out);
        }
        Ok(tonic::Response::new(StreamAccessLogsResponse {}))
    }
}

/// A gRPC access-log collector; stops when dropped.
pub struct AlsCollector {
    pub addr: SocketAddr,
    entries: Arc<Mutex<Vec<LogEntry>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AlsCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AlsCollector {
    pub async fn start() -> AlsCollector {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ALS");
        let addr = listener.local_addr().expect("ALS address");
        let als = Als::default();
        let entries = als.entries.clone();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AccessLogServiceServer::new(als))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        AlsCollector {
            addr,
            entries,
            task,
        }
    }

    pub fn entries(&self) -> Vec<LogEntry> {
        self.entries.lock().unwrap().clone()
    }
}

/// One POST the Zipkin receiver got.
#[derive(Debug, Clone)]
pub struct SpanPost {
    pub path: String,
    pub host: String,
    /// The spans (Zipkin v2 JSON objects).
    pub spans: Vec<serde_json::Value>,
}

/// A Zipkin collector for `HTTP_JSON` (v2) posts; stops when dropped.
pub struct ZipkinReceiver {
    pub addr: SocketAddr,
    posts: Arc<Mutex<Vec<SpanPost>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ZipkinReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ZipkinReceiver {
    pub async fn start() -> ZipkinReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind zipkin");
        let addr = listener.local_addr().expect("zipkin address");
        let posts: Arc<Mutex<Vec<SpanPost>>> = Arc::default();
        let shared = posts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let posts = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let posts = posts.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let host = req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let body = req.into_body().collect().await?.to_bytes();
                            let spans: Vec<serde_json::Value> =
                                serde_json::from_slice(&body).unwrap_or_default();
                            posts.lock().unwrap().push(SpanPost { path, host, spans });
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(202)
                                    .body(Full::new(Bytes::new()))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ZipkinReceiver { addr, posts, task }
    }

    pub fn posts(&self) -> Vec<SpanPost> {
        self.posts.lock().unwrap().clone()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        self.posts().into_iter().flat_map(|p| p.spans).collect()
    }
}
