//! The `ambassador` Module → global [`Settings`] (docs/design.md#module): HCM options, Mapping and
//! cluster defaults, the access log and the built-in routes (which exist, where they go).

mod options;

use std::collections::BTreeMap;

use crate::api::common::{AddHeader, KeepaliveSpec, OneOrMany};
use crate::api::module::{BuiltinRouteSpec, MappingDefaults, ModuleConfig, ModuleSpec};
use crate::ir::{AccessLog, CircuitBreaker, Cors, RetryPolicy};

use super::endpoint::Resolver;
use super::load::{Obj, unknown};
use super::service::Service;
use super::{Errors, Options, policy};

pub(crate) use options::HttpOptions;

/// Paths of the built-in routes, which are also their default rewrites
/// (docs/design.md#built-in-routes).
pub(crate) const CHECK_READY: &str = "/ambassador/v0/check_ready";
pub(crate) const CHECK_ALIVE: &str = "/ambassador/v0/check_alive";
pub(crate) const DIAGNOSTICS: &str = "/ambassador/v0/";

/// One built-in route as the Module leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltinRoute {
    pub prefix: String,
    /// The path prefix sent upstream. As in Emissary, a custom `prefix` alone keeps the
    /// built-in path here, so legate's probe server still understands the request.
    pub rewrite: String,
    /// The upstream; `None` is legate's probe server.
    pub service: Option<Service>,
}

impl BuiltinRoute {
    fn at(path: &str) -> Self {
        BuiltinRoute {
            prefix: path.into(),
            rewrite: path.into(),
            service: None,
        }
    }
}

/// Emissary's default access-log format.
pub(crate) const DEFAULT_LOG_FORMAT: &str = "ACCESS [%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Global settings, from the Module or their defaults.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub use_remote_address: bool,
    pub server_name: Option<String>,
    /// Route `/ambassador/v0/` publicly: only when the Module enables it explicitly.
    pub diagnostics: Option<BuiltinRoute>,
    pub liveness: Option<BuiltinRoute>,
    pub readiness: Option<BuiltinRoute>,
    pub request_timeout_ms: u64,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    pub listener_idle_timeout_ms: Option<u64>,
    pub max_request_headers_kb: Option<u32>,
    pub merge_slashes: bool,
    pub strip_matching_host_port: bool,
    pub reject_escaped_slashes: bool,
    pub suppress_envoy_headers: bool,
    pub add_linkerd_headers: bool,
    pub buffer_limit_bytes: Option<u32>,
    pub enable_http10: bool,
    pub preserve_external_request_id: bool,
    pub circuit_breakers: Vec<CircuitBreaker>,
    pub retry: Option<RetryPolicy>,
    pub cors: Option<Cors>,
    pub load_balancer: Option<policy::Balancer>,
    /// The Module's `resolver`, the default of every Mapping and TCPMapping.
    pub resolver: Option<Resolver>,
    pub keepalive: Option<KeepaliveSpec>,
    pub enable_ipv4: bool,
    pub enable_ipv6: bool,
    pub use_ambassador_namespace_for_service_resolution: bool,
    pub access_log: Option<AccessLog>,
    pub add_request_headers: Option<BTreeMap<String, AddHeader>>,
    pub add_response_headers: Option<BTreeMap<String, AddHeader>>,
    pub remove_request_headers: Vec<String>,
    pub remove_response_headers: Vec<String>,
    pub tls_secret_namespacing: bool,
    /// HCM options (and the upstream header-name case) checked by [`options`].
    pub http: HttpOptions,
    /// RateLimitService: `default_label_domain` and `default_labels` (read by
    /// translate::services).
    pub default_label_domain: Option<String>,
    pub default_labels: Option<serde_json::Value>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            use_remote_address: true,
            server_name: None,
            diagnostics: None,
            liveness: Some(BuiltinRoute::at(CHECK_ALIVE)),
            readiness: Some(BuiltinRoute::at(CHECK_READY)),
            request_timeout_ms: 3000,
            cluster_idle_timeout_ms: None,
            cluster_max_connection_lifetime_ms: None,
            listener_idle_timeout_ms: None,
            max_request_headers_kb: None,
            merge_slashes: false,
            strip_matching_host_port: false,
            reject_escaped_slashes: false,
            suppress_envoy_headers: false,
            add_linkerd_headers: false,
            buffer_limit_bytes: None,
            enable_http10: false,
            preserve_external_request_id: false,
            circuit_breakers: Vec::new(),
            retry: None,
            cors: None,
            load_balancer: None,
            resolver: None,
            keepalive: None,
            enable_ipv4: true,
            enable_ipv6: false,
            use_ambassador_namespace_for_service_resolution: false,
            access_log: Some(AccessLog {
                path: "/dev/fd/1".into(),
                text_format: Some(DEFAULT_LOG_FORMAT.into()),
                json_format: Vec::new(),
            }),
            add_request_headers: None,
            add_response_headers: None,
            remove_request_headers: Vec::new(),
            remove_response_headers: Vec::new(),
            tls_secret_namespacing: true,
            http: HttpOptions::default(),
            default_label_domain: None,
            default_labels: None,
        }
    }
}

