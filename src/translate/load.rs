//! Raw objects → typed resources: kind and apiVersion dispatch, `ambassador_id` filtering,
//! duplicate detection, typing with per-field errors, unknown-field warnings and the v2 → v3
//! conversions file mode needs (docs/design.md#v2-and-v3alpha1,
//! docs/design.md#names-namespaces-and-ambassador_id).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Errors, Options};
use crate::api::auth_service::AuthServiceSpec;
use crate::api::common::Extra;
use crate::api::doc::Doc;
use crate::api::host::HostSpec;
use crate::api::listener::ListenerSpec;
use crate::api::log_service::LogServiceSpec;
use crate::api::mapping::MappingSpec;
use crate::api::module::ModuleSpec;
use crate::api::rate_limit_service::RateLimitServiceSpec;
use crate::api::secret::SecretObject;
use crate::api::service::{EndpointSliceObject, SERVICE_NAME_LABEL, ServiceObject};
use crate::api::tcp_mapping::TcpMappingSpec;
use crate::api::tls_context::TlsContextSpec;
use crate::api::tracing_service::TracingServiceSpec;
use crate::api::{Head, Origin, RawObject, ResourceError};

/// Which getambassador.io version an object was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V3,
    V2,
}

/// Identity of one typed object, for errors and for the processing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub origin: Origin,
    pub kind: &'static str,
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub version: Version,
}

impl Meta {
    /// Nothing (allocates nothing): a place for a [`Meta`] that is moved in later.
    pub fn empty() -> Meta {
        Meta {
            origin: Origin::Builtin,
            kind: "",
            name: String::new(),
            namespace: String::new(),
            labels: BTreeMap::new(),
            version: Version::V3,
        }
    }

    /// `namespace/name`.
    pub fn id(&self) -> String {
        // Built directly (one allocation of the exact size, no formatting machinery): it is
        // made for every Mapping more than once per translation.
        let mut id = String::with_capacity(self.namespace.len() + 1 + self.name.len());
        id.push_str(&self.namespace);
        id.push('/');
        id.push_str(&self.name);
        id
    }

    /// The processing key: name, namespace, then where it was read
    /// (docs/design.md#processing-order-and-duplicates).
    pub fn order_key(&self) -> (&str, &str, &Origin) {
        (&self.name, &self.namespace, &self.origin)
    }

    fn problem(&self, field: Option<&str>, message: String, warning: bool) -> ResourceError {
        ResourceError {
            origin: self.origin.clone(),
            kind: self.kind.to_string(),
            name: self.id(),
            field: field.map(str::to_string),
            message,
            warning,
        }
    }

    /// An error that leaves this resource out.
    pub fn error(&self, field: &str, message: impl Into<String>) -> ResourceError {
        let field = (!field.is_empty()).then_some(field);
        self.problem(field, message.into(), false)
    }

    pub fn warning(&self, field: &str, message: impl Into<String>) -> ResourceError {
        let field = (!field.is_empty()).then_some(field);
        self.problem(field, message.into(), true)
    }
}

/// One typed object.
#[derive(Debug, Clone)]
pub(crate) struct Obj<T> {
    pub meta: Meta,
    pub spec: T,
}

/// An object that passed loading but is typed only when it is used: Mappings, typed one at a
/// time as they are planned, so the typed specs of a large input (over a kilobyte each,
/// mostly empty options) are never all in memory at once.
#[derive(Debug, Clone)]
pub(crate) struct Untyped<'a> {
    pub meta: Meta,
    pub spec: Doc<'a>,
    /// The object it came from (the translation cache's key).
    pub raw: &'a RawObject,
}

/// An EndpointSlice and the Service it belongs to: its [`SERVICE_NAME_LABEL`] label, the only
/// label of a slice anything reads (its [`Meta`] keeps none).
#[derive(Debug, Clone)]
pub(crate) struct Slice<'a> {
    pub service: Option<&'a str>,
    pub slice: EndpointSliceObject,
}

