//! LDS: listeners, their filter chains, and the HTTP connection manager or TCP proxy each chain
//! runs. Routes come by RDS and certificates by SDS, so this proto changes only when ports,
//! chains or TLS settings change.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions,
    SocketAddress, SubstitutionFormatString, address, data_source, http_protocol_options,
    http1_protocol_options, socket_address, substitution_format_string,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::FileAccessLog;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager,
    http_connection_manager::ForwardClientCertDetails, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, common_tls_context,
};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value};
use prost::{Message, Name};

use super::{ads, boolv, duration_ms, pack, sds, services, tls_params, tls_transport_socket, u32v};
use crate::ir;

// LogService / TracingService.
mod observability;
mod rbac;
#[cfg(test)]
mod tests;

pub(super) const HCM: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
pub(super) const CORS: &str = "envoy.filters.http.cors";
const ROUTER: &str = "envoy.filters.http.router";
const RBAC: &str = "envoy.filters.http.rbac";

/// The LDS resource for one IR listener.
pub fn listener(l: &ir::Listener) -> Listener {
    Listener {
        name: l.name.clone(),
        address: Some(socket_address(&l.address, l.port)),
        // The drain counts `listener.<stat_prefix>.downstream_cx_active`.
        stat_prefix: l.stat_prefix.clone(),
        listener_filters: listener_filters(l),
        per_connection_buffer_limit_bytes: l.per_connection_buffer_limit_bytes.map(u32v),
        filter_chains: l.filter_chains.iter().map(filter_chain).collect(),
        ..Default::default()
    }
}

pub(super) fn socket_address(address: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

/// PROXY protocol must run first: the TLS inspector would otherwise read the PROXY header as a
/// ClientHello.
fn listener_filters(l: &ir::Listener) -> Vec<ListenerFilter> {
    let typed = |name: &str, config: Any| ListenerFilter {
        name: name.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let mut filters = Vec::new();
    if l.proxy_protocol {
        filters.push(typed(
            "envoy.filters.listener.proxy_protocol",
            pack(ProxyProtocol::default()),
        ));
    }
    if l.needs_tls_inspector() {
        filters.push(typed(
            "envoy.filters.listener.tls_inspector",
            pack(TlsInspector::default()),
        ));
    }
    filters
}

fn filter_chain(fc: &ir::FilterChain) -> FilterChain {
    let tls_match = fc.tls.is_some() || fc.match_tls;
    let filter_chain_match = (tls_match || !fc.server_names.is_empty()).then(|| FilterChainMatch {
        server_names: fc.server_names.clone(),
        transport_protocol: if tls_match {
            "tls".into()
        } else {
            String::new()
        },
        ..Default::default()
    });
    let network_filter = match &fc.action {
        ir::ChainAction::Http(h) => network(HCM, pack(http_connection_manager(h))),
        ir::ChainAction::Tcp(t) => network(TCP_PROXY, pack(tcp_proxy(t))),
    };
    FilterChain {
        name: fc.name.clone(),
        filter_chain_match,
        filters: vec![network_filter],
        transport_socket: fc
            .tls
            .as_ref()
            .map(|tls| tls_transport_socket(pack(downstream_tls(tls)))),
        ..Default::default()
    }
}

fn network(name: &str, config: Any) -> Filter {
    Filter {
        name: name.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(config)),
    }
}

fn downstream_tls(tls: &ir::DownstreamTls) -> DownstreamTlsContext {
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: tls_params(
                tls.min_version,
                tls.max_version,
                &tls.cipher_suites,
                &tls.ecdh_curves,
            ),
            tls_certificate_sds_secret_configs: vec![sds(&tls.certificate)],
            alpn_protocols: tls.alpn_protocols.clone(),
            validation_context_type: tls.validation.as_deref().map(|ca| {
                common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(ca))
            }),
            ..Default::default()
        }),
        require_client_certificate: tls.require_client_certificate.then(|| boolv(true)),
        ..Default::default()
    }
}

