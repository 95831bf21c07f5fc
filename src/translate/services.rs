//! The external-service kinds. Each turns into settings of every HTTP connection manager (and,
//! for LogService, TCP proxy) plus an upstream cluster for its server.
//!
//! AuthService (Envoy's ext_authz filter) and RateLimitService (Envoy's ratelimit filter), with the Mapping fields that steer them
//! (`bypass_auth`, `auth_context_extensions`, `labels`). Rules: docs/design.md#authservice and
//! docs/design.md#ratelimitservice.
//!
//! It runs in three steps around the rest of the translation: [`plan`] checks the services
//! (before the Mappings), [`mapping_fields`] reads each Mapping's fields (while Mappings are
//! planned) and [`apply`] puts filters, clusters and per-route settings into the assembled IR.

mod auth;
mod cluster;
mod ratelimit;
// LogService and TracingService (docs/design.md#logservice, docs/design.md#tracingservice): one
// pass over the assembled IR each.
pub(crate) mod collector;
pub(crate) mod log;
pub(crate) mod tracing;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::api::mapping::MappingSpec;
use crate::ir::{Cluster, ExtAuthz, Ir, RateLimit, RateLimitFilter, RouteAction, RouteAuth};

use crate::api::log_service::LogServiceSpec;
use crate::api::tracing_service::TracingServiceSpec;

use super::load::{Loaded, Meta, Obj};
use super::module::Settings;
use super::tls::Store;
use super::{Errors, Leftovers, Options};

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
    /// Parsed `labels`, every domain.
    pub labels: Option<Labels>,
    /// The route's rate limits, made from `labels` by [`apply`] for the first route of the
    /// Mapping and shared by the others.
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

/// Per-route inputs of [`apply`], taken from the Mapping plans before assembly consumes them.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// By route name (the Mapping's `namespace/name`); only looked up, never listed.
    fields: HashMap<String, Box<MappingFields>>,
    /// Ids of user Mappings in a namespace named `builtin`, whose route names look like the
    /// probe routes' (`builtin/<name>`): they are never mistaken for probe routes.
    builtin_lookalikes: BTreeSet<String>,
}

impl Routes {
    /// The parsed `labels` of a user Mapping, which the members of a group must agree on
    /// (docs/design.md#groups-canaries-and-weights); `None` without labels.
    pub fn labels(&self, meta: &Meta) -> Option<&Labels> {
        if self.fields.is_empty() {
            return None;
        }
        self.fields.get(&meta.id())?.labels.as_ref()
    }
}

/// One planned user Mapping as [`collect`] sees it: its identity and the fields
/// [`mapping_fields`] read (taken out of the plan).
pub(crate) struct MappingEntry<'m> {
    pub meta: &'m Meta,
    pub fields: Option<Box<MappingFields>>,
}

/// Collects the user Mappings' fields; reports context extensions an HTTP auth service cannot
/// receive (Envoy sends them to gRPC services only).
pub(crate) fn collect<'m>(
    mappings: impl IntoIterator<Item = MappingEntry<'m>>,
    plan: &Plan,
    errs: &mut Errors,
) -> Routes {
    let mut r = Routes::default();
    let mappings = mappings.into_iter();
    let most = mappings.size_hint().1.unwrap_or(0);
    for m in mappings {
        if m.meta.namespace == "builtin" {
            r.builtin_lookalikes.insert(m.meta.id());
        }
        let Some(f) = m.fields else {
            continue;
        };
        if !f.context_extensions.is_empty()
            && matches!(plan.ext_authz, Some(ExtAuthz::Service(_)))
            && !plan.auth_grpc
        {
            errs.push(m.meta.warning(
                "spec.auth_context_extensions",
                "has no effect: the AuthService uses proto: http (context extensions reach gRPC auth services only)",
            ));
        }
        if let (Some(rl), Some(labels)) = (&plan.rate_limit, &f.labels) {
            ratelimit::report_other_domains(m.meta, labels, &rl.domain, errs);
        }
        if r.fields.is_empty() {
            // Usually every Mapping or none has fields: one allocation, no rehashing.
            r.fields.reserve(most);
        }
        r.fields.insert(m.meta.id(), f);
    }
    r
}

