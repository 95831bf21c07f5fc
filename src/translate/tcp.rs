//! TCPMappings (docs/design.md#tcpmapping):
//! plans, groups by `(address, port, host)`, and the tcp_proxy
//! filter chains, with weights emitted as shares (not Emissary's cumulative thresholds).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::tcp_mapping::TcpMappingSpec;
use crate::ir::{
    ChainAction, Cluster, Discovery, DownstreamTls, Endpoint, FilterChain, TcpProxy, UpstreamTls,
    WeightedCluster,
};

use super::endpoint::{Resolution, Resolver};
use super::load::{Meta, Obj};
use super::mapping::{Context, cluster_name};
use super::service::{Service, sanitize};
use super::{Errors, group, policy};

/// A TCPMapping that passed its checks.
#[derive(Debug, Clone)]
pub(crate) struct TcpPlan {
    pub meta: Meta,
    pub address: String,
    pub port: u16,
    /// SNI to match (and terminate TLS for).
    pub host: Option<String>,
    pub cluster: Cluster,
    pub weight: Option<u32>,
    pub idle_timeout_ms: Option<u64>,
    /// Fields that must agree within a group, serialized.
    consistency: String,
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

type Fail = (String, String);

fn fail(field: &str, msg: impl Into<String>) -> Fail {
    (format!("spec.{field}"), msg.into())
}

pub(crate) fn plan_all(
    objs: &[Obj<TcpMappingSpec>],
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
) -> Vec<TcpPlan> {
    objs.iter()
        .filter_map(|o| match plan(o, cx, errs) {
            Ok(p) => Some(p),
            Err((f, m)) => {
                errs.push(o.meta.error(&f, m));
                None
            }
        })
        .collect()
}

fn plan(
    o: &Obj<TcpMappingSpec>,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
) -> Result<TcpPlan, Fail> {
    let (settings, store, options) = (cx.settings, cx.store, cx.options);
    let s = &o.spec;
    let meta = &o.meta;
    let port = match s.port {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => return Err(fail("port", format!("{p} is not in 1-65535"))),
        None => return Err(fail("port", "required")),
    };
    let service = s
        .service
        .as_deref()
        .ok_or_else(|| fail("service", "required"))?;
    let mut svc = Service::parse(service).map_err(|e| fail("service", e))?;
    let resolver = match s.resolver.as_deref() {
        Some(r) => Some(Resolver::parse(r).map_err(|e| fail("resolver", e))?),
        None => settings.resolver,
    };
    if let Some(w) = s.weight
        && w > 100
    {
        return Err(fail("weight", format!("{w} is over 100")));
    }
    if let Some(h) = &s.host {
        super::host::check_glob(h).map_err(|e| fail("host", e))?;
    }
    if meta.namespace != options.ambassador_namespace
        && !settings.use_ambassador_namespace_for_service_resolution
    {
        svc.qualify(&meta.namespace);
    }
    let (tls, ctx_name) = match &s.tls {
        None | Some(Value::Null) | Some(Value::Bool(false)) => (None, None),
        Some(Value::Bool(true)) => (Some(UpstreamTls::plain()), None),
        Some(Value::String(name)) => {
            let (tls, ctx_name) = store
                .origination(name, &meta.namespace, svc.https)
                .map_err(|e| fail("tls", e))?;
            (Some(tls), ctx_name)
        }
        Some(_) => return Err(fail("tls", "must be a TLSContext name")),
    };
    let tls = tls.or_else(|| (svc.https == Some(true)).then(UpstreamTls::plain));
    let circuit_breakers = match &s.circuit_breakers {
        Some(cb) => policy::circuit_breakers(cb)
            .map_err(|(f, e)| fail(&format!("circuit_breakers{f}"), e))?,
        None => settings.circuit_breakers.clone(),
    };
    let dns_family = policy::dns_family(
        s.enable_ipv4.unwrap_or(settings.enable_ipv4),
        s.enable_ipv6.unwrap_or(settings.enable_ipv6),
    )
    .map_err(|(f, e)| fail(&f, e))?;
    let mut parts: Vec<String> = vec!["cluster".into()];
    parts.extend(s.cluster_tag.clone());
    parts.push(svc.display());
    if tls.is_some() {
        parts.push("otls".into());
        parts.extend(ctx_name);
    }
    parts.push(meta.namespace.clone());
    parts.extend(circuit_breakers.iter().map(policy::circuit_breaker_token));
    let port_up = svc.port_or_default(tls.is_some());
    let (resolution, warning) = cx.index.resolve(
        resolver,
        &svc.host,
        port_up,
        dns_family,
        &options.ambassador_namespace,
    );
    if let Some(w) = warning {
        errs.push(meta.warning("spec.service", w));
    }
    let discovery = match resolution {
        Resolution::Eds(service_name) => Discovery::Eds { service_name },
        Resolution::Dns => Discovery::StrictDns(vec![Endpoint::new(svc.host.clone(), port_up)]),
    };
    let mut cluster = Cluster::new(cluster_name(&parts), discovery);
    cluster.alt_stat_name = Some(
        s.stats_name
            .clone()
            .unwrap_or_else(|| sanitize(&svc.authority())),
    );
    cluster.circuit_breakers = circuit_breakers;
    cluster.tls = tls;
    cluster.dns_family = dns_family;
    let consistency = serde_json::to_string(&(
        &s.tls,
        &s.circuit_breakers,
        s.enable_ipv4,
        s.enable_ipv6,
        s.idle_timeout_ms,
    ))
    .unwrap_or_default();
    Ok(TcpPlan {
        meta: meta.clone(),
        address: s.address.clone().unwrap_or_else(|| "0.0.0.0".into()),
        port,
        host: s.host.clone(),
        cluster,
        // `weight: 0` is a weight (no traffic), not "unset" (docs/compatibility.md).
        weight: s.weight,
        idle_timeout_ms: s.idle_timeout_ms,
        consistency,
    })
}

/// Groups by `(address, port, host)`; members that disagree with their group, or push its
/// weights over 100, are dropped with an error.
pub(crate) fn groups(plans: &[TcpPlan], errs: &mut Errors) -> Vec<TcpGroup> {
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

impl TcpGroup {
    /// Stable chain name: the first member's `namespace/name`.
    pub fn chain_name(&self, plans: &[TcpPlan]) -> String {
        format!("tcphost-{}", plans[self.members[0]].meta.id())
    }

    /// The tcp_proxy chain; weights are shares.
    pub fn chain(
        &self,
        plans: &[TcpPlan],
        stat_prefix: String,
        tls: Option<DownstreamTls>,
    ) -> FilterChain {
        let weights: Vec<Option<u32>> = self.members.iter().map(|&i| plans[i].weight).collect();
        let clusters = group::shares(&weights)
            .into_iter()
            .filter(|(_, share)| *share > 0)
            .map(|(pos, share)| WeightedCluster {
                name: plans[self.members[pos]].cluster.name.clone(),
                weight: share,
            })
            .collect();
        FilterChain {
            name: self.chain_name(plans),
            server_names: self.host.iter().filter(|h| *h != "*").cloned().collect(),
            match_tls: self.host.is_some(),
            tls,
            action: ChainAction::Tcp(TcpProxy {
                stat_prefix,
                clusters,
                idle_timeout_ms: plans[self.members[0]].idle_timeout_ms,
                // LogService loggers are added after assembly (translate::services::log).
                access_logs: Vec::new(),
            }),
        }
    }

    /// Reports a problem on every member (the group is left out).
    pub fn reject(&self, plans: &[TcpPlan], field: &str, msg: &str, errs: &mut Errors) {
        for &i in &self.members {
            errs.push(plans[i].meta.error(field, msg));
        }
    }
}
