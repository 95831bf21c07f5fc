//! The `ambassador` Module → global [`Settings`] (reference §6): HCM options, Mapping and
//! cluster defaults, the access log and which built-in routes exist.

use std::collections::BTreeMap;

use crate::api::common::{AddHeader, KeepaliveSpec, OneOrMany};
use crate::api::module::{MappingDefaults, ModuleConfig, ModuleSpec};
use crate::ir::{AccessLog, CircuitBreaker, Cors, RetryPolicy};

use super::endpoint::Resolver;
use super::load::{Obj, unknown};
use super::{Errors, Options, policy};

/// Emissary's default access-log format.
pub(crate) const DEFAULT_LOG_FORMAT: &str = "ACCESS [%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/// Global settings, from the Module or their defaults.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub use_remote_address: bool,
    pub server_name: Option<String>,
    /// Route `/ambassador/v0/` publicly: only when the Module enables it explicitly.
    pub diagnostics: bool,
    pub liveness: bool,
    pub readiness: bool,
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            use_remote_address: true,
            server_name: None,
            diagnostics: false,
            liveness: true,
            readiness: true,
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
    Ok(Settings {
        use_remote_address: c.use_remote_address.unwrap_or(true),
        server_name: c.server_name.clone(),
        diagnostics: c.diagnostics.as_ref().and_then(|t| t.enabled) == Some(true),
        liveness: c.liveness_probe.as_ref().and_then(|t| t.enabled) != Some(false),
        readiness: c.readiness_probe.as_ref().and_then(|t| t.enabled) != Some(false),
        request_timeout_ms: c.cluster_request_timeout_ms.unwrap_or(3000),
        cluster_idle_timeout_ms: c.cluster_idle_timeout_ms,
        cluster_max_connection_lifetime_ms: c.cluster_max_connection_lifetime_ms,
        listener_idle_timeout_ms: c.listener_idle_timeout_ms,
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
    })
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
    let unsupported = [
        ("ip_allow", c.ip_allow.is_some()),
        ("ip_deny", c.ip_deny.is_some()),
        ("allow_chunked_length", c.allow_chunked_length.is_some()),
        (
            "headers_with_underscores_action",
            c.headers_with_underscores_action.is_some(),
        ),
        (
            "forward_client_cert_details",
            c.forward_client_cert_details.is_some(),
        ),
        (
            "set_current_client_cert_details",
            c.set_current_client_cert_details.is_some(),
        ),
        ("proper_case", c.proper_case.is_some()),
        ("header_case_overrides", c.header_case_overrides.is_some()),
        (
            "error_response_overrides",
            c.error_response_overrides.is_some(),
        ),
    ];
    for (key, set) in unsupported {
        if set {
            errs.push(
                m.meta
                    .warning(&format!("spec.config.{key}"), "not supported yet; ignored"),
            );
        }
    }
    for (key, t) in [
        ("diagnostics", &c.diagnostics),
        ("liveness_probe", &c.liveness_probe),
        ("readiness_probe", &c.readiness_probe),
    ] {
        if let Some(t) = t {
            for k in t.extra.keys() {
                errs.push(m.meta.warning(
                    &format!("spec.config.{key}.{k}"),
                    "not supported yet; ignored",
                ));
            }
        }
    }
}