/// Picks the Module named `ambassador` (the first in processing order) and reads it. A Module
/// with an invalid value is left out entirely, with an error naming the field.
pub(crate) fn settings(modules: &[Obj<ModuleSpec>], _o: &Options, errs: &mut Errors) -> Settings {
    let mut chosen: Option<&Obj<ModuleSpec>> = None;
    for m in modules {
        if m.meta.name != "ambassador" {
            errs.push(m.meta.warning(
                "metadata.name",
                "only the Module named ambassador is supported; ignored",
            ));
        } else if let Some(first) = chosen {
            errs.push(m.meta.error(
                "metadata.name",
                format!(
                    "a Module ambassador already exists ({}); ignored",
                    first.meta.id()
                ),
            ));
        } else {
            chosen = Some(m);
        }
    }
    let Some(m) = chosen else {
        return Settings::default();
    };
    let config = m.spec.config.clone().unwrap_or_default();
    match read(&config) {
        Ok(s) => {
            warn_config(m, &config, errs);
            s
        }
        Err((field, msg)) => {
            errs.push(m.meta.error(&format!("spec.config.{field}"), msg));
            Settings::default()
        }
    }
}

fn sub(prefix: &'static str) -> impl Fn(policy::FieldError) -> policy::FieldError {
    move |(f, m)| (format!("{prefix}{f}"), m)
}

fn read(c: &ModuleConfig) -> Result<Settings, policy::FieldError> {
    let d = Settings::default();
    let defaults = merged_defaults(c.defaults.as_ref());
    let enable_ipv4 = c.enable_ipv4.unwrap_or(true);
    let enable_ipv6 = c.enable_ipv6.unwrap_or(false);
    policy::dns_family(enable_ipv4, enable_ipv6)?;
    let resolver = c
        .resolver
        .as_deref()
        .map(Resolver::parse)
        .transpose()
        .map_err(|m| ("resolver".to_string(), m))?;
    // Envoy refuses values outside 1-8192, and with them every listener.
    if let Some(kb) = c.max_request_headers_kb
        && !(1..=8192).contains(&kb)
    {
        return Err((
            "max_request_headers_kb".to_string(),
            format!("{kb} is not in 1-8192"),
        ));
    }
    Ok(Settings {
        use_remote_address: c.use_remote_address.unwrap_or(true),
        server_name: c.server_name.clone(),
        diagnostics: builtin("diagnostics", c.diagnostics.as_ref(), false, DIAGNOSTICS)?,
        liveness: builtin(
            "liveness_probe",
            c.liveness_probe.as_ref(),
            true,
            CHECK_ALIVE,
        )?,
        readiness: builtin(
            "readiness_probe",
            c.readiness_probe.as_ref(),
            true,
            CHECK_READY,
        )?,
        request_timeout_ms: c.cluster_request_timeout_ms.unwrap_or(3000),
        cluster_idle_timeout_ms: timeout_set(c.cluster_idle_timeout_ms),
        cluster_max_connection_lifetime_ms: timeout_set(c.cluster_max_connection_lifetime_ms),
        listener_idle_timeout_ms: timeout_set(c.listener_idle_timeout_ms),
        max_request_headers_kb: c.max_request_headers_kb,
        merge_slashes: c.merge_slashes.unwrap_or(false),
        strip_matching_host_port: c.strip_matching_host_port.unwrap_or(false),
        reject_escaped_slashes: c.reject_requests_with_escaped_slashes.unwrap_or(false),
        suppress_envoy_headers: c.suppress_envoy_headers.unwrap_or(false),
        add_linkerd_headers: c.add_linkerd_headers.unwrap_or(false),
        buffer_limit_bytes: c.buffer_limit_bytes,
        enable_http10: c.enable_http10.unwrap_or(false),
        preserve_external_request_id: c.preserve_external_request_id.unwrap_or(false),
        circuit_breakers: match &c.circuit_breakers {
            Some(cb) => policy::circuit_breakers(cb).map_err(sub("circuit_breakers"))?,
            None => Vec::new(),
        },
        retry: c
            .retry_policy
            .as_ref()
            .map(policy::retry)
            .transpose()
            .map_err(sub("retry_policy."))?,
        cors: c
            .cors
            .as_ref()
            .map(policy::cors)
            .transpose()
            .map_err(sub("cors."))?,
        resolver,
        load_balancer: c
            .load_balancer
            .as_ref()
            .map(policy::load_balancer)
            .transpose()
            .map_err(sub("load_balancer."))?,
        keepalive: c.keepalive.clone(),
        enable_ipv4,
        enable_ipv6,
        use_ambassador_namespace_for_service_resolution: c
            .use_ambassador_namespace_for_service_resolution
            .unwrap_or(false),
        access_log: access_log(c)?,
        add_request_headers: defaults.add_request_headers,
        add_response_headers: defaults.add_response_headers,
        remove_request_headers: defaults
            .remove_request_headers
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default(),
        remove_response_headers: defaults
            .remove_response_headers
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default(),
        tls_secret_namespacing: defaults
            .tls_secret_namespacing
            .unwrap_or(d.tls_secret_namespacing),
        http: options::read(c)?,
        default_label_domain: c.default_label_domain.clone(),
        default_labels: c.default_labels.clone(),
    })
}

