//! Phase 3, plan TCPMappings (docs/design.md#tcpmapping): each TCPMapping checked and turned
//! into a [`TcpPlan`] with its upstream cluster (built by `upstream`). The group phase groups
//! them by `(address, port, host)`; the assembly makes their tcp_proxy filter chains.

use crate::api::tcp_mapping::TcpMappingSpec;
use crate::ir::Cluster;

use super::Errors;
use super::load::{Meta, Obj};
use super::upstream::{self, Context, Destination, Fail, fail};

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
    pub consistency: String,
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
    let req = upstream::request!(meta, service, s);
    let destination = Destination::parse(&req, cx.settings, errs)?;
    if let Some(w) = s.weight
        && w > 100
    {
        return Err(fail("weight", format!("{w} is over 100")));
    }
    if let Some(h) = &s.host {
        super::host::check_glob(h).map_err(|e| fail("host", e))?;
    }
    let cluster = upstream::build(destination, &req, cx, errs)?.cluster;
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
