//! RateLimitService → the ratelimit filter, and Mapping `labels` (plus the Module's
//! `default_labels`) → each route's rate limits (docs/design.md#ratelimitservice).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::doc::{Doc, Document};
use crate::api::rate_limit_service::RateLimitServiceSpec;
use crate::ir::{Cluster, RateLimit, RateLimitAction, RateLimitFilter, ShortString};

use super::super::Errors;
use super::super::load::{Meta, Obj};
use super::super::module::Settings;
use super::auth::check_protocol_version;
use super::cluster::{self, Cx, Fail, fail};

/// A Mapping's `labels`: the domains as written, and every valid label group with the index of
/// its domain, in order. It is what Mappings of one group must agree on
/// (docs/design.md#groups-canaries-and-weights): the labels as read, not as spelled.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Labels {
    domains: Vec<ShortString>,
    groups: Vec<Group>,
}

/// One label group: its descriptor entries.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    /// Index into [`Labels::domains`].
    domain: usize,
    /// An Emissary `v0_ratelimit_` group: the Module's defaults are not prepended.
    v0: bool,
    actions: Vec<RateLimitAction>,
}

impl Labels {
    /// `labels: {}` (no domain at all).
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

/// The Module's `default_label_domain` and `default_labels`.
#[derive(Debug, Default)]
pub(super) struct Defaults {
    pub domain: String,
    pub by_domain: BTreeMap<String, Vec<RateLimitAction>>,
}

pub(super) fn defaults(settings: &Settings, errs: &mut Errors) -> Defaults {
    let mut d = Defaults {
        domain: settings
            .default_label_domain
            .clone()
            .unwrap_or_else(|| "ambassador".into()),
        by_domain: BTreeMap::new(),
    };
    let Some(v) = &settings.default_labels else {
        return d;
    };
    let Some(domains) = v.as_object() else {
        errs.global(
            "Module ambassador: spec.config.default_labels: must be a map of domain to {defaults: [...]}; ignored",
            true,
        );
        return d;
    };
    for (domain, entry) in domains {
        let list = entry.get("defaults").and_then(Value::as_array);
        let Some(list) = list else {
            errs.global(
                format!("Module ambassador: spec.config.default_labels.{domain}: must be {{defaults: [...]}}; ignored"),
                true,
            );
            continue;
        };
        // The Module's defaults are few: each is held as a document to share the Mappings' rules.
        let actions: Result<Vec<_>, String> = list
            .iter()
            .map(|v| {
                let doc = Document::from_value(v).map_err(|e| e.to_string())?;
                specifier(doc.root())
            })
            .collect();
        match actions {
            Ok(a) if !a.is_empty() => {
                d.by_domain.insert(domain.clone(), a);
            }
            Ok(_) => {}
            Err(e) => errs.global(
                format!(
                    "Module ambassador: spec.config.default_labels.{domain}.defaults: {e}; ignored"
                ),
                true,
            ),
        }
    }
    d
}

/// The first RateLimitService (processing order) is used; others are reported and ignored.
/// A misconfigured one is reported and left out: requests are not rate limited.
pub(super) fn plan(
    list: &[Obj<RateLimitServiceSpec>],
    cx: &Cx<'_>,
    errs: &mut Errors,
) -> Option<(RateLimitFilter, Cluster)> {
    let first = super::first_only(list, "RateLimitService", errs)?;
    match filter(first, cx, errs) {
        Ok(p) => Some(p),
        Err((field, message)) => {
            errs.push(
                first
                    .meta
                    .error(&field, format!("{message}; requests are not rate limited")),
            );
            None
        }
    }
}

fn filter(
    o: &Obj<RateLimitServiceSpec>,
    cx: &Cx<'_>,
    errs: &mut Errors,
) -> Result<(RateLimitFilter, Cluster), Fail> {
    let s = &o.spec;
    let service = s
        .service
        .as_deref()
        .ok_or_else(|| fail("service", "required"))?;
    check_protocol_version(s.protocol_version.as_deref())?;
    if s.domain.as_deref() == Some("") {
        return Err(fail("domain", "must not be empty"));
    }
    let spec = cluster::Spec {
        field: "service",
        service,
        tls: s.tls.as_ref(),
        stats_name: s.stats_name.as_deref(),
        http2: true,
        circuit_breakers: None,
        connect_timeout_ms: None,
        idle_timeout_ms: None,
        max_connection_lifetime_ms: None,
    };
    let (c, _) = cluster::build("ratelimit", &spec, &o.meta, cx, errs)?;
    let grpc = s.grpc.as_ref();
    let filter = RateLimitFilter {
        cluster: c.name.clone(),
        domain: s.domain.clone().unwrap_or_else(|| {
            cx.settings
                .default_label_domain
                .clone()
                .unwrap_or_else(|| "ambassador".into())
        }),
        timeout_ms: s.timeout_ms.unwrap_or(20),
        failure_mode_deny: s.failure_mode_deny == Some(true),
        resource_exhausted: grpc.is_some_and(|g| {
            g.use_resource_exhausted_code == Some(true)
                || g.rate_limited_as_resource_exhausted == Some(true)
        }),
    };
    Ok((filter, c))
}

/// Parses `labels`: `{domain: [{group: [specifier, ...]}, ...]}`. A group with an invalid
/// specifier is reported and dropped whole, so no descriptor changes shape
/// (docs/compatibility.md). Field paths are only formatted for a report.
pub(super) fn parse_labels(meta: &Meta, v: Doc<'_>, errs: &mut Errors) -> Labels {
    let mut out = Labels::default();
    let Some(domains) = v.entries() else {
        errs.push(meta.warning(
            "spec.labels",
            "must be a map of domain to a list of label groups; ignored",
        ));
        return out;
    };
    for (domain, groups) in domains {
        let Some(groups) = groups.as_array() else {
            errs.push(meta.warning(
                &format!("spec.labels.{domain}"),
                "must be a list of label groups; ignored",
            ));
            continue;
        };
        let index = out.domains.len();
        out.groups.reserve(groups.len());
        for (i, g) in groups.enumerate() {
            let one = g.entries().filter(|m| m.len() == 1);
            let Some((name, specs)) = one.and_then(|mut m| m.next()) else {
                errs.push(meta.warning(
                    &format!("spec.labels.{domain}[{i}]"),
                    "a label group must be a map with exactly one key (its name); group ignored",
                ));
                continue;
            };
            let Some(specs) = specs.as_array() else {
                errs.push(meta.warning(
                    &format!("spec.labels.{domain}[{i}].{name}"),
                    "must be a list of label specifiers; group ignored",
                ));
                continue;
            };
            let mut actions = Vec::with_capacity(specs.len());
            for (j, sp) in specs.enumerate() {
                match specifier(sp) {
                    Ok(a) => actions.push(a),
                    Err(e) => {
                        errs.push(meta.warning(
                            &format!("spec.labels.{domain}[{i}].{name}[{j}]"),
                            format!("{e}; group ignored"),
                        ));
                        actions.clear();
                        break;
                    }
                }
            }
            if !actions.is_empty() {
                out.groups.push(Group {
                    domain: index,
                    v0: name.starts_with("v0_ratelimit_"),
                    actions,
                });
            }
        }
        out.domains.push(domain.into());
    }
    out
}

/// One label specifier, in the v3alpha1 object form or a v2 shorthand.
fn specifier(v: Doc<'_>) -> Result<RateLimitAction, String> {
    let string = |v: Option<Doc<'_>>, what: &str| -> Result<ShortString, String> {
        match v.and_then(Doc::as_str) {
            Some(s) if !s.is_empty() => Ok(s.into()),
            _ => Err(format!("{what} must be a non-empty string")),
        }
    };
    let fixed = |body: Doc<'_>, name: &str, a: RateLimitAction| match pick(body, ["key"]) {
        [None] => Ok(a),
        [Some(k)] if k.as_str() == Some(name) => Ok(a),
        [Some(_)] => Err(format!("{name}.key must be {name:?}")),
    };
    if let Some(s) = v.as_str() {
        return Ok(match s {
            "source_cluster" => RateLimitAction::SourceCluster,
            "destination_cluster" => RateLimitAction::DestinationCluster,
            "remote_address" => RateLimitAction::RemoteAddress,
            "" => return Err("an empty label".into()),
            other => RateLimitAction::GenericKey {
                key: "generic_key".into(),
                value: other.into(),
            },
        });
    }
    let Some(mut m) = v.entries().filter(|m| m.len() == 1) else {
        return Err("a label specifier must be a string or a map with exactly one key".into());
    };
    let (k, body) = m.next().ok_or("an empty specifier")?;
    match k {
        "source_cluster" => fixed(body, k, RateLimitAction::SourceCluster),
        "destination_cluster" => fixed(body, k, RateLimitAction::DestinationCluster),
        "remote_address" => fixed(body, k, RateLimitAction::RemoteAddress),
        "generic_key" if body.is_string() => Ok(RateLimitAction::GenericKey {
            key: "generic_key".into(),
            value: string(Some(body), "generic_key")?,
        }),
        "generic_key" if body.is_object() => {
            let [key, value] = pick(body, ["key", "value"]);
            Ok(RateLimitAction::GenericKey {
                key: match key {
                    None => "generic_key".into(),
                    Some(k) => string(Some(k), "generic_key.key")?,
                },
                value: string(value, "generic_key.value")?,
            })
        }
        "generic_key" => Err("generic_key must be {value, key}".into()),
        "request_headers" => {
            let [key, header, omit_field] = pick(body, ["key", "header_name", OMIT]);
            Ok(RateLimitAction::RequestHeader {
                key: string(key, "request_headers.key")?,
                header: string(header, "request_headers.header_name")?,
                skip_if_absent: omit(omit_field)?,
            })
        }
        // v2: {<key>: {header: <name>, omit_if_not_present: <bool>}}
        key => match pick(body, ["header", OMIT]) {
            [Some(header), omit_field] => Ok(RateLimitAction::RequestHeader {
                key: key.into(),
                header: string(Some(header), "header")?,
                skip_if_absent: omit(omit_field)?,
            }),
            [None, _] => Err(format!(
                "{key:?} is not a label specifier (source_cluster, destination_cluster, remote_address, generic_key, request_headers)"
            )),
        },
    }
}

