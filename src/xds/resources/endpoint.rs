//! EDS: cluster load assignments, one per EDS service name.

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
/// none, so its cluster answers 503 instead of warming until the fetch timeout. In name order.
///
/// A resource's version covers the clusters that use it as well as its endpoints: when such a
/// cluster changes, Envoy re-requests EDS with the version it already holds and keeps the new
/// cluster warming until it gets an answer (docs/design.md#push-order-and-warming),
/// so the EDS version must move with the cluster. It hashes those clusters' own hashes
/// (`cluster_hashes`, one per cluster of `ir.clusters`, as their versions use), so no cluster is
/// hashed twice (docs/design.md#versions).
pub(super) fn all<'a>(
    ir: &'a Ir,
    cluster_hashes: &[u64],
) -> Vec<(&'a String, u64, impl FnOnce() -> Any + 'a)> {
    // (service name, hash of a cluster using it); a stable sort keeps cluster order per name.
    let mut users: Vec<(&String, u64)> = ir
        .clusters
        .iter()
        .zip(cluster_hashes)
        .filter_map(|(c, hash)| match &c.discovery {
            ir::Discovery::Eds { service_name } => Some((service_name, *hash)),
            _ => None,
        })
        .collect();
    users.sort_by(|a, b| a.0.cmp(b.0));
    let mut given: Vec<(&String, &[ir::Endpoint])> = ir
        .endpoints
        .iter()
        .map(|e| (&e.service_name, e.endpoints.as_slice()))
        .collect();
    given.sort_by(|a, b| a.0.cmp(b.0));
    // Merged in name order; of endpoints given twice under one name (an IR `validate`
    // refuses), the last.
    let mut out = Vec::with_capacity(given.len().max(users.len()));
    let (mut g, mut u) = (given.as_slice(), users.as_slice());
    loop {
        let name = match (g.first(), u.first()) {
            (None, None) => break,
            (Some((a, _)), Some((b, _))) => (*a).min(*b),
            (Some((a, _)), None) => *a,
            (None, Some((b, _))) => *b,
        };
        let mut endpoints: &[ir::Endpoint] = &[];
        while let Some(((n, e), rest)) = g.split_first()
            && *n == name
        {
            endpoints = e;
            g = rest;
        }
        let run = u.iter().take_while(|(n, _)| *n == name).count();
        let (clusters, rest) = u.split_at(run);
        u = rest;
        let hash = Ir::hash_of(&(endpoints, Users(clusters)));
        out.push((name, hash, move || pack(load_assignment(name, endpoints))));
    }
    out
}

/// The hashes of the clusters using one EDS name, hashed as a slice of them would be.
struct Users<'a>(&'a [(&'a String, u64)]);

impl std::hash::Hash for Users<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for (_, hash) in self.0 {
            hash.hash(state);
        }
    }
}