/// A built-in route, or `None` when disabled. Probes are on unless `enabled: false`;
/// diagnostics only with an explicit `enabled: true` (docs/design.md#built-in-routes).
/// Empty overrides count as
/// unset, as in Emissary.
fn builtin(
    key: &str,
    spec: Option<&BuiltinRouteSpec>,
    on_by_default: bool,
    path: &str,
) -> Result<Option<BuiltinRoute>, policy::FieldError> {
    let enabled = spec.and_then(|s| s.enabled).unwrap_or(on_by_default);
    let Some(spec) = spec.filter(|_| enabled) else {
        return Ok(enabled.then(|| BuiltinRoute::at(path)));
    };
    let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let prefix = set(&spec.prefix).unwrap_or_else(|| path.into());
    if !prefix.starts_with('/') {
        return Err((
            format!("{key}.prefix"),
            format!("{prefix:?} must start with /"),
        ));
    }
    let service = set(&spec.service)
        .map(|s| Service::parse(&s))
        .transpose()
        .map_err(|m| (format!("{key}.service"), m))?;
    Ok(Some(BuiltinRoute {
        prefix,
        rewrite: set(&spec.rewrite).unwrap_or_else(|| path.into()),
        service,
    }))
}

/// `defaults.<key>` overridden by `defaults.httpmapping.<key>`.
fn merged_defaults(d: Option<&crate::api::module::ModuleDefaults>) -> MappingDefaults {
    let Some(d) = d else {
        return MappingDefaults::default();
    };
    let mut m = d.top.clone();
    if let Some(h) = &d.httpmapping {
        m.add_request_headers = h.add_request_headers.clone().or(m.add_request_headers);
        m.add_response_headers = h.add_response_headers.clone().or(m.add_response_headers);
        m.remove_request_headers = h
            .remove_request_headers
            .clone()
            .or(m.remove_request_headers);
        m.remove_response_headers = h
            .remove_response_headers
            .clone()
            .or(m.remove_response_headers);
        m.tls_secret_namespacing = h.tls_secret_namespacing.or(m.tls_secret_namespacing);
    }
    m
}