/// Everything that survived loading, each list in processing order except `services` and
/// `endpoint_slices`, which are in read order (by origin): nothing depends on theirs (the endpoint index
/// looks Services up by name and sorts a Service's endpoints, and the translation's errors are
/// sorted at the end), and sorting them with the rest costs a Kubernetes-sized input as much as
/// its Mappings (docs/design.md#processing-order-and-duplicates).
#[derive(Debug, Default)]
pub(crate) struct Loaded<'a> {
    /// Typed by [`mapping_spec`].
    pub mappings: Vec<Untyped<'a>>,
    pub hosts: Vec<Obj<HostSpec>>,
    pub listeners: Vec<Obj<ListenerSpec>>,
    pub tls_contexts: Vec<Obj<TlsContextSpec>>,
    pub modules: Vec<Obj<ModuleSpec>>,
    pub tcp_mappings: Vec<Obj<TcpMappingSpec>>,
    pub secrets: Vec<Obj<SecretObject>>,
    pub services: Vec<Obj<ServiceObject>>,
    pub endpoint_slices: Vec<Obj<Slice<'a>>>,
    // AuthService and RateLimitService (translate::services).
    pub auth_services: Vec<Obj<AuthServiceSpec>>,
    pub rate_limit_services: Vec<Obj<RateLimitServiceSpec>>,
    // LogService / TracingService (translate::services).
    pub log_services: Vec<Obj<LogServiceSpec>>,
    pub tracing_services: Vec<Obj<TracingServiceSpec>>,
}

/// Kinds of the group legate does not translate yet: reported once each, never silently lost.
const UNSUPPORTED_KINDS: &[&str] = &[
    "DevPortal",
    "KubernetesServiceResolver",
    "KubernetesEndpointResolver",
    "ConsulResolver",
];

/// The spec of an object without one.
static NULL: std::sync::LazyLock<crate::api::doc::Document> =
    std::sync::LazyLock::new(crate::api::doc::Document::null);

/// Kubernetes core kinds: typed whole, never filtered by `ambassador_id`.
const CORE_KINDS: &[&str] = &["Secret", "Service", "EndpointSlice"];

pub(crate) fn load<'a>(
    objects: &'a [RawObject],
    options: &Options,
    errs: &mut Errors,
) -> Loaded<'a> {
    let mut order: Vec<&RawObject> = objects.iter().collect();
    order.sort_by(|a, b| a.origin.cmp(&b.origin));
    // Keys and origins borrow from the objects: no copies for the duplicate check.
    // A hash map: only membership and the first origin matter, not the keys' order.
    let mut seen: HashMap<(&'static str, &str, &str), &Origin> =
        HashMap::with_capacity(order.len());
    let mut accepted: Vec<(Meta, Doc<'a>, &'a RawObject)> = Vec::with_capacity(order.len());
    let mut loaded = Loaded::default();
    for raw in order {
        let head = raw.head();
        let Some((kind, version, spec)) = classify(raw, &head, errs) else {
            continue;
        };
        let namespace = namespace_of(head.namespace, options);
        let Some(meta) = meta(raw, &head, namespace, kind, version, errs) else {
            continue;
        };
        if !CORE_KINDS.contains(&kind) && !id_matches(&meta, spec, &options.ambassador_id, errs) {
            tracing::debug!(name = %meta.id(), kind, "ambassador_id does not match: skipped");
            continue;
        }
        let key = (kind, namespace, head.name);
        match seen.entry(key) {
            Entry::Occupied(first) => {
                let first = first.get();
                errs.push(meta.error("", format!("duplicate {kind}: already defined at {first}")));
                continue;
            }
            Entry::Vacant(slot) => {
                slot.insert(&raw.origin);
            }
        }
        if version == Version::V2 && head.api_version.starts_with("getambassador.io/") {
            errs.push(meta.warning(
                "apiVersion",
                format!(
                    "{} is deprecated; use getambassador.io/v3alpha1",
                    head.api_version
                ),
            ));
        }
        if matches!(kind, "Service" | "EndpointSlice") {
            push(&mut loaded, meta, spec, raw, errs);
        } else {
            accepted.push((meta, spec, raw));
        }
    }
    // Each list is in processing order (name, namespace, then origin). Sorting the accepted
    // objects before typing them (stable, so equal keys keep origin order) puts every list in
    // that order without moving typed specs around. The positions are sorted, not the
    // objects: an accepted object is large, and a sort moves each element many times.
    let mut sorted: Vec<usize> = (0..accepted.len()).collect();
    sorted.sort_by(|&a, &b| accepted[a].0.order_key().cmp(&accepted[b].0.order_key()));
    let mappings = accepted
        .iter()
        .filter(|(m, _, _)| m.kind == "Mapping")
        .count();
    loaded.mappings.reserve_exact(mappings);
    let mut slots: Vec<Option<(Meta, Doc<'a>, &'a RawObject)>> =
        accepted.into_iter().map(Some).collect();
    for i in sorted {
        if let Some((meta, spec, raw)) = slots[i].take() {
            push(&mut loaded, meta, spec, raw, errs);
        }
    }
    loaded
}