fn http_connection_manager(h: &ir::HttpManager) -> HttpConnectionManager {
    use http_connection_manager::PathWithEscapedSlashesAction;
    let mut http_filters = Vec::new();
    // Address rules run before anything else can act on (or answer) the request.
    if let Some(rules) = &h.ip_rules {
        http_filters.push(http_filter(RBAC, rbac::config(rules)));
    }
    if h.cors {
        http_filters.push(http_filter(CORS, pack(Cors::default())));
    }
    // AuthService, then RateLimitService, always, configured by ECDS: auth runs before rate
    // limiting, so descriptors can use headers the auth service added
    // (docs/design.md#authservice).
    http_filters.extend(services::discovery_filters());
    http_filters.push(http_filter(
        ROUTER,
        pack(Router {
            suppress_envoy_headers: h.suppress_envoy_headers,
            ..Default::default()
        }),
    ));
    HttpConnectionManager {
        stat_prefix: h.stat_prefix.clone(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: h.route_table.clone(),
        })),
        http_filters,
        use_remote_address: Some(boolv(h.use_remote_address)),
        xff_num_trusted_hops: h.xff_num_trusted_hops,
        server_name: h.server_name.clone().unwrap_or_default(),
        common_http_protocol_options: common_http_options(h),
        max_request_headers_kb: h.max_request_headers_kb.map(u32v),
        http2_protocol_options: h
            .http2_max_concurrent_streams
            .map(|n| Http2ProtocolOptions {
                max_concurrent_streams: Some(u32v(n)),
                ..Default::default()
            }),
        normalize_path: Some(boolv(h.normalize_path)),
        merge_slashes: h.merge_slashes,
        strip_matching_host_port: h.strip_matching_host_port,
        path_with_escaped_slashes_action: if h.reject_escaped_slashes {
            PathWithEscapedSlashesAction::RejectRequest as i32
        } else {
            PathWithEscapedSlashesAction::ImplementationSpecificDefault as i32
        },
        http_protocol_options: http1_options(h),
        preserve_external_request_id: h.preserve_external_request_id,
        forward_client_cert_details: h
            .forward_client_cert
            .map_or(ForwardClientCertDetails::Sanitize, forward_client_cert)
            as i32,
        set_current_client_cert_details: h.set_current_client_cert.map(|d| {
            http_connection_manager::SetCurrentClientCertDetails {
                subject: d.subject.then(|| boolv(true)),
                cert: d.cert,
                chain: d.chain,
                dns: d.dns,
                uri: d.uri,
                ..Default::default()
            }
        }),
        // LogService: gRPC loggers after the file log.
        access_log: h
            .access_log
            .iter()
            .map(file_access_log)
            .chain(observability::access_logs(&h.access_logs))
            .collect(),
        // TracingService.
        tracing: h.tracing.as_deref().map(observability::tracing),
        ..Default::default()
    }
}

/// Downstream options shared by every HTTP version, or `None` when all are Envoy's defaults.
fn common_http_options(h: &ir::HttpManager) -> Option<HttpProtocolOptions> {
    use http_protocol_options::HeadersWithUnderscoresAction as Action;
    if h.idle_timeout_ms.is_none() && h.headers_with_underscores.is_none() {
        return None;
    }
    let action = match h.headers_with_underscores {
        None | Some(ir::HeadersWithUnderscores::Allow) => Action::Allow,
        Some(ir::HeadersWithUnderscores::RejectRequest) => Action::RejectRequest,
        Some(ir::HeadersWithUnderscores::DropHeader) => Action::DropHeader,
    };
    Some(HttpProtocolOptions {
        idle_timeout: h.idle_timeout_ms.map(duration_ms),
        headers_with_underscores_action: action as i32,
        ..Default::default()
    })
}

/// Downstream HTTP/1 options, or `None` when all are Envoy's defaults.
fn http1_options(h: &ir::HttpManager) -> Option<Http1ProtocolOptions> {
    (h.accept_http_10 || h.allow_chunked_length || h.header_key_format.is_some()).then(|| {
        Http1ProtocolOptions {
            accept_http_10: h.accept_http_10,
            allow_chunked_length: h.allow_chunked_length,
            header_key_format: h.header_key_format.map(header_key_format),
            ..Default::default()
        }
    })
}

