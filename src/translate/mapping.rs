//! Phase 3, plan Mappings (docs/design.md#mapping): each Mapping checked and turned into a
//! [`MappingPlan`] — its route match, its per-route and per-group settings, its group
//! identity and route-order key, and its cluster (built by `upstream`) or redirect.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::api::doc::Document;
use crate::api::mapping::MappingSpec;
use crate::ir::{
    Cluster, Cors, Discovery, Endpoint, HashPolicy, HeaderMatch, HeaderValue, HostRewrite,
    PathMatch, QueryMatch, Redirect, RedirectCode, RedirectPath, RegexRewrite, RetryPolicy,
    RouteMatch, StringMatch, UpstreamTls,
};

use super::cache::{self, Entry, Plans};
use super::host::{authority_matcher, check_glob};
use super::load::{Meta, Untyped, mapping_spec};
use super::module::Settings;
use super::order::{self, Condition, GroupKey, SortKey};
use super::service::{Service, sanitize};
use super::upstream::{self, Context, Fail, Http, Request, Upstream, cluster_name, fail};
use super::{Errors, Options, policy};

/// What a Mapping's host association uses (docs/design.md#associating-mappings-with-hosts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostGlob {
    Glob(String),
    /// `host_regex: true`: associates with every Host.
    Regex(String),
}

/// Where a Mapping's traffic goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Cluster(Box<Cluster>),
    Redirect(Redirect),
    /// The target could not be built (the error is reported on the Mapping): the route stays
    /// and answers 503 naming the error.
    Failed {
        field: String,
        message: String,
    },
}

impl Target {
    /// What is left where the cluster was moved into the IR (allocates nothing).
    pub fn taken() -> Target {
        Target::Failed {
            field: String::new(),
            message: String::new(),
        }
    }
}

/// A Mapping that passed its checks.
#[derive(Debug, Clone)]
pub(crate) struct MappingPlan {
    pub meta: Meta,
    /// The probe (and diagnostics) routes: on every Host, no redirect, no Module policies.
    pub builtin: bool,
    pub host: Option<HostGlob>,
    pub matcher: RouteMatch,
    pub group_key: GroupKey,
    pub sort: SortKey,
    /// The Mapping as written (`None` for the built-ins): what [`MappingPlan::consistency`] is
    /// made from when the Mapping shares its group with another.
    pub written: Option<Arc<Document>>,
    pub action: Action,
    pub weight: Option<u32>,
    pub shadow: bool,
    pub timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    /// Exactly `/.well-known/acme-challenge/`: always routed, never redirected.
    pub acme: bool,
    /// AuthService/RateLimitService fields (`bypass_auth`, `auth_context_extensions`,
    /// `labels`); `None` when none is set. Its labels become the routes' rate limits
    /// (`services::prepare_limits`) once the groups are formed.
    pub services: Option<Box<super::services::MappingFields>>,
}

impl MappingPlan {
    /// The parsed `labels`, until they are made into rate limits; `None` without labels.
    pub fn labels(&self) -> Option<&super::services::Labels> {
        self.services.as_ref()?.labels.as_ref()
    }

    /// The fields that must agree within a group, serialized
    /// (docs/design.md#groups-canaries-and-weights); `labels`, which must agree too, are
    /// compared as parsed ([`MappingPlan::labels`]). Made again from the Mapping as written,
    /// only for the members of a group of two or more: most Mappings are alone in their group,
    /// and serializing the fields for every Mapping was a tenth of planning it. Typing the
    /// same document again gives the same spec; its problems were reported when it was planned.
    pub fn consistency(&self) -> String {
        let Some(spec) = self.written.as_deref().and_then(|d| d.get("spec")) else {
            return String::new();
        };
        let Some(s) = mapping_spec(&self.meta, spec, &mut Errors::default()) else {
            return String::new();
        };
        let mut headers_spec = s.headers.clone().unwrap_or_default();
        // Only to take `:authority` out as planning did; a bad host failed planning already.
        let _ = host_glob(&s, &mut headers_spec);
        consistency(&s, &headers_spec, s.prefix.as_deref().unwrap_or_default())
    }

    pub fn cluster_name(&self) -> Option<&str> {
        match &self.action.target {
            Target::Cluster(c) => Some(&c.name),
            Target::Redirect(_) | Target::Failed { .. } => None,
        }
    }
}