/// Kind, version and the part to type (`spec`, or the whole object for a core kind); `None`
/// for objects legate ignores.
fn classify<'a>(
    raw: &'a RawObject,
    head: &Head<'_>,
    errs: &mut Errors,
) -> Option<(&'static str, Version, Doc<'a>)> {
    let bad = |errs: &mut Errors, msg: &str| {
        errs.push(ResourceError {
            origin: raw.origin.clone(),
            kind: head.kind.to_string(),
            name: String::new(),
            field: None,
            message: msg.to_string(),
            warning: false,
        })
    };
    if !raw.doc().is_object() {
        bad(errs, "not a Kubernetes object (expected a mapping)");
        return None;
    }
    let (api_version, kind) = (head.api_version, head.kind);
    if api_version.is_empty() || kind.is_empty() {
        bad(
            errs,
            "not a Kubernetes object: apiVersion and kind are required",
        );
        return None;
    }
    match (api_version, kind) {
        ("v1", "Secret") => return Some(("Secret", Version::V2, raw.doc())),
        ("v1", "Service") => return Some(("Service", Version::V2, raw.doc())),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            return Some(("EndpointSlice", Version::V2, raw.doc()));
        }
        ("v1", _) => return None,
        _ => {}
    }
    let version = match api_version {
        "getambassador.io/v3alpha1" => Version::V3,
        "getambassador.io/v2" | "getambassador.io/v1" => Version::V2,
        _ => return None,
    };
    let kind = match kind {
        "Mapping" => "Mapping",
        "Host" => "Host",
        "Listener" => "Listener",
        "TLSContext" => "TLSContext",
        "Module" => "Module",
        "TCPMapping" => "TCPMapping",
        "AuthService" => "AuthService",
        "RateLimitService" => "RateLimitService",
        // LogService / TracingService.
        "LogService" => "LogService",
        "TracingService" => "TracingService",
        other if UNSUPPORTED_KINDS.contains(&other) => {
            errs.push(ResourceError {
                origin: raw.origin.clone(),
                kind: other.to_string(),
                name: format!("{}/{}", head.namespace.unwrap_or(""), head.name),
                field: None,
                message: "this kind is not supported yet; ignored".into(),
                warning: true,
            });
            return None;
        }
        _ => return None,
    };
    Some((kind, version, raw.value.get("spec").unwrap_or(NULL.root())))
}

/// An object's [`Meta`]. A Service's or Secret's labels are left empty: nothing reads them; an
/// EndpointSlice's Service label is kept on its own ([`Slice`]).
fn meta(
    raw: &RawObject,
    head: &Head<'_>,
    namespace: &str,
    kind: &'static str,
    version: Version,
    errs: &mut Errors,
) -> Option<Meta> {
    let labels = match kind {
        "Service" | "Secret" | "EndpointSlice" => BTreeMap::new(),
        _ => head.labels(),
    };
    let meta = Meta {
        origin: raw.origin.clone(),
        kind,
        name: head.name.to_string(),
        namespace: namespace.to_string(),
        labels,
        version,
    };
    if meta.name.is_empty() {
        errs.push(meta.error("metadata.name", "required"));
        return None;
    }
    Some(meta)
}

/// The namespace an object whose `metadata.namespace` is `namespace` is treated as being in.
fn namespace_of<'a>(namespace: Option<&'a str>, options: &'a Options) -> &'a str {
    match namespace {
        None | Some("") | Some("_automatic_") => &options.ambassador_namespace,
        Some(ns) => ns,
    }
}

