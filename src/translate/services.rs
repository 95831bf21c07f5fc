//! The external-service kinds. Each turns into settings of every HTTP connection manager (and,
//! for LogService, TCP proxy) plus an upstream cluster for its server.
//!
//! AuthService (Envoy's ext_authz filter) and RateLimitService (Envoy's ratelimit filter), with the Mapping fields that steer them
//! (`bypass_auth`, `auth_context_extensions`, `labels`). Rules: docs/design.md#authservice and
//! docs/design.md#ratelimitservice.
//!
//! It runs in steps around the rest of the translation: [`plan`] checks the services (before
//! the Mappings), [`mapping_fields`] reads each Mapping's fields (while Mappings are planned),
//! [`check`] reports fields the services cannot use, [`prepare_limits`] makes each Mapping's
//! rate limits once its group is formed, [`Plan::route`] gives each route its settings as the
//! route is built, and [`apply`] puts filters and clusters into the assembled IR.

mod auth;
mod cluster;
mod ratelimit;
// LogService and TracingService (docs/design.md#logservice, docs/design.md#tracingservice): one
// pass over the assembled IR each.
pub(crate) mod collector;
pub(crate) mod log;
pub(crate) mod tracing;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::mapping::MappingSpec;
use crate::ir::{Cluster, ExtAuthz, Ir, RateLimit, RateLimitFilter, Route, RouteAction, RouteAuth};

use crate::api::log_service::LogServiceSpec;
use crate::api::tracing_service::TracingServiceSpec;

use super::load::{Loaded, Meta, Obj};
use super::module::Settings;
use super::tls::Store;
use super::{Errors, Options};

pub(crate) use ratelimit::Labels;

/// The checked services, before the Mappings are planned.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub ext_authz: Option<ExtAuthz>,
    /// Whether the auth service speaks gRPC (only then do context extensions reach it).
    auth_grpc: bool,
    pub rate_limit: Option<RateLimitFilter>,
    /// Descriptors from the Module's `default_labels`.
    defaults: ratelimit::Defaults,
    /// The rate limits of a routed Mapping without labels of its own (the defaults), shared
    /// by every such route.
    label_less: Option<Arc<[RateLimit]>>,
    clusters: Vec<Cluster>,
}

/// Checks the AuthServices and RateLimitServices (at most one of each is used).
pub(crate) fn plan(
    loaded: &Loaded<'_>,
    settings: &Settings,
    store: &Store,
    options: &Options,
    errs: &mut Errors,
) -> Plan {
    let cx = cluster::Cx {
        settings,
        store,
        options,
    };
    let mut p = Plan::default();
    if let Some(a) = auth::plan(&loaded.auth_services, &cx, errs) {
        p.ext_authz = Some(a.filter);
        p.auth_grpc = a.grpc;
        p.clusters.extend(a.cluster);
    }
    p.defaults = ratelimit::defaults(settings, errs);
    if let Some((filter, c)) = ratelimit::plan(&loaded.rate_limit_services, &cx, errs) {
        p.label_less = Some(ratelimit::route_limits(None, &p.defaults, &filter.domain).into());
        p.rate_limit = Some(filter);
        p.clusters.push(c);
    }
    p
}

/// The first of `list` in processing order; every other one is reported and ignored (one
/// AuthService, one RateLimitService: docs/compatibility.md).
fn first_only<'a, T>(list: &'a [Obj<T>], kind: &str, errs: &mut Errors) -> Option<&'a Obj<T>> {
    let (first, rest) = list.split_first()?;
    for o in rest {
        errs.push(o.meta.error(
            "",
            format!(
                "only one {kind} is supported: {} is used, this one is ignored",
                first.meta.id()
            ),
        ));
    }
    Some(first)
}