const OMIT: &str = "omit_if_not_present";

/// The values of the fields `names` of the object `body` (`None` where absent, or when `body`
/// is not an object), found in one pass over its entries (its keys are unique).
fn pick<'a, const N: usize>(body: Doc<'a>, names: [&str; N]) -> [Option<Doc<'a>>; N] {
    let mut out = [None; N];
    for (k, v) in body.entries().into_iter().flatten() {
        if let Some(i) = names.iter().position(|n| *n == k) {
            out[i] = Some(v);
        }
    }
    out
}

/// `omit_if_not_present`, if present.
fn omit(v: Option<Doc<'_>>) -> Result<bool, String> {
    match v {
        None => Ok(false),
        Some(v) if v.is_null() => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| "omit_if_not_present must be true or false".to_string()),
    }
}

/// Labels in other domains than the service's are not used: said once per Mapping.
pub(super) fn report_other_domains(meta: &Meta, labels: &Labels, domain: &str, errs: &mut Errors) {
    if !labels.is_empty() && labels.domains.iter().all(|d| d != domain) {
        let others: Vec<&str> = labels.domains.iter().map(ShortString::as_str).collect();
        errs.push(meta.warning(
            "spec.labels",
            format!(
                "no label in the RateLimitService's domain {domain:?} (found {}): no rate limit on this Mapping",
                others.join(", ")
            ),
        ));
    }
}

