//! CDS: upstream clusters. Static and DNS clusters carry their endpoints inline; EDS clusters
//! get them by ADS under their service name.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, UpstreamConnectionOptions, circuit_breakers, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
    RoutingPriority, TcpKeepalive,
};
use envoy_types::pb::envoy::extensions::clusters::common::dns::v3::DnsLookupFamily;
use envoy_types::pb::envoy::extensions::clusters::dns::v3::DnsCluster;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, UpstreamTlsContext, common_tls_context,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::google::protobuf::Any;

use super::endpoint::load_assignment;
use super::{ads, duration_ms, pack, sds, tls_params, tls_transport_socket, u32v};
use crate::ir;

/// The key Envoy looks up upstream HTTP options under (the modern form of the deprecated
/// `http2_protocol_options` / `common_http_protocol_options` cluster fields).
const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The CDS resource for one IR cluster.
pub fn cluster(c: &ir::Cluster) -> Cluster {
    use cluster::{ClusterDiscoveryType, DiscoveryType};
    let (discovery, endpoints, eds_cluster_config) = match &c.discovery {
        ir::Discovery::Static(eps) => (
            ClusterDiscoveryType::Type(DiscoveryType::Static as i32),
            Some(eps),
            None,
        ),
        // IP addresses need no resolving: a STATIC cluster behaves the same, without a DNS
        // resolver and a re-resolution timer (every 5 s) per cluster, which at tens of
        // thousands of services kept Envoy's main thread busy (issue 10).
        ir::Discovery::StrictDns(eps) | ir::Discovery::LogicalDns(eps) if all_ip(eps) => (
            ClusterDiscoveryType::Type(DiscoveryType::Static as i32),
            Some(eps),
            None,
        ),
        ir::Discovery::StrictDns(eps) => (dns_discovery(false, c), Some(eps), None),
        ir::Discovery::LogicalDns(eps) => (dns_discovery(true, c), Some(eps), None),
        ir::Discovery::Eds { service_name } => (
            ClusterDiscoveryType::Type(DiscoveryType::Eds as i32),
            None,
            Some(cluster::EdsClusterConfig {
                eds_config: Some(ads()),
                service_name: service_name.clone(),
            }),
        ),
    };
    let mut typed_extension_protocol_options = HashMap::new();
    if let Some(options) = http_options(c) {
        typed_extension_protocol_options.insert(HTTP_OPTIONS.to_string(), options);
    }
    Cluster {
        name: c.name.clone(),
        alt_stat_name: c.alt_stat_name.clone().unwrap_or_default(),
        cluster_discovery_type: Some(discovery),
        eds_cluster_config,
        load_assignment: endpoints.map(|eps| load_assignment(&c.name, eps)),
        lb_policy: lb_policy(&c.lb_policy) as i32,
        connect_timeout: Some(duration_ms(c.connect_timeout_ms)),
        circuit_breakers: (!c.circuit_breakers.is_empty()).then(|| CircuitBreakers {
            thresholds: c.circuit_breakers.iter().map(thresholds).collect(),
            ..Default::default()
        }),
        transport_socket: c
            .tls
            .as_ref()
            .map(|tls| tls_transport_socket(pack(upstream_tls(tls)))),
        typed_extension_protocol_options,
        upstream_connection_options: c.tcp_keepalive.as_ref().map(|k| UpstreamConnectionOptions {
            tcp_keepalive: Some(TcpKeepalive {
                keepalive_probes: k.probes.map(u32v),
                keepalive_time: k.time_s.map(u32v),
                keepalive_interval: k.interval_s.map(u32v),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Every endpoint is an IP address (and there is at least one).
fn all_ip(eps: &[ir::Endpoint]) -> bool {
    !eps.is_empty()
        && eps
            .iter()
            .all(|e| e.address.parse::<std::net::IpAddr>().is_ok())
}

fn lb_policy(p: &ir::LbPolicy) -> cluster::LbPolicy {
    match p {
        ir::LbPolicy::RoundRobin => cluster::LbPolicy::RoundRobin,
        ir::LbPolicy::LeastRequest => cluster::LbPolicy::LeastRequest,
        ir::LbPolicy::RingHash => cluster::LbPolicy::RingHash,
        ir::LbPolicy::Maglev => cluster::LbPolicy::Maglev,
        ir::LbPolicy::Random => cluster::LbPolicy::Random,
    }
}

/// Strict and logical DNS as the `envoy.clusters.dns` extension: Envoy 1.40 deprecates the
/// cluster-level DNS fields (`respect_dns_ttl`, `dns_lookup_family`) for DNS clusters, and
/// `all_addresses_in_single_endpoint` is what LOGICAL_DNS means.
fn dns_discovery(logical: bool, c: &ir::Cluster) -> cluster::ClusterDiscoveryType {
    dns_cluster_type(DnsCluster {
        respect_dns_ttl: c.respect_dns_ttl,
        dns_lookup_family: dns_family(c.dns_family) as i32,
        all_addresses_in_single_endpoint: logical,
        ..Default::default()
    })
}

pub(super) fn dns_cluster_type(config: DnsCluster) -> cluster::ClusterDiscoveryType {
    cluster::ClusterDiscoveryType::ClusterType(cluster::CustomClusterType {
        name: "envoy.clusters.dns".to_string(),
        typed_config: Some(pack(config)),
    })
}

fn dns_family(f: ir::DnsFamily) -> DnsLookupFamily {
    match f {
        ir::DnsFamily::V4Only => DnsLookupFamily::V4Only,
        ir::DnsFamily::V6Only => DnsLookupFamily::V6Only,
        ir::DnsFamily::Auto => DnsLookupFamily::Auto,
    }
}

fn thresholds(cb: &ir::CircuitBreaker) -> circuit_breakers::Thresholds {
    let priority = match cb.priority {
        ir::Priority::Default => RoutingPriority::Default,
        ir::Priority::High => RoutingPriority::High,
    };
    circuit_breakers::Thresholds {
        priority: priority as i32,
        max_connections: cb.max_connections.map(u32v),
        max_pending_requests: cb.max_pending_requests.map(u32v),
        max_requests: cb.max_requests.map(u32v),
        max_retries: cb.max_retries.map(u32v),
        ..Default::default()
    }
}

fn upstream_tls(tls: &ir::UpstreamTls) -> UpstreamTlsContext {
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: tls_params(
                tls.min_version,
                tls.max_version,
                &tls.cipher_suites,
                &tls.ecdh_curves,
            ),
            tls_certificate_sds_secret_configs: tls
                .certificate
                .as_deref()
                .map(sds)
                .into_iter()
                .collect(),
            alpn_protocols: tls.alpn_protocols.clone(),
            validation_context_type: tls.validation.as_deref().map(|ca| {
                common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(sds(ca))
            }),
            ..Default::default()
        }),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// Upstream HTTP options, or `None` when Envoy's defaults (HTTP/1.1, no timeouts) apply. The
/// protocol must be explicit whenever the message is present.
fn http_options(c: &ir::Cluster) -> Option<Any> {
    use http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    };
    let timeouts = c.idle_timeout_ms.is_some() || c.max_connection_duration_ms.is_some();
    // Header-name case is an HTTP/1 matter: it has no effect (and is not sent) over HTTP/2.
    let header_key_format = c.header_key_format.filter(|_| !c.http2);
    if !c.http2 && !timeouts && header_key_format.is_none() {
        return None;
    }
    let protocol = if c.http2 {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions {
            header_key_format: header_key_format.map(super::listener::header_key_format),
            ..Default::default()
        })
    };
    let options = HttpProtocolOptions {
        common_http_protocol_options: timeouts.then(|| CommonHttpOptions {
            idle_timeout: c.idle_timeout_ms.map(duration_ms),
            max_connection_duration: c.max_connection_duration_ms.map(duration_ms),
            ..Default::default()
        }),
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(protocol),
            },
        )),
        ..Default::default()
    };
    Some(pack(options))
}