/// What the assembly needs of the four external-service kinds: the outputs of their plans.
pub(crate) struct Planned<'a> {
    /// AuthService and RateLimitService ([`plan`]).
    pub plan: Plan,
    /// The Mappings' fields ([`collect`]).
    pub routes: Routes,
    pub log_services: &'a [Obj<LogServiceSpec>],
    pub tracing_services: &'a [Obj<TracingServiceSpec>],
    pub options: &'a Options,
}

/// The assembly step of the external services, once the listeners, route tables and the
/// Mappings' clusters are in the IR: filters and per-route settings (AuthService,
/// RateLimitService), loggers (LogService) and the tracer (TracingService) on every connection
/// manager, and the services' own clusters.
pub(crate) fn assemble(
    ir: &mut Ir,
    p: Planned<'_>,
    settings: &Settings,
    store: &mut Store,
    errs: &mut Errors,
    leftovers: &mut Leftovers,
) {
    apply(ir, p.plan, p.routes, store, leftovers);
    log::attach(p.log_services, settings, p.options, ir, errs);
    tracing::attach(p.tracing_services, settings, p.options, ir, errs);
}

/// Puts the filters on every HTTP connection manager, the services' clusters into the IR, and
/// each route's auth setting and rate limits.
/// The Mappings' fields, once read, go to `leftovers` (docs/design.md#deferred-freeing).
fn apply(
    ir: &mut Ir,
    plan: Plan,
    mut routes: Routes,
    store: &mut Store,
    leftovers: &mut Leftovers,
) {
    if plan.ext_authz.is_none() && plan.rate_limit.is_none() {
        leftovers.keep(routes);
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
    let fail_closed = matches!(plan.ext_authz, Some(ExtAuthz::FailClosed { .. }));
    let auth = plan.ext_authz.is_some();
    let mut label_less: Option<Arc<[RateLimit]>> = None;
    for t in &mut ir.route_tables {
        for r in t.virtual_hosts.iter_mut().flat_map(|v| &mut v.routes) {
            let name = r.name.as_deref().unwrap_or_default();
            let probe = name.starts_with("builtin/") && !routes.builtin_lookalikes.contains(name);
            let mut fields = routes.fields.get_mut(name).map(Box::as_mut);
            let redirect = matches!(r.action, RouteAction::Redirect(_));
            if auth {
                // Probe routes are never checked; a failed AuthService answers every other
                // route (docs/design.md#authservice).
                r.auth = if probe {
                    RouteAuth::Disabled
                } else if fail_closed {
                    RouteAuth::Default
                } else if redirect || fields.as_ref().is_some_and(|f| f.bypass_auth) {
                    RouteAuth::Disabled
                } else {
                    match &fields {
                        Some(f) if plan.auth_grpc && !f.context_extensions.is_empty() => {
                            RouteAuth::ContextExtensions(f.context_extensions.clone())
                        }
                        _ => RouteAuth::Default,
                    }
                };
            }
            if let Some(rl) = &plan.rate_limit
                && !probe
                && matches!(r.action, RouteAction::Forward(_))
            {
                // `labels: {}` counts as no labels (the defaults apply), as in Emissary.
                let own = fields.as_mut().and_then(|f| {
                    if f.limits.is_none()
                        && let Some(labels) = f.labels.take_if(|l| !l.is_empty())
                    {
                        let limits =
                            ratelimit::route_limits(Some(labels), &plan.defaults, &rl.domain);
                        f.limits = Some(limits.into());
                    }
                    f.limits.clone()
                });
                r.rate_limits = match own {
                    Some(limits) => limits,
                    None => label_less
                        .get_or_insert_with(|| {
                            ratelimit::route_limits(None, &plan.defaults, &rl.domain).into()
                        })
                        .clone(),
                };
            }
        }
    }
    leftovers.keep(routes);
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
