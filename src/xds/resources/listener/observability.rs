//! LogService and TracingService on connection managers and TCP proxies: gRPC access loggers
//! and the HCM `tracing.provider` (docs/design.md#logservice, docs/design.md#tracingservice).
//! See
//! https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/access_loggers/grpc/v3/als.proto
//! and
//! https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto#extensions-filters-network-http-connection-manager-v3-httpconnectionmanager-tracing

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{ApiVersion, GrpcService, grpc_service};
use envoy_types::pb::envoy::config::trace::v3::{
    DatadogConfig, OpenTelemetryConfig, ZipkinConfig, tracing, zipkin_config,
};
use envoy_types::pb::envoy::extensions::access_loggers::grpc::v3::{
    CommonGrpcAccessLogConfig, HttpGrpcAccessLogConfig, TcpGrpcAccessLogConfig,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager;
use envoy_types::pb::envoy::r#type::tracing::v3::{CustomTag, custom_tag};
use envoy_types::pb::envoy::r#type::v3::Percent;

use super::super::{boolv, duration_ms, pack, u32v};
use crate::ir;

const HTTP_GRPC: &str = "envoy.access_loggers.http_grpc";
const TCP_GRPC: &str = "envoy.access_loggers.tcp_grpc";

pub(super) fn access_logs(logs: &[ir::GrpcAccessLog]) -> impl Iterator<Item = AccessLog> + '_ {
    logs.iter().map(access_log)
}

fn grpc_service(cluster: &str) -> GrpcService {
    GrpcService {
        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
            grpc_service::EnvoyGrpc {
                cluster_name: cluster.to_string(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn access_log(l: &ir::GrpcAccessLog) -> AccessLog {
    let common = CommonGrpcAccessLogConfig {
        log_name: l.log_name.clone(),
        grpc_service: Some(grpc_service(&l.cluster)),
        transport_api_version: ApiVersion::V3 as i32,
        buffer_flush_interval: Some(duration_ms(l.flush_interval_ms)),
        buffer_size_bytes: Some(u32v(l.buffer_size_bytes)),
        ..Default::default()
    };
    let (name, config) = match l.kind {
        ir::GrpcLogKind::Http => (
            HTTP_GRPC,
            pack(HttpGrpcAccessLogConfig {
                common_config: Some(common),
                additional_request_headers_to_log: l.request_headers.clone(),
                additional_response_headers_to_log: l.response_headers.clone(),
                additional_response_trailers_to_log: l.response_trailers.clone(),
            }),
        ),
        ir::GrpcLogKind::Tcp => (
            TCP_GRPC,
            pack(TcpGrpcAccessLogConfig {
                common_config: Some(common),
            }),
        ),
    };
    AccessLog {
        name: name.to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

pub(super) fn tracing(t: &ir::Tracing) -> http_connection_manager::Tracing {
    let percent = |p: Option<u32>| {
        p.map(|p| Percent {
            value: f64::from(p),
        })
    };
    http_connection_manager::Tracing {
        client_sampling: percent(t.client_sampling),
        random_sampling: percent(t.random_sampling),
        overall_sampling: percent(t.overall_sampling),
        custom_tags: t.custom_tags.iter().map(custom_tag).collect(),
        provider: Some(provider(&t.provider)),
        // An upstream span per request, as Emissary's router `start_child_span` gives.
        spawn_upstream_span: Some(boolv(true)),
        ..Default::default()
    }
}

fn provider(p: &ir::TraceProvider) -> tracing::Http {
    let (name, config) = match p {
        ir::TraceProvider::Zipkin {
            cluster,
            endpoint,
            hostname,
            proto,
            trace_id_128bit,
            shared_span_context,
        } => {
            use zipkin_config::CollectorEndpointVersion as Version;
            let version = if *proto {
                Version::HttpProto
            } else {
                Version::HttpJson
            };
            let config = ZipkinConfig {
                collector_cluster: cluster.clone(),
                collector_endpoint: endpoint.clone(),
                collector_hostname: hostname.clone(),
                collector_endpoint_version: version as i32,
                trace_id_128bit: *trace_id_128bit,
                shared_span_context: shared_span_context.map(boolv),
                ..Default::default()
            };
            ("envoy.tracers.zipkin", pack(config))
        }
        ir::TraceProvider::OpenTelemetry {
            cluster,
            service_name,
        } => (
            "envoy.tracers.opentelemetry",
            pack(OpenTelemetryConfig {
                grpc_service: Some(grpc_service(cluster)),
                service_name: service_name.clone(),
                ..Default::default()
            }),
        ),
        ir::TraceProvider::Datadog {
            cluster,
            service_name,
            hostname,
        } => (
            "envoy.tracers.datadog",
            pack(DatadogConfig {
                collector_cluster: cluster.clone(),
                service_name: service_name.clone(),
                collector_hostname: hostname.clone(),
                ..Default::default()
            }),
        ),
    };
    tracing::Http {
        name: name.to_string(),
        config_type: Some(tracing::http::ConfigType::TypedConfig(config)),
    }
}

fn custom_tag(t: &ir::CustomTag) -> CustomTag {
    use custom_tag::Type;
    let kind = match &t.value {
        ir::TagValue::Literal(value) => Type::Literal(custom_tag::Literal {
            value: value.clone(),
        }),
        ir::TagValue::Environment { name, default } => Type::Environment(custom_tag::Environment {
            name: name.clone(),
            default_value: default.clone().unwrap_or_default(),
        }),
        ir::TagValue::RequestHeader { name, default } => Type::RequestHeader(custom_tag::Header {
            name: name.clone(),
            default_value: default.clone().unwrap_or_default(),
        }),
    };
    CustomTag {
        tag: t.tag.clone(),
        r#type: Some(kind),
    }
}