/// A Mapping's AuthService and RateLimitService fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct MappingFields {
    pub bypass_auth: bool,
    pub context_extensions: BTreeMap<String, String>,
    /// Parsed `labels`, every domain; compared within a group, then made into `limits` by
    /// [`prepare_limits`].
    pub labels: Option<Labels>,
    /// The rate limits of the Mapping's routes (made from `labels` once, shared by them).
    limits: Option<Arc<[RateLimit]>>,
}

/// Reads `bypass_auth`, `auth_context_extensions` and `labels` (`labels` as written, see
/// `api::mapping::Present`); `None` when none is set.
/// An invalid value is reported (a warning) and left out.
pub(crate) fn mapping_fields(
    meta: &Meta,
    s: &MappingSpec,
    labels: Option<crate::api::doc::Doc<'_>>,
    errs: &mut Errors,
) -> Option<Box<MappingFields>> {
    if s.bypass_auth.is_none() && s.auth_context_extensions.is_none() && labels.is_none() {
        return None;
    }
    let mut f = MappingFields {
        bypass_auth: s.bypass_auth == Some(true),
        ..MappingFields::default()
    };
    if let Some(v) = &s.auth_context_extensions {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) => {
                            f.context_extensions.insert(k.clone(), s.clone());
                        }
                        other => errs.push(meta.warning(
                            &format!("spec.auth_context_extensions.{k}"),
                            format!("must be a string, got {other}; ignored"),
                        )),
                    }
                }
            }
            serde_json::Value::Null => {}
            _ => errs.push(meta.warning(
                "spec.auth_context_extensions",
                "must be a map of strings; ignored",
            )),
        }
    }
    if let Some(v) = labels {
        f.labels = Some(ratelimit::parse_labels(meta, v, errs));
    }
    Some(Box::new(f))
}

/// Reports, per user Mapping, context extensions an HTTP auth service cannot receive (Envoy
/// sends them to gRPC services only) and labels in no domain the RateLimitService uses.
pub(crate) fn check<'m>(
    mappings: impl IntoIterator<Item = (&'m Meta, &'m MappingFields)>,
    plan: &Plan,
    errs: &mut Errors,
) {
    for (meta, f) in mappings {
        if !f.context_extensions.is_empty()
            && matches!(plan.ext_authz, Some(ExtAuthz::Service(_)))
            && !plan.auth_grpc
        {
            errs.push(meta.warning(
                "spec.auth_context_extensions",
                "has no effect: the AuthService uses proto: http (context extensions reach gRPC auth services only)",
            ));
        }
        if let (Some(rl), Some(labels)) = (&plan.rate_limit, &f.labels) {
            ratelimit::report_other_domains(meta, labels, &rl.domain, errs);
        }
    }
}

/// Once the groups are formed (their members' labels compared): each Mapping's labels become
/// the rate limits all its routes share. `labels: {}` counts as no labels (the defaults
/// apply), as in Emissary.
pub(crate) fn prepare_limits<'m>(
    fields: impl IntoIterator<Item = &'m mut MappingFields>,
    plan: &Plan,
) {
    let Some(rl) = &plan.rate_limit else {
        return;
    };
    for f in fields {
        if let Some(labels) = f.labels.take_if(|l| !l.is_empty()) {
            f.limits =
                Some(ratelimit::route_limits(Some(labels), &plan.defaults, &rl.domain).into());
        }
    }
}

impl Plan {
    /// A route's auth setting and rate limits, as its Mapping's fields (`None`: it set none)
    /// ask. `builtin`: a probe route, never checked nor limited; a failed AuthService answers
    /// every other route (docs/design.md#authservice). Redirects are not checked, as in
    /// Emissary, and only forwarding routes are rate limited.
    pub(crate) fn route(&self, fields: Option<&MappingFields>, builtin: bool, r: &mut Route) {
        let redirect = matches!(r.action, RouteAction::Redirect(_));
        if let Some(a) = &self.ext_authz {
            r.auth = if builtin {
                RouteAuth::Disabled
            } else if matches!(a, ExtAuthz::FailClosed { .. }) {
                RouteAuth::Default
            } else if redirect || fields.is_some_and(|f| f.bypass_auth) {
                RouteAuth::Disabled
            } else {
                match fields {
                    Some(f) if self.auth_grpc && !f.context_extensions.is_empty() => {
                        RouteAuth::ContextExtensions(f.context_extensions.clone())
                    }
                    _ => RouteAuth::Default,
                }
            };
        }
        if let Some(label_less) = &self.label_less
            && !builtin
            && matches!(r.action, RouteAction::Forward(_))
        {
            r.rate_limits = fields
                .and_then(|f| f.limits.clone())
                .unwrap_or_else(|| label_less.clone());
        }
    }
}

