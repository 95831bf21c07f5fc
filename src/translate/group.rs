//! Phase 4, group: the plans of Mappings and TCPMappings become groups. First every cluster
//! gets its final name (cluster sharing without silent first-wins), then Mappings group by
//! identity (docs/design.md#groups-canaries-and-weights: consistency within a group, canary
//! weights, shadows) and are sorted in route order (docs/compatibility.md), and TCPMappings
//! group by `(address, port, host)` (docs/design.md#tcpmapping). The weight arithmetic the
//! assembly uses (thresholds, shares) lives here too.

use std::collections::BTreeMap;

use crate::ir::{Cluster, HeaderValue, Mirror};

use super::Errors;
use super::load::Meta;
use super::mapping::{MappingPlan, Target};
use super::tcp::TcpPlan;

/// What the group phase hands to the assembly.
#[derive(Debug)]
pub(crate) struct Groups {
    /// Mapping groups, in route order.
    pub http: Vec<Group>,
    /// Per Mapping plan: dropped from its group (reported already).
    pub dropped: Vec<bool>,
    /// TCPMapping groups, by `(address, port, host)`.
    pub tcp: Vec<TcpGroup>,
}

/// Names every cluster, then groups the Mappings and the TCPMappings. Members of a group must
/// agree on their parsed `labels` too.
pub(crate) fn group(
    mappings: &mut [MappingPlan],
    tcp: &mut [TcpPlan],
    errs: &mut Errors,
) -> Groups {
    name_clusters(mappings, tcp, errs);
    let (http, dropped) = build(mappings, errs);
    Groups {
        http,
        dropped,
        tcp: tcp_groups(tcp, errs),
    }
}

/// Gives the cluster of every Mapping and TCPMapping its final name ([`assign_clusters`]).
fn name_clusters(mappings: &mut [MappingPlan], tcp: &mut [TcpPlan], errs: &mut Errors) {
    let mut items: Vec<(&Meta, &mut Cluster)> = Vec::new();
    for p in mappings.iter_mut() {
        if let Target::Cluster(c) = &mut p.action.target {
            items.push((&p.meta, c.as_mut()));
        }
    }
    for p in tcp.iter_mut() {
        items.push((&p.meta, &mut p.cluster));
    }
    assign_clusters(items, errs);
}

/// A group: Mappings with the same identity, forming a run of consecutive routes.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// Indices into the plans, in processing order, shadows excluded.
    pub members: Vec<usize>,
    /// The first Mapping of the group in processing order (shadow and dropped ones included):
    /// of two groups whose sort keys tie, the one whose first Mapping comes later goes first.
    pub first: usize,
    /// Mirror of every route of the group.
    pub mirror: Option<Mirror>,
    pub shadow: Option<usize>,
    /// Per-group settings, merged over the members (later members win per header name).
    pub add_request_headers: Vec<HeaderValue>,
    pub add_response_headers: Vec<HeaderValue>,
    pub remove_request_headers: Vec<String>,
    pub remove_response_headers: Vec<String>,
}