/// `ambassador_id` (or `ambassadorId`), a string or a list; missing means `default`;
/// `_automatic_` always matches; an empty list never does.
fn id_matches(meta: &Meta, spec: Doc<'_>, id: &str, errs: &mut Errors) -> bool {
    let value = spec
        .get("ambassador_id")
        .or_else(|| spec.get("ambassadorId"));
    let ids: Vec<&str> = match value {
        None => vec!["default"],
        Some(v) if v.is_null() => vec!["default"],
        Some(v) if v.is_string() => v.as_str().into_iter().collect(),
        Some(v) if v.as_array().is_some_and(|mut a| a.all(Doc::is_string)) => v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Doc::as_str)
            .collect(),
        Some(_) => {
            errs.push(meta.error(
                "spec.ambassador_id",
                "must be a string or a list of strings",
            ));
            return false;
        }
    };
    ids.iter().any(|i| *i == id || *i == "_automatic_")
}

fn push<'a>(
    loaded: &mut Loaded<'a>,
    meta: Meta,
    spec: Doc<'a>,
    raw: &'a RawObject,
    errs: &mut Errors,
) {
    match meta.kind {
        "Secret" => {
            // serde's messages quote the offending value: never let key material through.
            let mut secret_errs = Errors::default();
            let typed = typed::<SecretObject>(&meta, spec, "", &mut secret_errs);
            for mut e in secret_errs.0 {
                e.message = redact_quoted(&e.message);
                errs.push(e);
            }
            if let Some(s) = typed {
                loaded.secrets.push(Obj { meta, spec: s });
            }
            return;
        }
        "Service" => {
            if let Some(s) = typed_by(&meta, spec, "", errs, ServiceObject::from_doc) {
                loaded.services.push(Obj { meta, spec: s });
            }
            return;
        }
        "EndpointSlice" => {
            if let Some(slice) = typed_by(&meta, spec, "", errs, EndpointSliceObject::from_doc) {
                let service = raw
                    .value
                    .get("metadata")
                    .and_then(|m| m.get("labels"))
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .and_then(|v| v.as_str());
                let spec = Slice { service, slice };
                loaded.endpoint_slices.push(Obj { meta, spec });
            }
            return;
        }
        _ => {}
    }
    if !spec.is_object() {
        errs.push(meta.error("spec", "required (a mapping)"));
        return;
    }
    match meta.kind {
        "Mapping" => loaded.mappings.push(Untyped { meta, spec, raw }),
        "Host" => {
            if let Some(s) = typed::<HostSpec>(&meta, spec, "spec", errs) {
                unknown(&meta, "spec", &s.extra, errs);
                if let Some(tls) = &s.tls {
                    unknown(&meta, "spec.tls", &tls.extra, errs);
                }
                loaded.hosts.push(Obj { meta, spec: s });
            }
        }
        "Listener" => {
            if let Some(s) = typed::<ListenerSpec>(&meta, spec, "spec", errs) {
                unknown(&meta, "spec", &s.extra, errs);
                loaded.listeners.push(Obj { meta, spec: s });
            }
        }
        "TLSContext" => {
            if let Some(s) = typed::<TlsContextSpec>(&meta, spec, "spec", errs) {
                unknown(&meta, "spec", &s.extra, errs);
                loaded.tls_contexts.push(Obj { meta, spec: s });
            }
        }
        "Module" => {
            if let Some(s) = typed::<ModuleSpec>(&meta, spec, "spec", errs) {
                unknown(&meta, "spec", &s.extra, errs);
                loaded.modules.push(Obj { meta, spec: s });
            }
        }
        "TCPMapping" => {
            if let Some(s) = typed::<TcpMappingSpec>(&meta, spec, "spec", errs) {
                unknown(&meta, "spec", &s.extra, errs);
                loaded.tcp_mappings.push(Obj { meta, spec: s });
            }
        }
        // AuthService and RateLimitService: checked by translate::services.
        "AuthService" => {
            if let Some(s) = typed::<AuthServiceSpec>(&meta, spec, "spec", errs) {
                unknown(&meta, "spec", &s.extra, errs);
                loaded.auth_services.push(Obj { meta, spec: s });
            }
        }
        "RateLimitService" => {
            if let Some(s) = typed::<RateLimitServiceSpec>(&meta, spec, "spec", errs) {
                unknown(&meta, "spec", &s.extra, errs);
                loaded.rate_limit_services.push(Obj { meta, spec: s });
            }
        }
        // LogService / TracingService: unknown fields are reported where they are planned.
        "LogService" => {
            if let Some(s) = typed::<LogServiceSpec>(&meta, spec, "spec", errs) {
                loaded.log_services.push(Obj { meta, spec: s });
            }
        }
        "TracingService" => {
            if let Some(s) = typed::<TracingServiceSpec>(&meta, spec, "spec", errs) {
                loaded.tracing_services.push(Obj { meta, spec: s });
            }
        }
        _ => {}
    }
}