/// Below this many Mappings, planning stays on the calling thread.
const PARALLEL_MIN: usize = 512;

/// Types and plans every Mapping, after the built-ins, in input order (each typed spec is
/// dropped once planned). A large input is planned in two halves on two threads (each
/// Mapping's plan depends only on the Mapping and the shared, read-only context); the halves
/// and their errors are joined in order. With a cache (`translate::cache`), a Mapping planned
/// before from the same content and inputs gets its cached plan and errors instead.
pub(crate) fn plan_all(
    mut mappings: Vec<Untyped<'_>>,
    cx: &mut Context<'_, '_>,
    mut cache: Option<&mut Plans>,
    errs: &mut Errors,
) -> Vec<MappingPlan> {
    let mut out = builtins(cx.settings, cx.options);
    out.reserve(mappings.len());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut fresh = Vec::new();
    if mappings.len() < PARALLEL_MIN || threads < 2 {
        plan_some(mappings, cx, errs, &mut out, cache.as_deref(), &mut fresh);
    } else {
        let second = mappings.split_off(mappings.len() / 2);
        let first = mappings;
        let mut index = cx.index.fork();
        let mut cx2 = Context {
            settings: cx.settings,
            store: cx.store,
            options: cx.options,
            index: &mut index,
        };
        let mut errs2 = Errors::default();
        let mut out2 = Vec::with_capacity(second.len());
        let mut fresh2 = Vec::new();
        let shared = cache.as_deref();
        std::thread::scope(|scope| {
            let worker = scope
                .spawn(|| plan_some(second, &mut cx2, &mut errs2, &mut out2, shared, &mut fresh2));
            plan_some(first, cx, errs, &mut out, shared, &mut fresh);
            // A panic while planning is a bug; it propagates as it would on one thread.
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        });
        cx.index.absorb(index);
        errs.0.extend(errs2.0);
        out.extend(out2);
        fresh.extend(fresh2);
    }
    if let Some(cache) = cache.as_mut() {
        cache.update(fresh);
    }
    out
}

fn plan_some(
    mappings: Vec<Untyped<'_>>,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
    out: &mut Vec<MappingPlan>,
    cache: Option<&Plans>,
    fresh: &mut Vec<(u64, Entry)>,
) {
    for m in mappings {
        let Some(cache) = cache else {
            plan_one(m, cx, errs, out);
            continue;
        };
        let key = cache::key(&m.meta);
        let raw = m.raw;
        if let Some(entry) = cache.get(key, raw)
            && cx.index.replay(&entry.lookups)
        {
            cache.reuse(entry);
            for e in &entry.errors {
                errs.push(e.clone());
            }
            out.extend(entry.plan.as_deref().cloned());
            continue;
        }
        let (errors_before, planned_before) = (errs.0.len(), out.len());
        cx.index.start_log();
        plan_one(m, cx, errs, out);
        let lookups = cx.index.take_log();
        let plan = out[planned_before..].first().cloned();
        let errors = errs.0[errors_before..].to_vec();
        fresh.push((key, Entry::new(raw, plan, errors, lookups)));
    }
}

/// Types and plans one Mapping: its plan into `out` (taking its [`Meta`]: no copy), or its
/// errors into `errs`.
fn plan_one(
    m: Untyped<'_>,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
    out: &mut Vec<MappingPlan>,
) {
    let Some(spec) = mapping_spec(&m.meta, m.spec, errs) else {
        return;
    };
    // `labels` as written: typing only noted that it is there (`api::mapping::Present`).
    let labels = m.spec.get("labels").filter(|v| !v.is_null());
    match plan(&m.meta, &m.raw.value, &spec, labels, cx, errs) {
        Ok(mut p) => {
            p.meta = m.meta;
            out.push(p);
        }
        Err((field, msg)) => errs.push(m.meta.error(&field, msg)),
    }
}

fn compile(field: &str, re: &str) -> Result<(), Fail> {
    regex::Regex::new(re).map(|_| ()).map_err(|e| {
        fail(
            field,
            format!("regex {re:?} does not compile: {}", one_line(&e)),
        )
    })
}