fn access_log(c: &ModuleConfig) -> Result<Option<AccessLog>, policy::FieldError> {
    let path = c.envoy_log_path.clone().unwrap_or("/dev/fd/1".into());
    match c.envoy_log_type.as_deref().unwrap_or("text") {
        "text" => {
            let text = match &c.envoy_log_format {
                None => DEFAULT_LOG_FORMAT.to_string(),
                Some(serde_json::Value::String(s)) => format!("{s}\n"),
                Some(_) => {
                    return Err((
                        "envoy_log_format".into(),
                        "must be a string for envoy_log_type text".into(),
                    ));
                }
            };
            Ok(Some(AccessLog {
                path,
                text_format: Some(text),
                json_format: Vec::new(),
            }))
        }
        "json" | "typed_json" => {
            let fields = match &c.envoy_log_format {
                None => Vec::new(),
                Some(serde_json::Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                        other => Ok((k.clone(), other.to_string())),
                    })
                    .collect::<Result<Vec<_>, policy::FieldError>>()?,
                Some(_) => {
                    return Err((
                        "envoy_log_format".into(),
                        "must be a mapping for envoy_log_type json".into(),
                    ));
                }
            };
            Ok(Some(AccessLog {
                path,
                text_format: None,
                json_format: fields,
            }))
        }
        other => Err((
            "envoy_log_type".into(),
            format!("{other:?} is not text, json or typed_json"),
        )),
    }
}

/// Unknown, inert and not-yet-implemented keys are warnings: accepted, reported.
fn warn_config(m: &Obj<ModuleSpec>, c: &ModuleConfig, errs: &mut Errors) {
    unknown(&m.meta, "spec.config", &c.extra, errs);
    let inert = [
        (
            "xff_num_trusted_hops",
            c.xff_num_trusted_hops.is_some(),
            "use Listener l7Depth",
        ),
        (
            "use_proxy_proto",
            c.use_proxy_proto.is_some(),
            "use Listener protocol HTTPPROXY",
        ),
        (
            "x_forwarded_proto_redirect",
            c.x_forwarded_proto_redirect.is_some(),
            "use Host requestPolicy",
        ),
        ("service_port", c.service_port.is_some(), "use a Listener"),
        ("auth_enabled", c.auth_enabled.is_some(), ""),
        ("debug_mode", c.debug_mode.is_some(), ""),
        (
            "prune_unreachable_routes",
            c.prune_unreachable_routes.is_some(),
            "",
        ),
        (
            "regex_type",
            c.regex_type.is_some(),
            "regexes are always RE2",
        ),
        (
            "regex_max_size",
            c.regex_max_size.is_some(),
            "Envoy's runtime limit applies",
        ),
        (
            "admin_port",
            c.admin_port.is_some(),
            "set the admin address in legate's configuration",
        ),
    ];
    for (key, set, hint) in inert {
        if set {
            let msg = if hint.is_empty() {
                "has no effect".to_string()
            } else {
                format!("has no effect; {hint}")
            };
            errs.push(m.meta.warning(&format!("spec.config.{key}"), msg));
        }
    }
    let overrides = c.header_case_overrides.as_ref().and_then(|v| v.as_array());
    if overrides.is_some_and(|o| !o.is_empty()) {
        errs.push(m.meta.warning(
            "spec.config.header_case_overrides",
            "ignored: Envoy 1.40 has no per-header case rules (Emissary's patched Envoy adds them); use proper_case",
        ));
    }
    if c.error_response_overrides.is_some() {
        errs.push(m.meta.warning(
            "spec.config.error_response_overrides",
            "not supported yet; ignored",
        ));
    }
    for (key, t) in [
        ("diagnostics", &c.diagnostics),
        ("liveness_probe", &c.liveness_probe),
        ("readiness_probe", &c.readiness_probe),
    ] {
        let Some(t) = t else { continue };
        unknown(&m.meta, &format!("spec.config.{key}"), &t.extra, errs);
        if t.allow_non_local.is_some() {
            let msg = if key == "diagnostics" {
                "has no effect; legate serves diagnostics on its loopback admin address"
            } else {
                "applies to diagnostics only; ignored"
            };
            errs.push(
                m.meta
                    .warning(&format!("spec.config.{key}.allow_non_local"), msg),
            );
        }
    }
}

/// The connection timeouts (`cluster_idle_timeout_ms`, `cluster_max_connection_lifetime_ms`,
/// `listener_idle_timeout_ms`) read 0 as unset, so Envoy's defaults apply, as in Emissary; a
/// 0 passed on would disable the timeout instead (docs/compatibility.md).
pub(crate) fn timeout_set(ms: Option<u64>) -> Option<u64> {
    ms.filter(|&ms| ms > 0)
}
