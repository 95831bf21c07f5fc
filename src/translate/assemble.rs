//! Phase 5, assemble: the plans and groups become the IR, in named steps —
//! 1. [`listeners`]: for each Listener its filter chains (TCPMapping chains first, `tcp`;
//!    then the HTTP chains and their route tables, `http`, whose routes come from `route`);
//! 2. the listeners synthesized for TCPMappings on ports no Listener has (`tcp`);
//! 3. [`report_unattached`]: the Mappings no route uses;
//! 4. [`used_clusters`]: only the clusters something references;
//! 5. the external services (`services::assemble`): their filters, loggers and tracer on every
//!    connection manager, and their own clusters (each route got its auth setting and rate
//!    limits as `route` built it);
//! 6. [`secrets`]: only the SDS secrets something references;
//! 7. the EDS endpoints of those clusters.

mod http;
mod route;
mod tcp;

use std::collections::HashSet;

use crate::ir::{ChainAction, Cluster, Discovery, FilterChain, Ir, Listener, RouteAction};

use super::endpoint::Index;
use super::group::Groups;
use super::host::HostPlan;
use super::listener::ListenerPlan;
use super::mapping::{MappingPlan, Target};
use super::module::Settings;
use super::services::{self, Planned};
use super::tcp::TcpPlan;
use super::tls::Store;
use super::{Errors, Leftovers};

/// Everything the assembly needs: the outputs of the plan and group phases.
pub(crate) struct Inputs<'a> {
    pub listeners: Vec<ListenerPlan>,
    pub hosts: Vec<HostPlan>,
    pub mappings: Vec<MappingPlan>,
    pub tcp: Vec<TcpPlan>,
    pub groups: Groups,
    /// AuthService, RateLimitService, LogService, TracingService.
    pub services: Planned<'a>,
    pub settings: &'a Settings,
}

/// Builds the IR from the plans. `store` records the secrets the IR references and `index`
/// gives the endpoints of its EDS clusters.
pub(crate) fn assemble(
    inp: Inputs<'_>,
    mut store: Store,
    index: &mut Index<'_>,
    errs: &mut Errors,
    leftovers: &mut Leftovers,
) -> Ir {
    if inp.listeners.is_empty() {
        errs.global(
            "no Listener defined: Envoy serves no HTTP traffic (add a Listener, or enable default listeners)",
            true,
        );
    }
    let mut ir = Ir::default();
    let mut routed = vec![false; inp.mappings.len()];
    let mut placed_tcp = vec![false; inp.groups.tcp.len()];
    listeners(&mut ir, &inp, &mut routed, &mut placed_tcp, &store, errs);
    tcp::synthesized(&mut ir, &placed_tcp, &inp, &store, errs);
    report_unattached(&inp.mappings, &inp.groups.dropped, &routed, errs);
    ir.clusters = used_clusters(&ir, inp.mappings, inp.tcp, leftovers);
    services::assemble(&mut ir, inp.services, inp.settings, &mut store, errs);
    secrets(&ir, &mut store);
    ir.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    ir.route_tables.sort_by(|a, b| a.name.cmp(&b.name));
    ir.secrets = store.into_used();
    ir.endpoints = index.endpoints_for(&ir.clusters);
    ir
}

/// The IR listener of every Listener that gets a filter chain, and the route tables of its
/// HTTP chains. Marks in `routed` the Mappings that got a route and in `placed_tcp` the
/// TCPMapping groups on a Listener's port.
fn listeners(
    ir: &mut Ir,
    inp: &Inputs<'_>,
    routed: &mut [bool],
    placed_tcp: &mut [bool],
    store: &Store,
    errs: &mut Errors,
) {
    for l in &inp.listeners {
        let (mut chains, tcp_snis) = tcp::chains(l, inp, placed_tcp, store, errs);
        if l.http {
            let (http, tables) = http::chains(l, inp, &tcp_snis, routed, errs);
            chains.extend(http);
            ir.route_tables.extend(tables);
        }
        if chains.is_empty() {
            errs.push(l.meta.error(
                "",
                "no Host or TCPMapping is bound to this Listener; left out",
            ));
            continue;
        }
        ir.listeners.push(listener(
            &l.name,
            "0.0.0.0",
            l.port,
            l.proxy,
            chains,
            inp.settings,
        ));
    }
}