/// What the assembly needs of the four external-service kinds: the outputs of their plans.
pub(crate) struct Planned<'a> {
    /// AuthService and RateLimitService ([`plan`]); each route's own settings are made
    /// where the route is ([`Plan::route`]).
    pub plan: Plan,
    pub log_services: &'a [Obj<LogServiceSpec>],
    pub tracing_services: &'a [Obj<TracingServiceSpec>],
    pub options: &'a Options,
}

/// The assembly step of the external services, once the listeners, route tables and the
/// Mappings' clusters are in the IR: filters (AuthService, RateLimitService), loggers
/// (LogService) and the tracer (TracingService) on every connection manager, and the services'
/// own clusters. The per-route settings are already on the routes ([`Plan::route`]).
pub(crate) fn assemble(
    ir: &mut Ir,
    p: Planned<'_>,
    settings: &Settings,
    store: &mut Store,
    errs: &mut Errors,
) {
    apply(ir, p.plan, store);
    log::attach(p.log_services, settings, p.options, ir, errs);
    tracing::attach(p.tracing_services, settings, p.options, ir, errs);
}

/// Puts the filters on every HTTP connection manager and the services' clusters into the IR
/// (each route's own settings are already there: [`Plan::route`]).
fn apply(ir: &mut Ir, plan: Plan, store: &mut Store) {
    if plan.ext_authz.is_none() && plan.rate_limit.is_none() {
        return;
    }
    for l in &mut ir.listeners {
        for fc in &mut l.filter_chains {
            if let crate::ir::ChainAction::Http(h) = &mut fc.action {
                h.ext_authz = plan.ext_authz.clone();
                h.rate_limit = plan.rate_limit.clone();
            }
        }
    }
    // `ir.clusters` is sorted by name (the Mappings' clusters, deduplicated): each service
    // cluster is placed by binary search, as `collector::add_cluster` does, instead of a scan
    // and a re-sort of thousands of clusters.
    debug_assert!(ir.clusters.is_sorted_by(|a, b| a.name <= b.name));
    let position =
        |ir: &Ir, name: &str| ir.clusters.binary_search_by(|x| x.name.as_str().cmp(name));
    for mut c in plan.clusters {
        let base = c.name.clone();
        let mut n = 0;
        while position(ir, &c.name).is_ok() {
            n += 1;
            c.name = format!("{base}-{n}");
        }
        if c.name != base {
            rename_cluster(ir, &base, &c.name);
        }
        if let Some(t) = &c.tls {
            for name in t.certificate.iter().chain(&t.validation) {
                store.register(name);
            }
        }
        let (Ok(at) | Err(at)) = position(ir, &c.name);
        ir.clusters.insert(at, c);
    }
}

/// A service cluster whose name a Mapping's cluster already has is renamed; so are the
/// filters' references to it.
fn rename_cluster(ir: &mut Ir, from: &str, to: &str) {
    for l in &mut ir.listeners {
        for fc in &mut l.filter_chains {
            if let crate::ir::ChainAction::Http(h) = &mut fc.action {
                if let Some(ExtAuthz::Service(a)) = &mut h.ext_authz
                    && a.cluster == from
                {
                    a.cluster = to.to_string();
                }
                if let Some(r) = &mut h.rate_limit
                    && r.cluster == from
                {
                    r.cluster = to.to_string();
                }
            }
        }
    }
}
