//! Assembly step: the tcp_proxy filter chains of TCPMapping groups (docs/design.md#tcpmapping),
//! with weights emitted as shares (not Emissary's cumulative thresholds), their TLS
//! termination, and the listeners synthesized for ports no Listener has.

use std::collections::{BTreeMap, BTreeSet};

use crate::ir::{ChainAction, DownstreamTls, FilterChain, Ir, TcpProxy, WeightedCluster};

use super::Inputs;
use crate::translate::Errors;
use crate::translate::group::{self, TcpGroup};
use crate::translate::host::{HostPlan, globs_compatible};
use crate::translate::listener::ListenerPlan;
use crate::translate::tcp::TcpPlan;
use crate::translate::tls::Store;

/// The tcp_proxy chains of the TCPMapping groups on a Listener's port (they come before its
/// HTTP chains and win SNI collisions: docs/design.md#filter-chains-and-sni), and the SNIs
/// they take. Marks the groups placed.
pub(super) fn chains(
    l: &ListenerPlan,
    inp: &Inputs<'_>,
    placed: &mut [bool],
    store: &Store,
    errs: &mut Errors,
) -> (Vec<FilterChain>, BTreeSet<String>) {
    let mut chains = Vec::new();
    let mut tcp_snis: BTreeSet<String> = BTreeSet::new();
    for (gi, g) in inp.groups.tcp.iter().enumerate() {
        if g.port != l.port || g.members.is_empty() {
            continue;
        }
        placed[gi] = true;
        if g.address != "0.0.0.0" {
            g.reject(
                &inp.tcp,
                "spec.address",
                &format!(
                    "port {} is already bound on 0.0.0.0 by Listener {}",
                    l.port,
                    l.meta.id()
                ),
                errs,
            );
            continue;
        }
        if l.http && g.host.is_none() {
            g.reject(
                &inp.tcp,
                "spec.host",
                &format!(
                    "a TCPMapping without host on HTTP Listener {} would take all its traffic",
                    l.meta.id()
                ),
                errs,
            );
            continue;
        }
        let Some(tls) = termination(g, &inp.tcp, &inp.hosts, store, errs) else {
            continue;
        };
        tcp_snis.extend(g.host.clone());
        chains.push(chain(g, &inp.tcp, l.stats_prefix.clone(), tls));
    }
    (chains, tcp_snis)
}

/// TLS for a TCPMapping group: none without `host`; with `host`, the first TLS Host (hostname
/// order) with a compatible glob, else a TLSContext listing `host`; neither disables the group
/// (an error on each member, and `None`).
fn termination(
    g: &TcpGroup,
    plans: &[TcpPlan],
    hosts: &[HostPlan],
    store: &Store,
    errs: &mut Errors,
) -> Option<Option<DownstreamTls>> {
    let Some(host) = g.host.as_ref() else {
        // No SNI: plain TCP, the chain takes every connection on the port.
        return Some(None);
    };
    if let Some(t) = hosts
        .iter()
        .filter(|h| globs_compatible(&h.hostname, host))
        .find_map(|h| h.tls.as_ref())
    {
        return Some(Some(t.tls.clone()));
    }
    if let Some(ctx) = store
        .contexts()
        .find(|c| c.cert.is_some() && c.hosts().iter().any(|x| x == host))
        && let Some(cert) = &ctx.cert
    {
        return Some(Some(Store::downstream(ctx, cert)));
    }
    g.reject(
        plans,
        "spec.host",
        &format!("no TLS Host or TLSContext (hosts) covers {host}: cannot terminate TLS"),
        errs,
    );
    None
}

/// Listeners synthesized for TCPMappings on ports no Listener has (`listener-<addr>-<port>`).
pub(super) fn synthesized(
    ir: &mut Ir,
    placed: &[bool],
    inp: &Inputs<'_>,
    store: &Store,
    errs: &mut Errors,
) {
    let mut by_bind: BTreeMap<(u16, String), Vec<FilterChain>> = BTreeMap::new();
    let mut port_addr: BTreeMap<u16, String> = BTreeMap::new();
    for (gi, g) in inp.groups.tcp.iter().enumerate() {
        if placed[gi] || g.members.is_empty() {
            continue;
        }
        if let Some(a) = port_addr.get(&g.port)
            && *a != g.address
        {
            g.reject(
                &inp.tcp,
                "spec.address",
                &format!("port {} is already bound on {a}", g.port),
                errs,
            );
            continue;
        }
        let Some(tls) = termination(g, &inp.tcp, &inp.hosts, store, errs) else {
            continue;
        };
        port_addr.insert(g.port, g.address.clone());
        let prefix = if g.host.is_some() {
            format!("ingress_tls_{}", g.port)
        } else {
            format!("ingress_tcp_{}", g.port)
        };
        by_bind
            .entry((g.port, g.address.clone()))
            .or_default()
            .push(chain(g, &inp.tcp, prefix, tls));
    }
    for ((port, address), mut chains) in by_bind {
        chains.sort_by_key(|c| c.server_names.is_empty());
        let name = format!("listener-{address}-{port}");
        ir.listeners.push(super::listener(
            &name,
            &address,
            port,
            false,
            chains,
            inp.settings,
        ));
    }
}

/// The tcp_proxy chain of a TCPMapping group; weights are shares.
fn chain(
    g: &TcpGroup,
    plans: &[TcpPlan],
    stat_prefix: String,
    tls: Option<DownstreamTls>,
) -> FilterChain {
    let weights: Vec<Option<u32>> = g.members.iter().map(|&i| plans[i].weight).collect();
    let clusters = group::shares(&weights)
        .into_iter()
        .filter(|(_, share)| *share > 0)
        .map(|(pos, share)| WeightedCluster {
            name: plans[g.members[pos]].cluster.name.clone(),
            weight: share,
        })
        .collect();
    FilterChain {
        // Stable chain name: the first member's `namespace/name`.
        name: format!("tcphost-{}", plans[g.members[0]].meta.id()),
        server_names: g.host.iter().filter(|h| *h != "*").cloned().collect(),
        match_tls: g.host.is_some(),
        tls,
        action: ChainAction::Tcp(TcpProxy {
            stat_prefix,
            clusters,
            idle_timeout_ms: plans[g.members[0]].idle_timeout_ms,
            // LogService loggers are added by the services step (translate::services::log).
            access_logs: Vec::new(),
        }),
    }
}
