//! A snapshot as one static Envoy bootstrap, for `envoy --mode validate` and `legate translate`:
//! RDS references become inline route configurations, ECDS filters get their config inline, EDS clusters get their assignments
//! inline, and SDS references name static secrets instead of pointing at ADS.

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap::StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    TransportSocket, TypedExtensionConfig, address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::clusters::dns::v3::DnsCluster;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, Secret, UpstreamTlsContext, common_tls_context,
};
use prost::{Message, Name};

use super::cluster::dns_cluster_type;
use super::{Error, pack, unpack};
use crate::xds::{Snapshot, TypeKind};

/// Every resource of `snapshot` in one static bootstrap (no admin, node or ADS: enough for
/// `envoy --mode validate` and for printing).
pub fn static_bootstrap(snapshot: &Snapshot) -> Result<Bootstrap, Error> {
    let routes: BTreeMap<String, RouteConfiguration> = decode_all(snapshot, TypeKind::Route)?;
    let assignments: BTreeMap<String, ClusterLoadAssignment> =
        decode_all(snapshot, TypeKind::Endpoint)?;
    let extensions: BTreeMap<String, TypedExtensionConfig> =
        decode_all(snapshot, TypeKind::ExtensionConfig)?;
    let listeners = decode_all::<Listener>(snapshot, TypeKind::Listener)?
        .into_values()
        .map(|l| static_listener(l, &routes, &extensions))
        .collect::<Result<_, _>>()?;
    let clusters = decode_all::<Cluster>(snapshot, TypeKind::Cluster)?
        .into_values()
        .map(|c| static_cluster(c, &assignments))
        .collect::<Result<_, _>>()?;
    let secrets = decode_all::<Secret>(snapshot, TypeKind::Secret)?
        .into_values()
        .collect();
    Ok(Bootstrap {
        static_resources: Some(StaticResources {
            listeners,
            clusters,
            secrets,
        }),
        ..Default::default()
    })
}

fn decode_all<T: Message + Name + Default>(
    snapshot: &Snapshot,
    kind: TypeKind,
) -> Result<BTreeMap<String, T>, Error> {
    let Some(types) = snapshot.get(kind) else {
        return Ok(BTreeMap::new());
    };
    types
        .resources
        .values()
        .map(|r| Ok((r.name.clone(), unpack(kind, &r.name, &r.body)?)))
        .collect()
}

fn static_listener(
    mut l: Listener,
    routes: &BTreeMap<String, RouteConfiguration>,
    extensions: &BTreeMap<String, TypedExtensionConfig>,
) -> Result<Listener, Error> {
    let name = l.name.clone();
    for fc in &mut l.filter_chains {
        if let Some(ts) = &mut fc.transport_socket {
            static_transport_socket(ts, TypeKind::Listener, &name)?;
        }
        for f in &mut fc.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                continue;
            };
            if any.type_url != HttpConnectionManager::type_url() {
                continue;
            }
            let mut hcm: HttpConnectionManager = unpack(TypeKind::Listener, &name, any)?;
            if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
                let route =
                    routes
                        .get(&rds.route_config_name)
                        .ok_or_else(|| Error::MissingRoute {
                            listener: name.clone(),
                            route: rds.route_config_name.clone(),
                        })?;
                hcm.route_specifier = Some(RouteSpecifier::RouteConfig(route.clone()));
            }
            // ECDS filters (AuthService, RateLimitService) get their config inline.
            for f in &mut hcm.http_filters {
                if let Some(http_filter::ConfigType::ConfigDiscovery(_)) = &f.config_type
                    && let Some(ext) = extensions.get(&f.name)
                    && let Some(config) = &ext.typed_config
                {
                    f.config_type = Some(http_filter::ConfigType::TypedConfig(config.clone()));
                }
            }
            *any = pack(hcm);
        }
    }
    Ok(l)
}

fn static_cluster(
    mut c: Cluster,
    assignments: &BTreeMap<String, ClusterLoadAssignment>,
) -> Result<Cluster, Error> {
    if let Some(ts) = &mut c.transport_socket {
        static_transport_socket(ts, TypeKind::Cluster, &c.name)?;
    }
    let eds = cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32);
    if c.cluster_discovery_type.as_ref() != Some(&eds) {
        return Ok(c);
    }
    let service = match c.eds_cluster_config.take() {
        Some(cfg) if !cfg.service_name.is_empty() => cfg.service_name,
        _ => c.name.clone(),
    };
    let mut cla = assignments.get(&service).cloned().unwrap_or_default();
    cla.cluster_name = c.name.clone();
    c.cluster_discovery_type = Some(if all_ips(&cla) {
        cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Static as i32)
    } else {
        dns_cluster_type(DnsCluster::default())
    });
    c.load_assignment = Some(cla);
    Ok(c)
}

fn all_ips(cla: &ClusterLoadAssignment) -> bool {
    cla.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .all(|e| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                match ep.address.as_ref().and_then(|a| a.address.as_ref()) {
                    Some(address::Address::SocketAddress(sa)) => {
                        sa.address.parse::<IpAddr>().is_ok()
                    }
                    _ => true,
                }
            }
            _ => true,
        })
}

/// Points SDS references at static secrets: a reference without a config source names a secret
/// in `static_resources`.
fn static_transport_socket(
    ts: &mut TransportSocket,
    kind: TypeKind,
    name: &str,
) -> Result<(), Error> {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &mut ts.config_type else {
        return Ok(());
    };
    *any = if any.type_url == DownstreamTlsContext::type_url() {
        let mut ctx: DownstreamTlsContext = unpack(kind, name, any)?;
        if let Some(common) = &mut ctx.common_tls_context {
            static_sds(common);
        }
        pack(ctx)
    } else if any.type_url == UpstreamTlsContext::type_url() {
        let mut ctx: UpstreamTlsContext = unpack(kind, name, any)?;
        if let Some(common) = &mut ctx.common_tls_context {
            static_sds(common);
        }
        pack(ctx)
    } else {
        return Ok(());
    };
    Ok(())
}

fn static_sds(ctx: &mut CommonTlsContext) {
    for cert in &mut ctx.tls_certificate_sds_secret_configs {
        cert.sds_config = None;
    }
    if let Some(common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(v)) =
        &mut ctx.validation_context_type
    {
        v.sds_config = None;
    }
}
