//! What LogService and TracingService put on connection managers and TCP proxies: gRPC access
//! loggers and the tracer (docs/design.md#logservice, docs/design.md#tracingservice).

use serde::Serialize;

/// A gRPC access logger (Envoy's `envoy.access_loggers.http_grpc` or `tcp_grpc`) streaming to
/// a collector cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GrpcAccessLog {
    pub kind: GrpcLogKind,
    /// `identifier.log_name` of the stream the collector receives.
    pub log_name: String,
    /// The collector's cluster (HTTP/2).
    pub cluster: String,
    pub flush_interval_ms: u64,
    pub buffer_size_bytes: u32,
    /// Extra headers on each HTTP entry (the `http` kind only).
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    pub response_trailers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpcLogKind {
    /// One `HTTPAccessLogEntry` per request.
    Http,
    /// One `TCPAccessLogEntry` per request (HTTP) or connection (TCP proxy).
    Tcp,
}

/// Tracing on an HTTP connection manager, with its provider (so a change applies without an
/// Envoy restart).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tracing {
    pub provider: TraceProvider,
    /// Percentages, 0–100; `None` keeps Envoy's default (100).
    pub client_sampling: Option<u32>,
    pub random_sampling: Option<u32>,
    pub overall_sampling: Option<u32>,
    pub custom_tags: Vec<CustomTag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceProvider {
    Zipkin {
        cluster: String,
        /// Path spans are posted to.
        endpoint: String,
        /// `Host` header of those posts.
        hostname: String,
        /// JSON (`HTTP_JSON`) or protobuf (`HTTP_PROTO`).
        proto: bool,
        trace_id_128bit: bool,
        /// `None` keeps Envoy's default (shared).
        shared_span_context: Option<bool>,
    },
    OpenTelemetry {
        cluster: String,
        service_name: String,
    },
    Datadog {
        cluster: String,
        service_name: String,
        hostname: String,
    },
}

/// A tag added to every span.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CustomTag {
    pub tag: String,
    pub value: TagValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagValue {
    Literal(String),
    Environment {
        name: String,
        default: Option<String>,
    },
    RequestHeader {
        name: String,
        default: Option<String>,
    },
}
