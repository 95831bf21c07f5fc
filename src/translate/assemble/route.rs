//! Assembly step: the routes of one vhost: the groups associated with a Host, their canary thresholds, and the
//! security-model variants of each route (docs/design.md#security-models-and-route-variants,
//! docs/design.md#groups-canaries-and-weights, docs/design.md#route-order).

use crate::api::host::InsecureAction;
use crate::ir::{
    Forward, HeaderMatch, Redirect, RedirectCode, Route, RouteAction, RuntimeFraction,
    WeightedCluster,
};

use crate::translate::group::{self, Group};
use crate::translate::host::{HostPlan, globs_compatible};
use crate::translate::listener::Security;
use crate::translate::mapping::{HostGlob, MappingPlan, Target};
use crate::translate::service::sanitize;
use crate::translate::services;

/// Is the Mapping associated with the Host (docs/design.md#associating-mappings-with-hosts)?
pub(crate) fn associated(host: &HostPlan, plan: &MappingPlan) -> bool {
    if plan.builtin {
        return true;
    }
    let glob_ok = |required: bool| match &plan.host {
        None => !required,
        Some(HostGlob::Regex(_)) => true,
        Some(HostGlob::Glob(g)) => globs_compatible(g, &host.hostname),
    };
    match &host.selector {
        Some(sel) => sel.matches(&plan.meta.labels) && glob_ok(false),
        None => glob_ok(true),
    }
}

/// The routes of one vhost, in order. Marks in `routed` every plan that got a route.
pub(crate) fn vhost_routes(
    host: &HostPlan,
    security: Security,
    services: &services::Plan,
    plans: &[MappingPlan],
    groups: &[Group],
    routed: &mut [bool],
) -> Vec<Route> {
    // Not sized up front: this runs for every vhost, and a vhost gets only the Mappings
    // associated with its Host.
    let mut routes = Vec::new();
    // This runs once per group, for every group of the configuration: one buffer for all.
    let mut present: Vec<usize> = Vec::new();
    for g in groups {
        present.clear();
        present.extend(
            g.members
                .iter()
                .copied()
                .filter(|&i| associated(host, &plans[i])),
        );
        if present.is_empty() {
            continue;
        }
        if let Some(s) = g.shadow {
            routed[s] = true;
        }
        // A lone Mapping takes all of its group's traffic (as `group::thresholds` gives it).
        let lone;
        let shared;
        let thresholds: &[(usize, u32)] = if let [i] = present[..] {
            lone = [(i, 100)];
            &lone
        } else {
            shared = group::thresholds(plans, &present);
            &shared
        };
        for &(i, threshold) in thresholds {
            routed[i] = true;
            let first = routes.len();
            let plan = &plans[i];
            variants(
                host.insecure,
                security,
                plan,
                g,
                plans,
                threshold,
                &mut routes,
            );
            for r in &mut routes[first..] {
                services.route(plan.services.as_deref(), plan.builtin, r);
            }
        }
    }
    routes
}

/// The routes one Mapping yields under the Listener's security model, appended to `out`
/// (docs/design.md#security-models-and-route-variants). Legate collapses
/// Emissary's XFP+Route pair (`XFP==https` → action, then → action) into the one route it is
/// equivalent to, and exempts the probe routes (and ACME) from the https redirect.
fn variants(
    insecure: InsecureAction,
    security: Security,
    plan: &MappingPlan,
    g: &Group,
    plans: &[MappingPlan],
    threshold: u32,
    out: &mut Vec<Route>,
) {
    let action = action_route(plan, g, plans, threshold);
    if plan.builtin || plan.acme {
        out.push(action);
        return;
    }
    let with_xfp = |mut r: Route| {
        r.matcher
            .headers
            .push(HeaderMatch::exact("x-forwarded-proto", "https"));
        r
    };
    let redirect = |action: &Route| {
        let mut r = Route::new(
            action.matcher.clone(),
            RouteAction::Redirect(Redirect {
                https: true,
                host: None,
                port: None,
                path: None,
                code: RedirectCode::MovedPermanently,
                strip_query: false,
            }),
        );
        r.name = action.name.as_ref().map(|n| format!("{n}/https-redirect"));
        r
    };
    match (security, insecure) {
        (Security::Secure, _) | (Security::Xfp | Security::Insecure, InsecureAction::Route) => {
            out.push(action);
        }
        (Security::Xfp, InsecureAction::Redirect) => {
            let r = redirect(&action);
            out.push(with_xfp(action));
            out.push(r);
        }
        (Security::Xfp, InsecureAction::Reject) => out.push(with_xfp(action)),
        (Security::Insecure, InsecureAction::Redirect) => out.push(redirect(&action)),
        (Security::Insecure, InsecureAction::Reject) => {}
    }
}

/// The route of one Mapping of a group: the one place where what a Mapping's plan carries
/// for its route (its action, per-route settings, and the group's merged settings) becomes
/// the IR route.
fn action_route(plan: &MappingPlan, g: &Group, plans: &[MappingPlan], threshold: u32) -> Route {
    let mut matcher = plan.matcher.clone();
    let action = match &plan.action.target {
        Target::Redirect(r) => RouteAction::Redirect(r.clone()),
        Target::Failed { field, message } => RouteAction::DirectResponse {
            status: 503,
            body: Some(format!(
                "Mapping {} cannot be served: {field}: {message}\n",
                plan.meta.id()
            )),
        },
        Target::Cluster(c) => {
            let m = &g.members;
            RouteAction::Forward(Forward {
                clusters: vec![WeightedCluster {
                    name: c.name.clone(),
                    weight: 100,
                }],
                prefix_rewrite: plan.action.prefix_rewrite.clone(),
                regex_rewrite: group::last_set(plans, m, |p| p.action.regex_rewrite.as_ref())
                    .cloned(),
                host_rewrite: plan.action.host_rewrite.clone(),
                timeout_ms: plan.timeout_ms,
                idle_timeout_ms: plan.idle_timeout_ms,
                retry: group::last_set(plans, m, |p| p.action.retry.as_ref()).cloned(),
                upgrades: group::last_set(plans, m, |p| {
                    (!p.action.upgrades.is_empty()).then_some(&p.action.upgrades)
                })
                .cloned()
                .unwrap_or_default(),
                mirrors: g.mirror.iter().cloned().collect(),
                hash_policy: plan
                    .action
                    .hash_policy
                    .iter()
                    .map(|h| (**h).clone())
                    .collect(),
            })
        }
    };
    if threshold < 100 {
        let key = plan
            .cluster_name()
            .map_or_else(|| sanitize(&plan.meta.id()), str::to_string);
        matcher.runtime_fraction = Some(RuntimeFraction {
            percent: threshold,
            runtime_key: format!("routing.traffic_shift.{key}"),
        });
    }
    let mut r = Route::new(matcher, action);
    r.name = Some(if plan.builtin {
        format!("builtin/{}", plan.meta.name)
    } else {
        plan.meta.id()
    });
    r.request_headers_to_add = g.add_request_headers.clone();
    r.request_headers_to_remove = g.remove_request_headers.clone();
    r.response_headers_to_add = g.add_response_headers.clone();
    r.response_headers_to_remove = g.remove_response_headers.clone();
    r.cors = group::last_set(plans, &g.members, |p| p.action.cors.as_ref()).cloned();
    r
}