fn listener(
    name: &str,
    address: &str,
    port: u16,
    proxy: bool,
    filter_chains: Vec<FilterChain>,
    s: &Settings,
) -> Listener {
    Listener {
        name: name.to_string(),
        address: address.to_string(),
        port,
        stat_prefix: name.replace('.', "_"),
        proxy_protocol: proxy,
        per_connection_buffer_limit_bytes: s.buffer_limit_bytes,
        filter_chains,
    }
}

/// A valid Mapping that no vhost uses is reported and gets no cluster
/// (docs/design.md#unattached-mappings).
fn report_unattached(plans: &[MappingPlan], dropped: &[bool], routed: &[bool], errs: &mut Errors) {
    for (i, p) in plans.iter().enumerate() {
        if !p.builtin && !dropped[i] && !routed[i] {
            errs.push(p.meta.warning(
                "spec.hostname",
                "not attached to any Host on any Listener: no route (set hostname, or labels a Host selects)",
            ));
        }
    }
}

/// Only the clusters that routes, mirrors and tcp_proxy chains use, sorted by name (the first
/// one of a name wins). The plans are consumed: their clusters move into the IR, the rest of
/// them into `leftovers`.
fn used_clusters(
    ir: &Ir,
    mut plans: Vec<MappingPlan>,
    tcp: Vec<TcpPlan>,
    leftovers: &mut Leftovers,
) -> Vec<Cluster> {
    // Membership only: a hash set (the result is sorted below).
    let mut used: HashSet<&str> = HashSet::new();
    for t in &ir.route_tables {
        for r in t.virtual_hosts.iter().flat_map(|v| &v.routes) {
            if let RouteAction::Forward(f) = &r.action {
                used.extend(f.clusters.iter().map(|c| c.name.as_str()));
                used.extend(f.mirrors.iter().map(|m| m.cluster.as_str()));
            }
        }
    }
    for l in &ir.listeners {
        for c in &l.filter_chains {
            if let ChainAction::Tcp(t) = &c.action {
                used.extend(t.clusters.iter().map(|c| c.name.as_str()));
            }
        }
    }
    // The clusters stay boxed until the end: a cluster is large, and each move copies it.
    let mut boxed: Vec<Box<Cluster>> = plans
        .iter_mut()
        .filter_map(|p| match &p.action.target {
            // An unused cluster stays in its plan, freed with the leftovers.
            Target::Cluster(c) if used.contains(c.name.as_str()) => {
                match std::mem::replace(&mut p.action.target, Target::taken()) {
                    Target::Cluster(c) => Some(c),
                    _ => None,
                }
            }
            Target::Cluster(_) | Target::Redirect(_) | Target::Failed { .. } => None,
        })
        .chain(
            tcp.into_iter()
                .filter(|t| used.contains(t.cluster.name.as_str()))
                .map(|t| Box::new(t.cluster)),
        )
        .collect();
    // Of several clusters with one name, the first stays: ties keep their positions' order.
    let mut order: Vec<(&str, usize)> = boxed
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    order.sort_unstable();
    order.dedup_by(|later, first| later.0 == first.0);
    let order: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();
    // Each cluster is moved out of its box; the emptied boxes are freed with the leftovers.
    let clusters = order
        .into_iter()
        .map(|i| {
            std::mem::replace(
                &mut *boxed[i],
                Cluster::new(String::new(), Discovery::Static(Vec::new())),
            )
        })
        .collect();
    leftovers.keep(plans);
    leftovers.keep(boxed);
    clusters
}

/// Registers the SDS secrets the listeners and clusters reference.
fn secrets(ir: &Ir, store: &mut Store) {
    for l in &ir.listeners {
        for t in l.filter_chains.iter().filter_map(|c| c.tls.as_ref()) {
            store.register(&t.certificate);
            if let Some(v) = &t.validation {
                store.register(v);
            }
        }
    }
    for t in ir.clusters.iter().filter_map(|c| c.tls.as_ref()) {
        for name in t.certificate.iter().chain(&t.validation) {
            store.register(name);
        }
    }
}