/// An HTTP/1 header-name format, for the HCM (downstream) and clusters (upstream).
pub(super) fn header_key_format(f: ir::HeaderKeyFormat) -> http1_protocol_options::HeaderKeyFormat {
    use http1_protocol_options::header_key_format::{HeaderFormat, ProperCaseWords};
    let format = match f {
        ir::HeaderKeyFormat::ProperCaseWords => HeaderFormat::ProperCaseWords(ProperCaseWords {}),
    };
    http1_protocol_options::HeaderKeyFormat {
        header_format: Some(format),
    }
}

fn forward_client_cert(f: ir::ForwardClientCert) -> ForwardClientCertDetails {
    match f {
        ir::ForwardClientCert::Sanitize => ForwardClientCertDetails::Sanitize,
        ir::ForwardClientCert::ForwardOnly => ForwardClientCertDetails::ForwardOnly,
        ir::ForwardClientCert::AppendForward => ForwardClientCertDetails::AppendForward,
        ir::ForwardClientCert::SanitizeSet => ForwardClientCertDetails::SanitizeSet,
        ir::ForwardClientCert::AlwaysForwardOnly => ForwardClientCertDetails::AlwaysForwardOnly,
    }
}

fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

fn file_access_log(log: &ir::AccessLog) -> AccessLog {
    AccessLog {
        name: "envoy.access_loggers.file".to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(file_access_log_config(
            log,
        ))),
        ..Default::default()
    }
}

/// `FileAccessLog.log_format` and `SubstitutionFormatString.json_format` field numbers.
const LOG_FORMAT_TAG: u32 = 5;
const JSON_FORMAT_TAG: u32 = 2;

/// The file access log's config, encoded deterministically. A JSON format is a
/// `google.protobuf.Struct`, whose `HashMap` prost encodes in a random order per instance: the
/// listener's bytes would differ between two builds of the same IR, and Envoy could take an
/// unchanged listener for a changed one. Map entries are independent records on the wire, so
/// the Struct is written entry by entry, in the IR's order, and spliced into its parents.
fn file_access_log_config(log: &ir::AccessLog) -> Any {
    let mut value = FileAccessLog {
        path: log.path.clone(),
        access_log_format: None,
    }
    .encode_to_vec();
    if let Some(format) = log_format(log) {
        prost::encoding::bytes::encode(LOG_FORMAT_TAG, &format, &mut value);
    }
    Any {
        type_url: FileAccessLog::type_url(),
        value,
    }
}

/// The encoded `SubstitutionFormatString`, or `None` for Envoy's default format.
fn log_format(log: &ir::AccessLog) -> Option<Vec<u8>> {
    if log.json_format.is_empty() {
        let text = log.text_format.as_ref()?;
        let format = substitution_format_string::Format::TextFormatSource(DataSource {
            specifier: Some(data_source::Specifier::InlineString(text.clone())),
            ..Default::default()
        });
        let sfs = SubstitutionFormatString {
            format: Some(format),
            ..Default::default()
        };
        return Some(sfs.encode_to_vec());
    }
    let mut fields = Vec::new();
    for (key, command) in &log.json_format {
        let value = Value {
            kind: Some(value::Kind::StringValue(command.clone())),
        };
        let entry = Struct {
            fields: HashMap::from([(key.clone(), value)]),
        };
        fields.extend(entry.encode_to_vec());
    }
    let mut sfs = SubstitutionFormatString::default().encode_to_vec();
    prost::encoding::bytes::encode(JSON_FORMAT_TAG, &fields, &mut sfs);
    Some(sfs)
}

fn tcp_proxy(t: &ir::TcpProxy) -> TcpProxy {
    let cluster_specifier = match t.clusters.as_slice() {
        [one] => tcp_proxy::ClusterSpecifier::Cluster(one.name.clone()),
        many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: many
                .iter()
                .map(|wc| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: wc.name.clone(),
                    weight: wc.weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    TcpProxy {
        stat_prefix: t.stat_prefix.clone(),
        cluster_specifier: Some(cluster_specifier),
        idle_timeout: t.idle_timeout_ms.map(duration_ms),
        // LogService (`tcp` driver).
        access_log: observability::access_logs(&t.access_logs).collect(),
        ..Default::default()
    }
}