fn one_line(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Header / query values: a string or number is exact, `true` means present.
fn exact_or_present(field: &str, v: &Value) -> Result<StringMatch, Fail> {
    match v {
        Value::String(s) => Ok(StringMatch::Exact(s.clone())),
        Value::Number(n) => Ok(StringMatch::Exact(n.to_string())),
        Value::Bool(true) => Ok(StringMatch::Present),
        _ => Err(fail(field, "must be a string, or true for presence")),
    }
}

/// The path a Mapping matches: `prefix`, taken as a prefix, a regex or an exact path.
struct PathSpec {
    prefix: String,
    regex: bool,
    exact: bool,
}

impl PathSpec {
    /// A regex or exact route, where the default rewrite replaces the whole path.
    fn whole(&self) -> bool {
        self.regex || self.exact
    }
}

/// Plans one Mapping, in the order its fields decide: the required fields and the route
/// match (a Mapping whose match is invalid is left out), then the action (once the match is
/// valid the Mapping keeps its route: a target that cannot be built answers 503 naming the
/// error instead of letting the requests fall through to a less specific Mapping,
/// docs/compatibility.md, "fails closed"), then the group identity and route-order key.
fn plan(
    meta: &Meta,
    written: &Arc<Document>,
    s: &MappingSpec,
    labels: Option<crate::api::doc::Doc<'_>>,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
) -> Result<MappingPlan, Fail> {
    let (path, service) = required_fields(s)?;
    // The header conditions as written, `:authority` taken out when it is the host glob.
    let mut headers_spec = s.headers.clone().unwrap_or_default();
    let host = host_glob(s, &mut headers_spec)?;
    let matcher = route_match(s, &path, &headers_spec, host.as_ref())?;
    let action =
        action(meta, s, &service, path.whole(), cx, errs).unwrap_or_else(|(field, message)| {
            errs.push(meta.error(&field, message.clone()));
            Action::failed(field, message)
        });
    warn_unsupported(meta, s, errs);
    // AuthService/RateLimitService: bypass_auth, auth_context_extensions, labels.
    let services = super::services::mapping_fields(meta, s, labels, errs);
    let (group_key, sort) = identity(s, &headers_spec, host.as_ref(), &path.prefix);
    Ok(MappingPlan {
        // The caller moves the Mapping's own in (`plan_one`).
        meta: Meta::empty(),
        builtin: false,
        host,
        acme: path.prefix == "/.well-known/acme-challenge/",
        matcher,
        group_key,
        sort,
        written: Some(written.clone()),
        action,
        // `weight: 0` is a weight (no traffic), not "unset" (docs/compatibility.md).
        weight: s.weight,
        shadow: s.shadow == Some(true),
        timeout_ms: Some(s.timeout_ms.unwrap_or(cx.settings.request_timeout_ms)),
        idle_timeout_ms: s.idle_timeout_ms,
        services,
    })
}

/// `prefix` (a valid regex, or starting with `/`) and `service` are required; fields legate
/// does not support, and a weight over 100, leave the Mapping out.
fn required_fields(s: &MappingSpec) -> Result<(PathSpec, String), Fail> {
    let path = PathSpec {
        prefix: s.prefix.clone().ok_or_else(|| fail("prefix", "required"))?,
        regex: s.prefix_regex == Some(true),
        exact: s.prefix_exact == Some(true),
    };
    if path.regex {
        compile("prefix", &path.prefix)?;
    } else if !path.prefix.starts_with('/') {
        return Err(fail(
            "prefix",
            format!("{:?} must start with /", path.prefix),
        ));
    }
    let service = s
        .service
        .clone()
        .ok_or_else(|| fail("service", "required"))?;
    if s.outlier_detection.is_some() {
        return Err(fail("outlier_detection", "not supported"));
    }
    if s.error_response_overrides.is_some() {
        return Err(fail("error_response_overrides", "not supported yet"));
    }
    if let Some(w) = s.weight
        && w > 100
    {
        return Err(fail("weight", format!("{w} is over 100")));
    }
    Ok((path, service))
}

/// The host the Mapping associates with (docs/design.md#associating-mappings-with-hosts):
/// `hostname`, else `host` (a regex with `host_regex`), else a literal `:authority` header,
/// which then leaves `headers`.
fn host_glob(
    s: &MappingSpec,
    headers_spec: &mut BTreeMap<String, Value>,
) -> Result<Option<HostGlob>, Fail> {
    let host = if let Some(h) = &s.hostname {
        check_glob(h).map_err(|e| fail("hostname", e))?;
        Some(HostGlob::Glob(h.clone()))
    } else if let Some(h) = &s.host {
        if s.host_regex == Some(true) {
            compile("host", h)?;
            Some(HostGlob::Regex(h.clone()))
        } else if h.contains('*') {
            return Err(fail("host", "\"*\" is not allowed in host; use hostname"));
        } else {
            Some(HostGlob::Glob(h.clone()))
        }
    } else if let Some(Value::String(a)) = headers_spec.get(":authority") {
        Some(HostGlob::Glob(a.clone()))
    } else {
        None
    };
    if matches!(host, Some(HostGlob::Glob(_))) && s.hostname.is_none() && s.host.is_none() {
        headers_spec.remove(":authority");
    }
    Ok(host)
}

/// The route match, conditions in docs/design.md#matching order: headers, regex headers,
/// the host, the method; then query parameters and regex query parameters.
fn route_match(
    s: &MappingSpec,
    path: &PathSpec,
    headers_spec: &BTreeMap<String, Value>,
    host: Option<&HostGlob>,
) -> Result<RouteMatch, Fail> {
    let header = |name: &str, matcher| HeaderMatch {
        name: name.into(),
        matcher,
        invert: false,
    };
    let mut headers = Vec::new();
    for (k, v) in headers_spec {
        headers.push(header(k, exact_or_present(&format!("headers.{k}"), v)?));
    }
    for (k, v) in s.regex_headers.iter().flatten() {
        compile(&format!("regex_headers.{k}"), v)?;
        headers.push(header(k, StringMatch::Regex(v.clone())));
    }
    match host {
        Some(HostGlob::Glob(g)) => {
            if let Some(matcher) = authority_matcher(g) {
                headers.push(header(":authority", matcher));
            }
        }
        Some(HostGlob::Regex(r)) => {
            headers.push(header(":authority", StringMatch::Regex(r.clone())));
        }
        None => {}
    }
    if let Some(method) = &s.method {
        let matcher = if s.method_regex == Some(true) {
            compile("method", method)?;
            StringMatch::Regex(method.clone())
        } else {
            StringMatch::Exact(method.to_ascii_uppercase())
        };
        headers.push(header(":method", matcher));
    }
    let mut query = Vec::new();
    for (k, v) in s.query_parameters.iter().flatten() {
        query.push(QueryMatch {
            name: k.clone(),
            matcher: exact_or_present(&format!("query_parameters.{k}"), v)?,
        });
    }
    for (k, v) in s.regex_query_parameters.iter().flatten() {
        compile(&format!("regex_query_parameters.{k}"), v)?;
        query.push(QueryMatch {
            name: k.clone(),
            matcher: StringMatch::Regex(v.clone()),
        });
    }
    let prefix = path.prefix.clone();
    Ok(RouteMatch {
        path: if path.regex {
            PathMatch::Regex(prefix)
        } else if path.exact {
            PathMatch::Exact(prefix)
        } else {
            PathMatch::Prefix(prefix)
        },
        case_sensitive: s.case_sensitive.unwrap_or(true),
        headers,
        query_parameters: query,
        runtime_fraction: None,
    })
}

/// Fields read but not acted on yet: a warning each.
fn warn_unsupported(meta: &Meta, s: &MappingSpec, errs: &mut Errors) {
    warn_set(
        meta,
        &[
            ("priority", s.priority.is_some()),
            ("health_checks", s.health_checks.is_some()),
            ("envoy_override", s.envoy_override.is_some()),
        ],
        "not supported yet; ignored",
        errs,
    );
}

/// A warning on each field of `fields` that is set.
fn warn_set(meta: &Meta, fields: &[(&str, bool)], message: &str, errs: &mut Errors) {
    for (f, set) in fields {
        if *set {
            errs.push(meta.warning(&format!("spec.{f}"), message));
        }
    }
}

/// The fields that must agree within a group, serialized
/// (docs/design.md#groups-canaries-and-weights), `labels` apart: the group step compares the
/// parsed labels ([`MappingPlan::labels`]) only of Mappings that share a group, which
/// serializing them for every Mapping cost more than parsing them.
fn consistency(s: &MappingSpec, headers_spec: &BTreeMap<String, Value>, prefix: &str) -> String {
    serde_json::to_string(&(
        (&s.bypass_auth, &s.circuit_breakers, s.connect_timeout_ms),
        (
            s.cluster_idle_timeout_ms,
            s.cluster_max_connection_lifetime_ms,
        ),
        (headers_spec, &s.keepalive, &s.load_balancer),
        (&s.method, prefix, s.prefix_regex, s.prefix_exact),
    ))
    .unwrap_or_default()
}

/// The group identity and route-order key, from the conditions as written, in match order
/// (headers, regex headers, host, method; then query parameters).
fn identity(
    s: &MappingSpec,
    headers_spec: &BTreeMap<String, Value>,
    host: Option<&HostGlob>,
    prefix: &str,
) -> (GroupKey, SortKey) {
    let present = |v: &Value| match v {
        Value::Bool(true) => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let mut owned: Vec<(&str, Option<String>, bool)> = Vec::new();
    for (k, v) in headers_spec {
        owned.push((k, present(v), false));
    }
    for (k, v) in s.regex_headers.iter().flatten() {
        owned.push((k, Some(v.clone()), true));
    }
    match host {
        Some(HostGlob::Glob(g)) => owned.push((":authority", Some(g.clone()), false)),
        Some(HostGlob::Regex(r)) => owned.push((":authority", Some(r.clone()), true)),
        None => {}
    }
    if let Some(m) = &s.method {
        let regex = s.method_regex == Some(true);
        let m = if regex {
            m.clone()
        } else {
            m.to_ascii_uppercase()
        };
        owned.push((":method", Some(m), regex));
    }
    let mut owned_query: Vec<(&str, Option<String>, bool)> = Vec::new();
    for (k, v) in s.query_parameters.iter().flatten() {
        owned_query.push((k, present(v), false));
    }
    for (k, v) in s.regex_query_parameters.iter().flatten() {
        owned_query.push((k, Some(v.clone()), true));
    }
    order::identity(
        &conditions(&owned),
        &conditions(&owned_query),
        prefix,
        s.method.as_deref(),
        s.precedence.unwrap_or(0),
    )
}

/// What a Mapping does with the requests it matches: its target, rewrites, header changes and
/// policies.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub target: Target,
    pub prefix_rewrite: Option<String>,
    pub host_rewrite: Option<HostRewrite>,
    // The settings most Mappings leave unset are boxed: a plan is moved and read many times,
    // and a smaller one costs less memory traffic at 50,000 Mappings (issue 10).
    pub regex_rewrite: Option<Box<RegexRewrite>>,
    pub add_request_headers: Vec<HeaderValue>,
    pub add_response_headers: Vec<HeaderValue>,
    pub remove_request_headers: Vec<String>,
    pub remove_response_headers: Vec<String>,
    pub cors: Option<Box<Cors>>,
    pub retry: Option<Box<RetryPolicy>>,
    pub upgrades: Vec<String>,
    /// The route's hash key (ring hash / maglev under the endpoint resolver).
    pub hash_policy: Option<Box<HashPolicy>>,
}

impl Action {
    /// A route that answers 503, naming the error.
    fn failed(field: String, message: String) -> Self {
        Self::to(Target::Failed { field, message })
    }

    /// Sends to `target`, with no rewrite, header change or policy.
    fn to(target: Target) -> Self {
        Action {
            target,
            prefix_rewrite: None,
            host_rewrite: None,
            regex_rewrite: None,
            add_request_headers: Vec::new(),
            add_response_headers: Vec::new(),
            remove_request_headers: Vec::new(),
            remove_response_headers: Vec::new(),
            cors: None,
            retry: None,
            upgrades: Vec::new(),
            hash_policy: None,
        }
    }
}

/// Rewrites, the target (cluster or redirect) and the policies of a Mapping whose match is
/// valid. `whole_path`: a regex or exact route, where the default rewrite replaces the path.
fn action(
    meta: &Meta,
    s: &MappingSpec,
    service: &str,
    whole_path: bool,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
) -> Result<Action, Fail> {
    let settings = cx.settings;
    let (prefix_rewrite, regex_rewrite) = path_rewrite(meta, s, whole_path, errs)?;
    let host_rewrite = host_rewrite(meta, s, errs);
    let (target, hash_policy, authority) = target(meta, s, service, cx, errs)?;
    let retry = match &s.retry_policy {
        Some(r) => Some(policy::retry(r).map_err(|(f, e)| fail(&format!("retry_policy.{f}"), e))?),
        None => settings.retry.clone(),
    };
    let cors = match &s.cors {
        Some(c) => Some(policy::cors(c).map_err(|(f, e)| fail(&format!("cors.{f}"), e))?),
        None => settings.cors.clone(),
    };
    let mut action = Action {
        prefix_rewrite,
        host_rewrite,
        regex_rewrite: regex_rewrite.map(Box::new),
        cors: cors.map(Box::new),
        retry: retry.map(Box::new),
        upgrades: upgrades(s),
        hash_policy: hash_policy.map(Box::new),
        ..Action::to(target)
    };
    header_changes(s, settings, authority, &mut action);
    Ok(action)
}

/// `regex_rewrite` (which replaces `rewrite`), else `rewrite`: `""` keeps the path, unset is
/// `/`.
fn path_rewrite(
    meta: &Meta,
    s: &MappingSpec,
    whole_path: bool,
    errs: &mut Errors,
) -> Result<(Option<String>, Option<RegexRewrite>), Fail> {
    let regex_rewrite = match &s.regex_rewrite {
        Some(r) => {
            compile("regex_rewrite.pattern", &r.pattern)?;
            if s.rewrite.is_some() {
                errs.push(meta.warning("spec.rewrite", "ignored: regex_rewrite replaces it"));
            }
            Some(RegexRewrite {
                pattern: r.pattern.clone(),
                substitution: r.substitution.clone(),
            })
        }
        None => None,
    };
    let prefix_rewrite = match (&regex_rewrite, s.rewrite.as_deref()) {
        (Some(_), _) => None,
        (None, Some("")) => None,
        (None, Some(r)) => Some(r.to_string()),
        (None, None) => {
            if whole_path {
                errs.push(meta.warning(
                    "spec.rewrite",
                    "defaults to \"/\": on a regex or exact route the whole path is sent upstream as \"/\" (set rewrite: \"\" to keep it)",
                ));
            }
            Some("/".to_string())
        }
    };
    Ok((prefix_rewrite, regex_rewrite))
}

/// `host_rewrite`, else `auto_host_rewrite`.
fn host_rewrite(meta: &Meta, s: &MappingSpec, errs: &mut Errors) -> Option<HostRewrite> {
    match (&s.host_rewrite, s.auto_host_rewrite) {
        (Some(h), auto) => {
            if auto == Some(true) {
                errs.push(meta.warning("spec.auto_host_rewrite", "ignored: host_rewrite is set"));
            }
            Some(HostRewrite::Literal(h.clone()))
        }
        (None, Some(true)) => Some(HostRewrite::Auto),
        _ => None,
    }
}

/// A redirect (`host_redirect`, unless the Mapping is a shadow), else the upstream cluster
/// (built by `upstream`) with the route's hash key and the upstream's `host:port`.
fn target(
    meta: &Meta,
    s: &MappingSpec,
    service: &str,
    cx: &mut Context<'_, '_>,
    errs: &mut Errors,
) -> Result<(Target, Option<HashPolicy>, Option<String>), Fail> {
    let shadow = s.shadow == Some(true);
    if shadow && s.host_redirect == Some(true) {
        errs.push(meta.warning("spec.host_redirect", "ignored: shadow takes precedence"));
    }
    if s.host_redirect == Some(true) && !shadow {
        let redirect = redirect_target(s, service, meta, errs)?;
        return Ok((Target::Redirect(redirect), None, None));
    }
    warn_set(
        meta,
        &[
            ("path_redirect", s.path_redirect.is_some()),
            ("prefix_redirect", s.prefix_redirect.is_some()),
            ("regex_redirect", s.regex_redirect.is_some()),
            ("redirect_response_code", s.redirect_response_code.is_some()),
        ],
        "has no effect without host_redirect",
        errs,
    );
    let req = Request {
        marker: shadow.then_some("shadow"),
        http: Some(Http {
            http2: s.grpc == Some(true),
            dns_type: s.dns_type.as_deref(),
            load_balancer: s.load_balancer.as_ref(),
            connect_timeout_ms: s.connect_timeout_ms,
            respect_dns_ttl: s.respect_dns_ttl,
            cluster_idle_timeout_ms: s.cluster_idle_timeout_ms,
            cluster_max_connection_lifetime_ms: s.cluster_max_connection_lifetime_ms,
            keepalive: s.keepalive.as_ref(),
            host_rewrite: s.host_rewrite.as_deref(),
        }),
        ..upstream::request!(meta, service, s)
    };
    let Upstream {
        cluster,
        hash_policy,
        authority,
    } = upstream::cluster(&req, cx, errs)?;
    Ok((
        Target::Cluster(Box::new(cluster)),
        hash_policy,
        Some(authority),
    ))
}

/// Header changes: the Module's, then the Mapping's; `l5d-dst-override` for Linkerd.
fn header_changes(
    s: &MappingSpec,
    settings: &Settings,
    authority: Option<String>,
    action: &mut Action,
) {
    let mut add_req = settings.add_request_headers.clone().unwrap_or_default();
    add_req.extend(s.add_request_headers.clone().unwrap_or_default());
    action.add_request_headers = policy::add_headers(&add_req);
    let mut add_resp = settings.add_response_headers.clone().unwrap_or_default();
    add_resp.extend(s.add_response_headers.clone().unwrap_or_default());
    action.add_response_headers = policy::add_headers(&add_resp);
    if s.add_linkerd_headers
        .unwrap_or(settings.add_linkerd_headers)
        && let Some(authority) = authority
    {
        action.add_request_headers.push(HeaderValue {
            name: "l5d-dst-override".into(),
            value: authority,
            append: false,
        });
    }
    action.remove_request_headers = settings.remove_request_headers.clone();
    action
        .remove_request_headers
        .extend(s.remove_request_headers.iter().flat_map(|r| r.to_vec()));
    action.remove_response_headers = settings.remove_response_headers.clone();
    action
        .remove_response_headers
        .extend(s.remove_response_headers.iter().flat_map(|r| r.to_vec()));
}

/// `allow_upgrade`, plus `websocket` for `use_websocket`.
fn upgrades(s: &MappingSpec) -> Vec<String> {
    let mut upgrades: Vec<String> = s.allow_upgrade.iter().flatten().cloned().collect();
    if s.use_websocket == Some(true)
        && !upgrades.iter().any(|u| u.eq_ignore_ascii_case("websocket"))
    {
        upgrades.push("websocket".into());
    }
    upgrades
}

/// Borrowed [`Condition`]s of `(name, value, regex)` triples.
fn conditions<'a>(list: &'a [(&'a str, Option<String>, bool)]) -> Vec<Condition<'a>> {
    list.iter()
        .map(|(name, value, regex)| Condition {
            name,
            value: value.as_deref(),
            regex: *regex,
        })
        .collect()
}

/// docs/design.md#redirects, with legate's fix:
/// a scheme on the service sets `https_redirect` instead of being
/// copied into the Location host.
fn redirect_target(
    s: &MappingSpec,
    service: &str,
    meta: &Meta,
    errs: &mut Errors,
) -> Result<Redirect, Fail> {
    let svc = Service::parse(service).map_err(|e| fail("service", e))?;
    let mut path = None;
    let mut chosen: Option<&str> = None;
    for (field, value) in [
        (
            "path_redirect",
            s.path_redirect.clone().map(RedirectPath::Path),
        ),
        (
            "prefix_redirect",
            s.prefix_redirect.clone().map(RedirectPath::Prefix),
        ),
        (
            "regex_redirect",
            match &s.regex_redirect {
                Some(r) => {
                    compile("regex_redirect.pattern", &r.pattern)?;
                    Some(RedirectPath::Regex(RegexRewrite {
                        pattern: r.pattern.clone(),
                        substitution: r.substitution.clone(),
                    }))
                }
                None => None,
            },
        ),
    ] {
        let Some(v) = value else { continue };
        match chosen {
            Some(first) => errs.push(meta.warning(
                &format!("spec.{field}"),
                format!("ignored: {first} takes precedence"),
            )),
            None => {
                chosen = Some(field);
                path = Some(v);
            }
        }
    }
    let code = match s.redirect_response_code {
        None => RedirectCode::MovedPermanently,
        Some(c) => u16::try_from(c)
            .ok()
            .and_then(RedirectCode::from_status)
            .unwrap_or_else(|| {
                errs.push(meta.warning(
                    "spec.redirect_response_code",
                    format!("{c} is not 301, 302, 303, 307 or 308; using 301"),
                ));
                RedirectCode::MovedPermanently
            }),
    };
    Ok(Redirect {
        https: svc.https == Some(true),
        host: Some(svc.host.clone()),
        port: svc.port,
        path,
        code,
        strip_query: false,
    })
}

/// `check_ready`, `check_alive` (and diagnostics when the Module enables it explicitly): on
/// every Host, to legate's probe server (or the Module's `service`), 10 s timeout, exempt from
/// Module policies.
fn builtins(settings: &Settings, options: &Options) -> Vec<MappingPlan> {
    let mut out = Vec::new();
    for (route, name) in [
        (&settings.readiness, "check_ready"),
        (&settings.liveness, "check_alive"),
        (&settings.diagnostics, "diagnostics"),
    ] {
        let Some(route) = route else {
            continue;
        };
        let c = builtin_cluster(route.service.as_ref(), settings, options);
        let prefix = route.prefix.as_str();
        let matcher = RouteMatch::prefix(prefix);
        // hostname "*": the host condition counts in the order, as for any Mapping.
        let star = [Condition {
            name: ":authority",
            value: Some("*"),
            regex: false,
        }];
        let (group_key, sort) = order::identity(&star, &[], prefix, None, 0);
        out.push(MappingPlan {
            meta: Meta {
                origin: crate::api::Origin::Builtin,
                kind: "Mapping",
                name: name.into(),
                namespace: options.ambassador_namespace.clone(),
                labels: BTreeMap::new(),
                version: super::load::Version::V3,
            },
            builtin: true,
            host: Some(HostGlob::Glob("*".into())),
            matcher,
            group_key,
            sort,
            written: None,
            action: Action {
                prefix_rewrite: Some(route.rewrite.clone()),
                ..Action::to(Target::Cluster(Box::new(c)))
            },
            weight: None,
            shadow: false,
            timeout_ms: Some(10_000),
            idle_timeout_ms: None,
            acme: false,
            services: None,
        });
    }
    out
}

/// `cluster_<service>_<Emissary namespace>`, by DNS, TLS for an `https://` service.
fn builtin_cluster(service: Option<&Service>, settings: &Settings, options: &Options) -> Cluster {
    let (addr, port) = &options.probe_address;
    let (display, authority, host, port, tls) = match service {
        None => {
            let authority = format!("{addr}:{port}");
            (authority.clone(), authority, addr.clone(), *port, None)
        }
        Some(svc) => {
            let tls = (svc.https == Some(true)).then(UpstreamTls::plain);
            let port = svc.port_or_default(tls.is_some());
            (svc.display(), svc.authority(), svc.host.clone(), port, tls)
        }
    };
    let mut c = Cluster::new(
        cluster_name(&[
            "cluster".into(),
            display,
            options.ambassador_namespace.clone(),
        ]),
        Discovery::StrictDns(vec![Endpoint::new(host, port)]),
    );
    c.alt_stat_name = Some(sanitize(&authority));
    c.tls = tls;
    c.header_key_format = settings.http.header_key_format;
    c
}
#[cfg(test)]
mod size_tests {
    /// A plan and a route are built, moved and read once per Mapping on every change; at
    /// 50,000 Mappings their size is memory traffic (issue 10). The settings most Mappings
    /// leave unset are boxed; this fails if one is added inline.
    #[test]
    fn plans_and_routes_stay_small() {
        let plan = std::mem::size_of::<super::MappingPlan>();
        let route = std::mem::size_of::<crate::ir::Route>();
        assert!(plan <= 800, "MappingPlan is {plan} bytes");
        assert!(route <= 512, "ir::Route is {route} bytes");
    }
}
