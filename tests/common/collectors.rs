//! Real collectors for LogService and TracingService tests, in-process on `127.0.0.1`: a gRPC
//! access-log service (Envoy's `AccessLogService`, from envoy-types, served by tonic), a
//! Zipkin receiver (`POST /api/v2/spans`, JSON v2, served by hyper) and an OpenTelemetry trace
//! receiver (OTLP over gRPC, served by tonic).

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

/// The OTLP trace messages the receiver decodes: the fields of
/// `opentelemetry.proto.collector.trace.v1` and `opentelemetry.proto.trace.v1` the tests read
/// (envoy-types carries only the common messages; unknown fields are skipped by prost).
mod otlp {
    use envoy_types::pb::opentelemetry::proto::common::v1::KeyValue;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceResponse {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
    }
}

/// One span as the OTLP receiver got it.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSpan {
    /// The `service.name` attribute of the span's resource.
    pub service_name: Option<String>,
    pub name: String,
    /// OTLP `SpanKind`: 2 is SERVER, 3 is CLIENT.
    pub kind: i32,
    pub trace_id: Vec<u8>,
    /// String attributes (tags).
    pub attributes: Vec<(String, String)>,
}

impl OtlpSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn string_attributes(
    kvs: &[envoy_types::pb::opentelemetry::proto::common::v1::KeyValue],
) -> Vec<(String, String)> {
    use envoy_types::pb::opentelemetry::proto::common::v1::any_value::Value;
    kvs.iter()
        .filter_map(
            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => Some((kv.key.clone(), s.clone())),
                _ => None,
            },
        )
        .collect()
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`, written by hand on tonic's server
/// building blocks: one unary method, `Export`.
#[derive(Clone, Default)]
struct TraceService {
    spans: Arc<Mutex<Vec<OtlpSpan>>>,
}

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tonic::server::UnaryService<otlp::ExportTraceServiceRequest> for TraceService {
    type Response = otlp::ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<otlp::ExportTraceServiceRequest>) -> Self::Future {
        let mut out = Vec::new();
        for rs in request.into_inner().resource_spans {
            let resource = string_attributes(&rs.resource.unwrap_or_default().attributes);
            let service_name = resource
                .into_iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v);
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                out.push(OtlpSpan {
                    service_name: service_name.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: span.trace_id,
                    attributes: string_attributes(&span.attributes),
                });
            }
        }
        self.spans.lock().unwrap().extend(out);
        std::future::ready(Ok(tonic::Response::new(
            otlp::ExportTraceServiceResponse {},
        )))
    }
}

impl tower::Service<hyper::http::Request<tonic::body::Body>> for TraceService {
    type Response = hyper::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::http::Request<tonic::body::Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            {
                return Ok(
                    tonic::Status::unimplemented(request.uri().path().to_string()).into_http(),
                );
            }
            let codec = tonic_prost::ProstCodec::<
                otlp::ExportTraceServiceResponse,
                otlp::ExportTraceServiceRequest,
            >::default();
            Ok(tonic::server::Grpc::new(codec)
                .unary(service, request)
                .await)
        })
    }
}

/// An OpenTelemetry collector receiving OTLP traces over gRPC; stops when dropped.
pub struct OtlpReceiver {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<OtlpSpan>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind OTLP");
        let addr = listener.local_addr().expect("OTLP address");
        let service = TraceService::default();
        let spans = service.spans.clone();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        OtlpReceiver { addr, spans, task }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<OtlpSpan> {
        self.spans.lock().unwrap().clone()
    }
}
