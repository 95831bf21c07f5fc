//! EDS: cluster load assignments, one per EDS service name.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::Any;

use super::listener::socket_address;
use super::{pack, u32v};
use crate::ir::{self, Ir};

/// A load assignment for `cluster_name` (a cluster's own name for inline assignments, the EDS
/// service name for EDS).
pub fn load_assignment(cluster_name: &str, endpoints: &[ir::Endpoint]) -> ClusterLoadAssignment {
    let lb_endpoints = endpoints
        .iter()
        .map(|e| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket_address(&e.address, e.port)),
                ..Default::default()
            })),
            load_balancing_weight: e.weight.map(u32v),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Every EDS resource: the IR's endpoints, plus an empty assignment for an EDS service that has
/// none, so its cluster answers 503 instead of warming until the fetch timeout.
///
/// A resource's version covers the clusters that use it as well as its endpoints: when such a
/// cluster changes, Envoy re-requests EDS with the version it already holds and keeps the new
/// cluster warming until it gets an answer (docs/design.md#push-order-and-warming),
/// so the EDS version must move
/// with the cluster.
pub(super) fn all(ir: &Ir) -> Vec<(&String, u64, impl FnOnce() -> Any + '_)> {
    let mut users: BTreeMap<&String, Vec<&ir::Cluster>> = BTreeMap::new();
    for c in &ir.clusters {
        if let ir::Discovery::Eds { service_name } = &c.discovery {
            users.entry(service_name).or_default().push(c);
        }
    }
    let given: BTreeMap<&String, &[ir::Endpoint]> = ir
        .endpoints
        .iter()
        .map(|e| (&e.service_name, e.endpoints.as_slice()))
        .collect();
    let mut names: Vec<&String> = given.keys().chain(users.keys()).copied().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let endpoints = given.get(name).copied().unwrap_or_default();
            let clusters = users.get(name).map(Vec::as_slice).unwrap_or_default();
            let hash = Ir::hash_of(&(endpoints, clusters));
            (name, hash, move || pack(load_assignment(name, endpoints)))
        })
        .collect()
}