/// Forms the groups (sorted in route order), dropping members that conflict with their group
/// (docs/design.md#groups-canaries-and-weights), a second shadow,
/// redirect mixes, or weights pushing the group over 100 (legate
/// rejects those instead of emitting them). Returns the groups and which plans were dropped.
fn build(plans: &[MappingPlan], errs: &mut Errors) -> (Vec<Group>, Vec<bool>) {
    let mut dropped = vec![false; plans.len()];
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by(|&a, &b| {
        (!plans[a].builtin, plans[a].meta.order_key())
            .cmp(&(!plans[b].builtin, plans[b].meta.order_key()))
    });
    // A stable sort by identity: each group is then a run of `order`, in processing order.
    // (The run order does not matter: the groups are sorted below.)
    order.sort_by(|&a, &b| plans[a].group_key.cmp(&plans[b].group_key));
    let mut groups = Vec::new();
    for members in order.chunk_by(|&a, &b| plans[a].group_key == plans[b].group_key) {
        let first = &plans[members[0]];
        // Made only when the group has a second member (`MappingPlan::consistency`).
        let mut first_consistency: Option<String> = None;
        let mut kept: Vec<usize> = Vec::new();
        let mut shadow: Option<usize> = None;
        let mut weight_sum = 0u32;
        for &i in members {
            let p = &plans[i];
            let reject = |why: String| p.meta.error("spec", why);
            // The labels as read are compared apart from the rest: only a Mapping that is not
            // alone in its group needs them looked up.
            if i != members[0]
                && (p.consistency()
                    != *first_consistency.get_or_insert_with(|| first.consistency())
                    || p.labels() != first.labels())
            {
                errs.push(reject(format!(
                    "conflicts with Mapping {} of the same group (prefix, method, headers, circuit_breakers, connect/cluster timeouts, keepalive, labels and load_balancer must agree)",
                    first.meta.id()
                )));
                dropped[i] = true;
                continue;
            }
            if p.shadow {
                if let Some(s) = shadow {
                    errs.push(reject(format!(
                        "a group has one shadow; {} is already it",
                        plans[s].meta.id()
                    )));
                    dropped[i] = true;
                } else {
                    shadow = Some(i);
                }
                continue;
            }
            let is_redirect = matches!(p.action.target, Target::Redirect(_));
            if let Some(&k) = kept.first() {
                let k_redirect = matches!(plans[k].action.target, Target::Redirect(_));
                if is_redirect || k_redirect {
                    errs.push(reject(format!(
                        "a group with a redirect holds only that Mapping; conflicts with {}",
                        plans[k].meta.id()
                    )));
                    dropped[i] = true;
                    continue;
                }
            }
            if let Some(w) = p.weight {
                if weight_sum + w > 100 {
                    errs.push(p.meta.error(
                        "spec.weight",
                        format!("weights of the group exceed 100 ({} + {w})", weight_sum),
                    ));
                    dropped[i] = true;
                    continue;
                }
                weight_sum += w;
            }
            kept.push(i);
        }
        if kept.is_empty() {
            if let Some(s) = shadow {
                errs.push(
                    plans[s]
                        .meta
                        .warning("spec.shadow", "no Mapping in its group to mirror"),
                );
            }
            continue;
        }
        let mirror = shadow.and_then(|s| {
            plans[s].cluster_name().map(|c| Mirror {
                cluster: c.to_string(),
                percent: plans[s].weight.unwrap_or(100),
            })
        });
        let mut g = merge(plans, kept, shadow, mirror);
        g.first = members[0];
        groups.push(g);
    }
    // Descending sort key; full ties (rare: e.g. a presence match against a literal `*` value)
    // go in reverse processing order, as Emissary's stable sort, reversed, leaves them.
    (in_route_order(groups, plans), dropped)
}