/// Types a Mapping's spec (errors and unknown-field warnings reported as for every kind).
pub(crate) fn mapping_spec(meta: &Meta, spec: Doc<'_>, errs: &mut Errors) -> Option<MappingSpec> {
    let mut s = typed_by(meta, spec, "spec", errs, MappingSpec::from_doc)?;
    // A v2 Mapping without a host binds to every Host (docs/design.md#v2-and-v3alpha1).
    if meta.version == Version::V2 && s.hostname.is_none() && s.host.is_none() {
        s.hostname = Some("*".into());
    }
    unknown(meta, "spec", &s.extra, errs);
    for (field, extra) in [
        ("retry_policy", s.retry_policy.as_ref().map(|r| &r.extra)),
        ("cors", s.cors.as_ref().map(|c| &c.extra)),
        ("load_balancer", s.load_balancer.as_ref().map(|l| &l.extra)),
    ] {
        if let Some(extra) = extra {
            unknown(meta, &format!("spec.{field}"), extra, errs);
        }
    }
    Some(s)
}

/// Types `value`; on failure, names the first field whose value alone does not type (every
/// spec field is optional at the serde level, so a one-key object isolates the culprit).
/// Replaces every quoted value in a message with `"<redacted>"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        out.push_str(if i % 2 == 0 { "<redacted>" } else { part });
    }
    out
}

pub(crate) fn typed<T: DeserializeOwned>(
    meta: &Meta,
    value: Doc<'_>,
    prefix: &str,
    errs: &mut Errors,
) -> Option<T> {
    // A `Doc` is a deserializer: typing borrows the document instead of copying it.
    typed_by(meta, value, prefix, errs, |v| T::deserialize(v))
}

/// [`typed`], with `value` typed by `de` (the culprit search still types one-key objects
/// the ordinary way).
fn typed_by<'a, T: DeserializeOwned>(
    meta: &Meta,
    value: Doc<'a>,
    prefix: &str,
    errs: &mut Errors,
    de: impl FnOnce(Doc<'a>) -> Result<T, serde_json::Error>,
) -> Option<T> {
    match de(value) {
        Ok(t) => Some(t),
        Err(whole) => {
            // Only on failure: the culprit is typed alone, as a `serde_json::Value`.
            let culprit = value.entries().and_then(|mut m| {
                m.find_map(|(k, v)| {
                    let one = Value::Object([(k.to_string(), v.to_value())].into_iter().collect());
                    serde_json::from_value::<T>(one)
                        .err()
                        .map(|e| (k.to_string(), e))
                })
            });
            let (field, message) = match culprit {
                Some((k, e)) if prefix.is_empty() => (k, e.to_string()),
                Some((k, e)) => (format!("{prefix}.{k}"), e.to_string()),
                None => (prefix.to_string(), whole.to_string()),
            };
            errs.push(meta.error(&field, message));
            None
        }
    }
}

/// Unknown fields are accepted and reported as warnings.
pub(crate) fn unknown(meta: &Meta, prefix: &str, extra: &Extra, errs: &mut Errors) {
    let names: BTreeSet<&String> = extra.keys().collect();
    for k in names {
        errs.push(meta.warning(&format!("{prefix}.{k}"), "unknown field, ignored"));
    }
}