/// The rate limits of a route: each label group of the service's domain (defaults of that
/// domain first, except `v0_ratelimit_` groups); without labels, the defaults of the default
/// domain. The groups' entries are moved, not copied.
pub(super) fn route_limits(labels: Option<Labels>, d: &Defaults, domain: &str) -> Vec<RateLimit> {
    let defaults = d.by_domain.get(domain);
    match labels {
        None => match defaults {
            Some(a) if d.domain == domain => vec![RateLimit { actions: a.clone() }],
            _ => Vec::new(),
        },
        Some(labels) => {
            let Some(index) = labels.domains.iter().position(|x| x == domain) else {
                return Vec::new();
            };
            labels
                .groups
                .into_iter()
                .filter(|g| g.domain == index)
                .map(|g| match defaults {
                    Some(a) if !g.v0 => {
                        let mut all = Vec::with_capacity(a.len() + g.actions.len());
                        all.extend(a.iter().cloned());
                        all.extend(g.actions);
                        RateLimit { actions: all }
                    }
                    _ => RateLimit { actions: g.actions },
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<RateLimitAction, String> {
        let doc = Document::from_value(&v).expect("small");
        specifier(doc.root())
    }

    fn header(key: &str, header: &str, skip_if_absent: bool) -> RateLimitAction {
        RateLimitAction::RequestHeader {
            key: key.into(),
            header: header.into(),
            skip_if_absent,
        }
    }

    fn parsed(v: Value) -> (Labels, usize) {
        let meta = Meta {
            origin: crate::api::Origin::Builtin,
            kind: "Mapping",
            name: "m".into(),
            namespace: "ns".into(),
            labels: BTreeMap::new(),
            version: super::super::super::load::Version::V3,
        };
        let doc = Document::from_value(&v).expect("small");
        let mut errs = Errors::default();
        let labels = parse_labels(&meta, doc.root(), &mut errs);
        (labels, errs.0.len())
    }

    /// A route's rate limits: only the groups of the service's
    /// domain (first, later or absent among several), in order, defaults before every group but
    /// the `v0_ratelimit_` ones, dropped groups left out; without labels, the default domain's
    /// defaults only.
    #[test]
    fn route_limits_keep_the_service_domain_groups_in_order() {
        let d = Defaults {
            domain: "ambassador".into(),
            by_domain: BTreeMap::from([
                ("ambassador".into(), vec![RateLimitAction::SourceCluster]),
                ("other".into(), vec![RateLimitAction::DestinationCluster]),
            ]),
        };
        let limit = |actions: Vec<RateLimitAction>| RateLimit { actions };
        let generic = |value: &str| RateLimitAction::GenericKey {
            key: "generic_key".into(),
            value: value.into(),
        };
        let (labels, errors) = parsed(json!({
            "other": [{"o": ["o1"]}],
            "ambassador": [
                {"a": ["a1", "remote_address"]},
                {"bad": ["a2", {"nope": {}}]},
                {"v0_ratelimit_b": ["b1"]},
                {"c": ["c1"]},
            ],
            "third": [{"t": ["t1"]}],
        }));
        assert_eq!(errors, 1);
        let src = RateLimitAction::SourceCluster;
        let want = [
            limit(vec![
                src.clone(),
                generic("a1"),
                RateLimitAction::RemoteAddress,
            ]),
            limit(vec![generic("b1")]),
            limit(vec![src.clone(), generic("c1")]),
        ];
        assert_eq!(*route_limits(Some(labels.clone()), &d, "ambassador"), want);
        let other = [limit(vec![
            RateLimitAction::DestinationCluster,
            generic("o1"),
        ])];
        assert_eq!(*route_limits(Some(labels.clone()), &d, "other"), other);
        assert_eq!(
            *route_limits(Some(labels.clone()), &d, "third"),
            [limit(vec![generic("t1")])]
        );
        assert!(route_limits(Some(labels), &d, "none").is_empty());
        assert_eq!(*route_limits(None, &d, "ambassador"), [limit(vec![src])]);
        assert!(route_limits(None, &d, "other").is_empty());
        let (empty, errors) = parsed(json!({}));
        assert!(empty.is_empty() && errors == 0);
        assert!(route_limits(Some(empty), &d, "ambassador").is_empty());
    }

    /// Every specifier form and each of its errors, field by field (the fields of a specifier's
    /// body are read in one pass, `pick`).
    #[test]
    fn specifiers_read_each_field() {
        let generic = |key: &str, value: &str| RateLimitAction::GenericKey {
            key: key.into(),
            value: value.into(),
        };
        let cases: Vec<(Value, Result<RateLimitAction, String>)> = vec![
            (json!("remote_address"), Ok(RateLimitAction::RemoteAddress)),
            (json!("lit"), Ok(generic("generic_key", "lit"))),
            (json!({"source_cluster": {}}), Ok(RateLimitAction::SourceCluster)),
            (
                json!({"destination_cluster": {"key": "destination_cluster", "x": 1}}),
                Ok(RateLimitAction::DestinationCluster),
            ),
            (
                json!({"remote_address": {"key": "ip"}}),
                Err("remote_address.key must be \"remote_address\"".into()),
            ),
            (json!({"remote_address": 7}), Ok(RateLimitAction::RemoteAddress)),
            (json!({"generic_key": "v"}), Ok(generic("generic_key", "v"))),
            (json!({"generic_key": {"value": "v"}}), Ok(generic("generic_key", "v"))),
            (
                json!({"generic_key": {"value": "v", "key": "k"}}),
                Ok(generic("k", "v")),
            ),
            (
                json!({"generic_key": {"key": "k"}}),
                Err("generic_key.value must be a non-empty string".into()),
            ),
            (
                json!({"generic_key": {"key": "", "value": "v"}}),
                Err("generic_key.key must be a non-empty string".into()),
            ),
            (
                json!({"generic_key": 3}),
                Err("generic_key must be {value, key}".into()),
            ),
            (
                json!({"request_headers": {"key": "k", "header_name": "h"}}),
                Ok(header("k", "h", false)),
            ),
            (
                json!({"request_headers": {"omit_if_not_present": true, "key": "k", "header_name": "h"}}),
                Ok(header("k", "h", true)),
            ),
            (
                json!({"request_headers": {"key": "k", "header_name": "h", "omit_if_not_present": null}}),
                Ok(header("k", "h", false)),
            ),
            (
                json!({"request_headers": {"key": "k", "header_name": "h", "omit_if_not_present": "yes"}}),
                Err("omit_if_not_present must be true or false".into()),
            ),
            (
                json!({"request_headers": {"header_name": "h"}}),
                Err("request_headers.key must be a non-empty string".into()),
            ),
            (
                json!({"request_headers": {"key": "k"}}),
                Err("request_headers.header_name must be a non-empty string".into()),
            ),
            (
                json!({"request_headers": "h"}),
                Err("request_headers.key must be a non-empty string".into()),
            ),
            (
                json!({"x-user": {"header": "x-user", "omit_if_not_present": true}}),
                Ok(header("x-user", "x-user", true)),
            ),
            (
                json!({"x-user": {"header": 1}}),
                Err("header must be a non-empty string".into()),
            ),
            (
                json!({"query_parameter": {"key": "q"}}),
                Err("\"query_parameter\" is not a label specifier (source_cluster, destination_cluster, remote_address, generic_key, request_headers)".into()),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(read(v.clone()), want, "{v}");
        }
    }
}