/// Sorts the groups (see [`build`]). The keys are looked up once and positions are sorted,
/// not the groups (large structs, moved many times by a sort). Ties left by the keys (none:
/// no two groups share their first Mapping) keep the groups' order, so the unstable sort
/// gives exactly the stable sort's result.
fn in_route_order(groups: Vec<Group>, plans: &[MappingPlan]) -> Vec<Group> {
    let mut keyed: Vec<_> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let first = &plans[g.first];
            (
                &plans[g.members[0]].sort,
                (!first.builtin, first.meta.order_key()),
                i,
            )
        })
        .collect();
    keyed.sort_unstable_by(|a, b| b.0.cmp(a.0).then_with(|| b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let order: Vec<usize> = keyed.into_iter().map(|(_, _, i)| i).collect();
    let mut slots: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

fn merge(
    plans: &[MappingPlan],
    members: Vec<usize>,
    shadow: Option<usize>,
    mirror: Option<Mirror>,
) -> Group {
    let mut add_req: BTreeMap<String, HeaderValue> = BTreeMap::new();
    let mut add_resp: BTreeMap<String, HeaderValue> = BTreeMap::new();
    let mut rm_req: Vec<String> = Vec::new();
    let mut rm_resp: Vec<String> = Vec::new();
    for &i in &members {
        let p = &plans[i];
        for h in &p.action.add_request_headers {
            add_req.insert(h.name.clone(), h.clone());
        }
        for h in &p.action.add_response_headers {
            add_resp.insert(h.name.clone(), h.clone());
        }
        for (from, to) in [
            (&p.action.remove_request_headers, &mut rm_req),
            (&p.action.remove_response_headers, &mut rm_resp),
        ] {
            for h in from {
                if !to.contains(h) {
                    to.push(h.clone());
                }
            }
        }
    }
    Group {
        first: members[0],
        members,
        mirror,
        shadow,
        add_request_headers: add_req.into_values().collect(),
        add_response_headers: add_resp.into_values().collect(),
        remove_request_headers: rm_req,
        remove_response_headers: rm_resp,
    }
}

/// The last member (processing order) that sets a per-group scalar wins.
pub(crate) fn last_set<'a, T>(
    plans: &'a [MappingPlan],
    members: &[usize],
    f: impl Fn(&'a MappingPlan) -> Option<&'a T>,
) -> Option<&'a T> {
    members.iter().rev().find_map(|&i| f(&plans[i]))
}

/// Cumulative thresholds (docs/design.md#groups-canaries-and-weights) for
/// the members present in one vhost, in route order:
/// weighted members first, then unweighted ones sharing the rest; the last route is forced to
/// 100 so the group never falls through. Envoy draws one random number per request and tests
/// the routes in order, so thresholds 10/100 give a 10/90 split.
pub(crate) fn thresholds(plans: &[MappingPlan], members: &[usize]) -> Vec<(usize, u32)> {
    let weights: Vec<Option<u32>> = members.iter().map(|&i| plans[i].weight).collect();
    cumulative(&weights)
        .into_iter()
        .map(|(pos, t)| (members[pos], t))
        .collect()
}

/// Cumulative thresholds for weights given per position: `(position, threshold)` in route
/// order. A lone entry gets 100 whatever its weight.
pub(crate) fn cumulative(weights: &[Option<u32>]) -> Vec<(usize, u32)> {
    if weights.len() == 1 {
        return vec![(0, 100)];
    }
    let (weighted, unweighted): (Vec<usize>, Vec<usize>) =
        (0..weights.len()).partition(|&i| weights[i].is_some());
    let mut out = Vec::new();
    let mut sum = 0;
    for i in weighted {
        sum += weights[i].unwrap_or(0);
        out.push((i, sum.min(100)));
    }
    if !unweighted.is_empty() {
        let share = round_half_even(f64::from(100 - sum.min(100)) / unweighted.len() as f64);
        for i in unweighted {
            sum += share;
            out.push((i, sum.min(100)));
        }
    }
    if let Some(last) = out.last_mut() {
        last.1 = 100;
    }
    out
}

/// Shares from cumulative thresholds (tcp_proxy weights are shares, not
/// Emissary's thresholds: docs/design.md#tcpmapping-groups-and-listeners).
pub(crate) fn shares(weights: &[Option<u32>]) -> Vec<(usize, u32)> {
    let mut prev = 0;
    cumulative(weights)
        .into_iter()
        .map(|(i, t)| {
            let share = t - prev;
            prev = t;
            (i, share)
        })
        .collect()
}

fn round_half_even(x: f64) -> u32 {
    let r = x.round();
    let v = if (x - x.trunc() - 0.5).abs() < f64::EPSILON && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    v as u32
}

/// Gives every cluster its final name. Equal names share one cluster; an owner whose
/// settings differ from the cluster already named so gets its own cluster, named with a digest
/// of its settings, and a warning (Emissary silently lets the first Mapping win).
fn assign_clusters(mut items: Vec<(&Meta, &mut Cluster)>, errs: &mut Errors) {
    // A rename only follows two clusters of one name with different settings. When there are
    // none (the usual case: clusters of one name are shared), nothing is renamed, whatever the
    // order: skip the sort and the copies of every name.
    let mut first: std::collections::HashMap<&str, &Cluster> =
        std::collections::HashMap::with_capacity(items.len());
    let conflict = items
        .iter()
        .any(|(_, c)| *first.entry(c.name.as_str()).or_insert(&**c) != &**c);
    if !conflict {
        return;
    }
    drop(first);
    items.sort_by(|a, b| a.0.order_key().cmp(&b.0.order_key()));
    // The first owner of each name, by position in `items` (no copies: with one cluster per
    // Mapping this runs over every cluster of the configuration).
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..items.len() {
        let first = match by_name.get(items[i].1.name.as_str()) {
            None => {
                by_name.insert(items[i].1.name.clone(), i);
                continue;
            }
            Some(&j) if *items[j].1 == *items[i].1 => continue,
            Some(&j) => j,
        };
        let first_id = items[first].0.id();
        let (meta, c) = &mut items[i];
        let settings = serde_json::to_string(&**c).unwrap_or_default();
        let digest = sha1_smol::Sha1::from(settings.as_bytes())
            .digest()
            .to_string();
        let base = std::mem::take(&mut c.name);
        c.name = format!("{base}-{}", &digest[..8]);
        errs.push(meta.warning(
            "spec",
            format!(
                "cluster settings differ from {first_id}, which also uses {base}; using a separate cluster {}",
                c.name
            ),
        ));
        by_name.entry(c.name.clone()).or_insert(i);
    }
}

/// TCPMappings sharing `(address, port, host)`: one filter chain.
#[derive(Debug, Clone)]
pub(crate) struct TcpGroup {
    pub address: String,
    pub port: u16,
    pub host: Option<String>,
    /// Indices into the plans, processing order.
    pub members: Vec<usize>,
}

impl TcpGroup {
    /// Reports a problem on every member (the group is left out).
    pub fn reject(&self, plans: &[TcpPlan], field: &str, msg: &str, errs: &mut Errors) {
        for &i in &self.members {
            errs.push(plans[i].meta.error(field, msg));
        }
    }
}

/// Groups by `(address, port, host)`; members that disagree with their group, or push its
/// weights over 100, are dropped with an error.
fn tcp_groups(plans: &[TcpPlan], errs: &mut Errors) -> Vec<TcpGroup> {
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by(|&a, &b| plans[a].meta.order_key().cmp(&plans[b].meta.order_key()));
    let mut by_key: BTreeMap<(String, u16, String), Vec<usize>> = BTreeMap::new();
    for i in order {
        let p = &plans[i];
        let key = (
            p.address.clone(),
            p.port,
            p.host.clone().unwrap_or_default(),
        );
        by_key.entry(key).or_default().push(i);
    }
    let mut out = Vec::new();
    for ((address, port, host), members) in by_key {
        let first = members[0];
        let mut kept = Vec::new();
        let mut sum = 0;
        for i in members {
            let p = &plans[i];
            if p.consistency != plans[first].consistency {
                errs.push(p.meta.error(
                    "spec",
                    format!(
                        "conflicts with TCPMapping {} of the same group (tls, circuit_breakers, enable_ipv4/6, idle_timeout_ms must agree)",
                        plans[first].meta.id()
                    ),
                ));
                continue;
            }
            if let Some(w) = p.weight {
                if sum + w > 100 {
                    errs.push(p.meta.error(
                        "spec.weight",
                        format!("weights of the group exceed 100 ({sum} + {w})"),
                    ));
                    continue;
                }
                sum += w;
            }
            kept.push(i);
        }
        out.push(TcpGroup {
            address,
            port,
            host: (!host.is_empty()).then_some(host),
            members: kept,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_emissary_thresholds() {
        let t = |w: &[Option<u32>]| {
            cumulative(w)
                .into_iter()
                .map(|(_, t)| t)
                .collect::<Vec<_>>()
        };
        assert_eq!(t(&[None, None, None]), [33, 66, 100]);
        assert_eq!(t(&[Some(10), None, None]), [10, 55, 100]);
        assert_eq!(t(&[None, Some(10)]), [10, 100]);
        assert_eq!(t(&[Some(150)]), [100]);
        // weight 0 is a weight: no traffic (docs/compatibility.md).
        assert_eq!(t(&[Some(0), None]), [0, 100]);
        assert_eq!(t(&[Some(0), Some(30), None]), [0, 30, 100]);
        // Weighted only, under 100: the last route takes the rest instead of letting requests
        // fall through to a less specific Mapping (a deliberate difference).
        assert_eq!(t(&[Some(30), Some(30)]), [30, 100]);
        let s = |w: &[Option<u32>]| shares(w).into_iter().map(|(_, t)| t).collect::<Vec<_>>();
        assert_eq!(s(&[Some(25), None]), [25, 75]);
        assert_eq!(s(&[None, None, None]), [33, 33, 34]);
    }

    #[test]
    fn half_even() {
        assert_eq!(round_half_even(33.33), 33);
        assert_eq!(round_half_even(45.0), 45);
        assert_eq!(round_half_even(12.5), 12);
        assert_eq!(round_half_even(13.5), 14);
    }
}
