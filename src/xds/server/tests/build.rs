//! Hand-built snapshots of small but valid Envoy resources, each with a per-resource version
//! derived from its content.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::Address as PbAddress;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, SocketAddress, address,
    config_source, data_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost, route, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    GenericSecret, Secret, secret,
};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use envoy_types::util::pack_any;

use crate::xds::snapshot::{Resource, Snapshot, TypeKind, TypeSnapshot};

/// ADS with no initial fetch timeout: a resource that never comes keeps its parent warming,
/// so a missing response shows up as a test failure rather than a 15 s delay.
fn ads() -> ConfigSource {
    ConfigSource {
        initial_fetch_timeout: Some(PbDuration {
            seconds: 0,
            nanos: 0,
        }),
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

fn socket(port: u32) -> PbAddress {
    PbAddress {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// An EDS cluster; `timeout` distinguishes versions of "the same" cluster.
pub fn eds_cluster(name: &str, timeout: i64) -> Resource {
    let c = Cluster {
        name: name.into(),
        connect_timeout: Some(PbDuration {
            seconds: timeout,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        ..Default::default()
    };
    res(name, &format!("{name}-t{timeout}"), pack_any(c))
}

pub fn cla(name: &str, port: u32) -> Resource {
    let c = ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket(port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    res(name, &format!("{name}-p{port}"), pack_any(c))
}

/// An HTTP listener on 127.0.0.1:`port` whose routes come from RDS `route`.
pub fn listener(name: &str, port: u32, route: &str) -> Resource {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route.into(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let l = Listener {
        name: name.into(),
        address: Some(socket(port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    res(name, &format!("{name}-{port}-{route}"), pack_any(l))
}

/// A route configuration answering every request with `status` and `body`.
pub fn direct_route(name: &str, status: u32, body: &str) -> Resource {
    let r = RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status,
                    body: Some(DataSource {
                        specifier: Some(data_source::Specifier::InlineString(body.into())),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    res(name, &format!("{name}-{status}-{body}"), pack_any(r))
}

pub fn secret(name: &str, value: &str) -> Resource {
    let s = Secret {
        name: name.into(),
        r#type: Some(secret::Type::GenericSecret(GenericSecret {
            secret: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(value.into())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    res(name, &format!("{name}-{value}"), pack_any(s))
}

/// `r`, lingering `ms` after the change that stops using it is answered.
pub fn lingering(mut r: Resource, ms: u64) -> Resource {
    r.linger = std::time::Duration::from_millis(ms);
    r
}

fn res(name: &str, version: &str, body: envoy_types::pb::google::protobuf::Any) -> Resource {
    Resource {
        name: name.into(),
        version: version.into(),
        body,
        linger: std::time::Duration::ZERO,
        pieces: Default::default(),
    }
}

/// Builds a snapshot type by type; each type's version is given explicitly.
#[derive(Default)]
pub struct Snap(Snapshot);

impl Snap {
    pub fn new() -> Self {
        Snap::default()
    }
    pub fn with(mut self, kind: TypeKind, version: &str, resources: Vec<Resource>) -> Self {
        let resources = resources.into_iter().map(|r| (r.name.clone(), r)).collect();
        self.0.types.insert(
            kind,
            TypeSnapshot {
                version: version.into(),
                resources,
            },
        );
        self
    }
    pub fn build(self) -> Arc<Snapshot> {
        Arc::new(self.0)
    }
}

/// One EDS cluster `c1` with endpoints, a listener `l1` using route `r1`, and secret `s1`;
/// every type at version `v`.
pub fn basic(v: &str) -> Snap {
    Snap::new()
        .with(TypeKind::Secret, v, vec![secret("s1", "a")])
        .with(TypeKind::Cluster, v, vec![eds_cluster("c1", 1)])
        .with(TypeKind::Endpoint, v, vec![cla("c1", 9001)])
        .with(TypeKind::Listener, v, vec![listener("l1", 10001, "r1")])
        .with(TypeKind::Route, v, vec![direct_route("r1", 200, "hi")])
}

pub fn versions(v: &str) -> BTreeMap<TypeKind, String> {
    TypeKind::ORDER
        .into_iter()
        .map(|k| (k, v.to_string()))
        .collect()
}
