//! The AuthService and RateLimitService parts of the Envoy configuration: the ext_authz and
//! ratelimit HTTP filters (or the fail-closed stand-in), each route's per-filter settings and
//! its rate-limit descriptors (docs/design.md#authservice, docs/design.md#ratelimitservice).

use envoy_types::pb::envoy::config::core::v3::{
    ApiVersion, DataSource, GrpcService, HeaderValue, HttpUri, data_source, grpc_service, http_uri,
};
use envoy_types::pb::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use envoy_types::pb::envoy::config::route::v3::{FilterConfig, RateLimit, rate_limit};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, BufferSettings, CheckSettings, ExtAuthz,
    ExtAuthzPerRoute, HttpService, ext_authz, ext_authz_per_route,
};
use envoy_types::pb::envoy::extensions::filters::http::lua::v3::Lua;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::RateLimit as RateLimitConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListStringMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration};

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{ExtensionConfigSource, TypedExtensionConfig};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use prost::Name;

use super::{ads, duration_ms, pack, u32v};
use crate::ir;

/// The HTTP filter names; per-route settings are keyed by them, and they are the names of
/// the filters' ECDS resources.
pub(super) const EXT_AUTHZ: &str = "envoy.filters.http.ext_authz";
pub(super) const RATELIMIT: &str = "envoy.filters.http.ratelimit";

static NAMES: LazyLock<[String; 2]> =
    LazyLock::new(|| [EXT_AUTHZ.to_string(), RATELIMIT.to_string()]);

/// Every HTTP connection manager has both filters, their configs served by ECDS
/// (docs/design.md#extension-config-discovery): adding, changing or removing an AuthService or
/// RateLimitService changes these two resources, never a listener, so no connection is
/// drained. Each filter may be its real type or the pass-through stand-in.
pub(super) fn discovery_filters() -> [HttpFilter; 2] {
    let lua = Lua::type_url();
    let filter = |name: &str, types: Vec<String>| HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::ConfigDiscovery(
            ExtensionConfigSource {
                config_source: Some(ads()),
                type_urls: types,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    [
        filter(EXT_AUTHZ, vec![ExtAuthz::type_url(), lua.clone()]),
        filter(RATELIMIT, vec![RateLimitConfig::type_url(), lua]),
    ]
}

/// The two ECDS resources, from the first HTTP connection manager (they all carry the same
/// services); each is a pass-through while its service is absent.
pub(super) fn extension_configs(ir: &ir::Ir) -> Vec<(&'static String, u64, Any)> {
    let hcm = ir
        .listeners
        .iter()
        .flat_map(|l| &l.filter_chains)
        .find_map(|fc| match &fc.action {
            ir::ChainAction::Http(h) => Some(h),
            ir::ChainAction::Tcp(_) => None,
        });
    let auth = hcm.and_then(|h| h.ext_authz.as_ref());
    let rate = hcm.and_then(|h| h.rate_limit.as_ref());
    let typed = |name: &String, config: Any| {
        pack(TypedExtensionConfig {
            name: name.clone(),
            typed_config: Some(config),
        })
    };
    vec![
        (
            &NAMES[0],
            ir::Ir::hash_of(&auth),
            typed(&NAMES[0], auth.map_or_else(pass_through, ext_authz)),
        ),
        (
            &NAMES[1],
            ir::Ir::hash_of(&rate),
            typed(&NAMES[1], rate.map_or_else(pass_through, ratelimit)),
        ),
    ]
}

/// Past its timeout, a check still running under a filter config Envoy has just replaced
/// has ended; this margin covers the time Envoy takes to hand the new config to its worker
/// threads on a loaded machine.
const LINGER_MARGIN: Duration = Duration::from_secs(1);
/// At most this long, also for a service without a timeout: readiness reports Envoy stuck
/// when a change stays unacknowledged for 10 s, and a lingering cluster holds back the
/// acknowledgement of the cluster removal (ARCHITECTURE.md#readiness).
const LINGER_MAX: Duration = Duration::from_secs(8);

/// The clusters of the auth and rate-limit services, each with how long it must outlive the
/// filter config that uses it: Envoy calls these services through a client owned by the
/// cluster, and removing the cluster resets every call in flight, which the filter answers as
/// a failed check (403, or `status_on_error`). So a cluster stays until the checks sent under
/// the previous config have had their full timeout (docs/design.md#push-order-and-warming).
pub(super) fn lingering_clusters(ir: &ir::Ir) -> BTreeMap<&String, Duration> {
    let timeout = |ms: u64| match ms {
        0 => LINGER_MAX,
        ms => (Duration::from_millis(ms) + LINGER_MARGIN).min(LINGER_MAX),
    };
    let mut out = BTreeMap::new();
    let hcms = ir
        .listeners
        .iter()
        .flat_map(|l| &l.filter_chains)
        .filter_map(|fc| match &fc.action {
            ir::ChainAction::Http(h) => Some(h),
            ir::ChainAction::Tcp(_) => None,
        });
    for h in hcms {
        let auth = match &h.ext_authz {
            Some(ir::ExtAuthz::Service(f)) => Some((&f.cluster, timeout(f.timeout_ms))),
            _ => None,
        };
        let rate = h
            .rate_limit
            .as_ref()
            .map(|r| (&r.cluster, timeout(r.timeout_ms)));
        for (cluster, linger) in auth.into_iter().chain(rate) {
            let entry = out.entry(cluster).or_insert(linger);
            *entry = (*entry).max(linger);
        }
    }
    out
}

/// A filter that does nothing: a Lua script without request or response functions.
fn pass_through() -> Any {
    pack(Lua {
        default_source_code: Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString(
                "-- no AuthService or RateLimitService: requests pass\n".into(),
            )),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The typed config of the authorization filter: ext_authz, or the Lua stand-in of a
/// misconfigured AuthService.
pub(super) fn ext_authz(a: &ir::ExtAuthz) -> Any {
    match a {
        ir::ExtAuthz::Service(f) => pack(ext_authz_filter(f)),
        ir::ExtAuthz::FailClosed { message } => pack(fail_closed(message)),
    }
}

fn ext_authz_filter(f: &ir::AuthFilter) -> ExtAuthz {
    let timeout = Some(duration_ms(f.timeout_ms));
    let (services, allowed_headers) = match &f.protocol {
        ir::AuthProtocol::Grpc => (
            ext_authz::Services::GrpcService(GrpcService {
                timeout,
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: f.cluster.clone(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            // Unset: every request header goes to a gRPC service.
            None,
        ),
        ir::AuthProtocol::Http(h) => (
            ext_authz::Services::HttpService(HttpService {
                server_uri: Some(HttpUri {
                    uri: h.uri.clone(),
                    timeout,
                    http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(
                        f.cluster.clone(),
                    )),
                }),
                path_prefix: h.path_prefix.clone(),
                authorization_request: Some(AuthorizationRequest {
                    headers_to_add: h
                        .headers_to_add
                        .iter()
                        .map(|(k, v)| HeaderValue {
                            key: k.clone(),
                            value: v.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                authorization_response: Some(AuthorizationResponse {
                    allowed_upstream_headers: Some(names(&h.allowed_authorization_headers)),
                    allowed_client_headers: Some(names(&h.allowed_authorization_headers)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Some(names(&h.allowed_request_headers)),
        ),
    };
    ExtAuthz {
        services: Some(services),
        transport_api_version: ApiVersion::V3 as i32,
        allowed_headers,
        // Headers the service adds may select another route.
        clear_route_cache: true,
        with_request_body: f.body.map(|b| BufferSettings {
            max_request_bytes: b.max_bytes,
            allow_partial_message: b.allow_partial,
            ..Default::default()
        }),
        failure_mode_allow: f.failure_mode_allow,
        status_on_error: f.status_on_error.map(|code| HttpStatus {
            code: i32::try_from(code).unwrap_or(403),
        }),
        ..Default::default()
    }
}

/// Header names matched exactly, whatever their case.
fn names(list: &[String]) -> ListStringMatcher {
    ListStringMatcher {
        patterns: list
            .iter()
            .map(|h| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(h.clone())),
                ignore_case: true,
            })
            .collect(),
    }
}

/// Answers every request 500 with a JSON body naming the problem (routes that disable the
/// filter, the probe routes, are not affected).
fn fail_closed(message: &str) -> Lua {
    let head = format!(
        "{{\"message\":{},\"request_id\":\"",
        serde_json::Value::String(message.to_string())
    );
    let script = format!(
        "function envoy_on_request(handle)\n\
         \x20 local id = string.gsub(handle:headers():get(\"x-request-id\") or \"\", '[^%w%-]', '')\n\
         \x20 handle:respond({{[\":status\"] = \"500\", [\"content-type\"] = \"application/json\"}},\n\
         \x20   {} .. id .. '\",\"status_code\":500}}')\n\
         end\n",
        lua_string(&head)
    );
    Lua {
        default_source_code: Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString(script)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Lua string literal holding `s`.
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            other => out.push_str(&format!("\\{other:03}")),
        }
    }
    out.push('"');
    out
}

/// The typed config of the ratelimit filter.
pub(super) fn ratelimit(r: &ir::RateLimitFilter) -> Any {
    pack(RateLimitConfig {
        domain: r.domain.clone(),
        request_type: "both".into(),
        // Envoy's default (unset) is 20 ms; 0 means no timeout.
        timeout: Some(if r.timeout_ms == 0 {
            ProtoDuration::default()
        } else {
            duration_ms(r.timeout_ms)
        }),
        failure_mode_deny: r.failure_mode_deny,
        rate_limited_as_resource_exhausted: r.resource_exhausted,
        rate_limit_service: Some(RateLimitServiceConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: r.cluster.clone(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            transport_api_version: ApiVersion::V3 as i32,
        }),
        ..Default::default()
    })
}

/// A route's per-filter setting for the authorization filter, if it has one.
pub(super) fn route_auth(auth: &ir::RouteAuth) -> Option<Any> {
    match auth {
        ir::RouteAuth::Default => None,
        // The generic form works whatever the filter's type (ext_authz or the stand-in).
        ir::RouteAuth::Disabled => Some(pack(FilterConfig {
            disabled: true,
            ..Default::default()
        })),
        ir::RouteAuth::ContextExtensions(ext) => Some(pack(ExtAuthzPerRoute {
            r#override: Some(ext_authz_per_route::Override::CheckSettings(
                CheckSettings {
                    context_extensions: ext.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    ..Default::default()
                },
            )),
        })),
    }
}

/// A route's rate-limit descriptors.
pub(super) fn rate_limits(limits: &[ir::RateLimit]) -> Vec<RateLimit> {
    use rate_limit::action::{self, ActionSpecifier};
    limits
        .iter()
        .map(|l| RateLimit {
            stage: Some(u32v(0)),
            actions: l
                .actions
                .iter()
                .map(|a| rate_limit::Action {
                    action_specifier: Some(match a {
                        ir::RateLimitAction::SourceCluster => {
                            ActionSpecifier::SourceCluster(action::SourceCluster {})
                        }
                        ir::RateLimitAction::DestinationCluster => {
                            ActionSpecifier::DestinationCluster(action::DestinationCluster {})
                        }
                        ir::RateLimitAction::RemoteAddress => {
                            ActionSpecifier::RemoteAddress(action::RemoteAddress {})
                        }
                        ir::RateLimitAction::GenericKey { key, value } => {
                            ActionSpecifier::GenericKey(action::GenericKey {
                                descriptor_value: value.to_string(),
                                descriptor_key: key.to_string(),
                                ..Default::default()
                            })
                        }
                        ir::RateLimitAction::RequestHeader {
                            key,
                            header,
                            skip_if_absent,
                        } => ActionSpecifier::RequestHeaders(action::RequestHeaders {
                            header_name: header.to_string(),
                            descriptor_key: key.to_string(),
                            skip_if_absent: *skip_if_absent,
                        }),
                    }),
                })
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// [`rate_limits`] as the protobuf encoding of `RouteAction.rate_limits` (field 13 of each
/// entry's key), appended to `buf`: the same bytes prost writes for those messages, written
/// without building them (Envoy's API reference, `config.route.v3.RateLimit` and
/// `RateLimit.Action`). Fields are written in field-number order and empty strings and `false`
/// are left out, as proto3 encoding does.
pub(super) fn encode_rate_limits(limits: &[ir::RateLimit], buf: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    for l in limits {
        let actions: usize = l.actions.iter().map(|a| nested_len(action_len(a))).sum();
        // `stage` (1): an explicit 0, an empty UInt32Value.
        let len = STAGE_ZERO.len() + actions;
        encode_key(ROUTE_ACTION_RATE_LIMITS, WireType::LengthDelimited, buf);
        encode_varint(len as u64, buf);
        buf.extend_from_slice(&STAGE_ZERO);
        for a in &l.actions {
            encode_key(RATE_LIMIT_ACTIONS, WireType::LengthDelimited, buf);
            encode_varint(action_len(a) as u64, buf);
            encode_action(a, buf);
        }
    }
}

/// `RouteAction.rate_limits`, `RateLimit.actions`.
const ROUTE_ACTION_RATE_LIMITS: u32 = 13;
const RATE_LIMIT_ACTIONS: u32 = 3;
/// `RateLimit.stage` (field 1, length-delimited) holding an empty `UInt32Value` (value 0).
const STAGE_ZERO: [u8; 2] = [0x0a, 0x00];

/// The `RateLimit.Action` oneof's field numbers.
const ACTION_SOURCE_CLUSTER: u32 = 1;
const ACTION_DESTINATION_CLUSTER: u32 = 2;
const ACTION_REQUEST_HEADERS: u32 = 3;
const ACTION_REMOTE_ADDRESS: u32 = 4;
const ACTION_GENERIC_KEY: u32 = 5;

/// The length of a length-delimited field (key of a field number below 16, length, body).
fn nested_len(body: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(body as u64) + body
}

/// A string field (field number below 16): nothing when empty.
fn string_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { nested_len(s.len()) }
}

fn encode_string(tag: u32, s: &str, buf: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s.as_bytes());
    }
}

/// The body of the `action` oneof's message (`RequestHeaders`: `header_name` 1,
/// `descriptor_key` 2, `skip_if_absent` 3; `GenericKey`: `descriptor_value` 1,
/// `descriptor_key` 2; the others are empty).
fn specifier_len(a: &ir::RateLimitAction) -> usize {
    match a {
        ir::RateLimitAction::SourceCluster
        | ir::RateLimitAction::DestinationCluster
        | ir::RateLimitAction::RemoteAddress => 0,
        ir::RateLimitAction::GenericKey { key, value } => string_len(value) + string_len(key),
        ir::RateLimitAction::RequestHeader {
            key,
            header,
            skip_if_absent,
        } => string_len(header) + string_len(key) + if *skip_if_absent { 2 } else { 0 },
    }
}

/// The length of one encoded `RateLimit.Action`: its one oneof field.
fn action_len(a: &ir::RateLimitAction) -> usize {
    nested_len(specifier_len(a))
}

fn encode_action(a: &ir::RateLimitAction, buf: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let tag = match a {
        ir::RateLimitAction::SourceCluster => ACTION_SOURCE_CLUSTER,
        ir::RateLimitAction::DestinationCluster => ACTION_DESTINATION_CLUSTER,
        ir::RateLimitAction::RemoteAddress => ACTION_REMOTE_ADDRESS,
        ir::RateLimitAction::GenericKey { .. } => ACTION_GENERIC_KEY,
        ir::RateLimitAction::RequestHeader { .. } => ACTION_REQUEST_HEADERS,
    };
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(specifier_len(a) as u64, buf);
    match a {
        ir::RateLimitAction::SourceCluster
        | ir::RateLimitAction::DestinationCluster
        | ir::RateLimitAction::RemoteAddress => {}
        ir::RateLimitAction::GenericKey { key, value } => {
            encode_string(1, value, buf);
            encode_string(2, key, buf);
        }
        ir::RateLimitAction::RequestHeader {
            key,
            header,
            skip_if_absent,
        } => {
            encode_string(1, header, buf);
            encode_string(2, key, buf);
            if *skip_if_absent {
                // Field 3, varint: true.
                buf.extend_from_slice(&[0x18, 0x01]);
            }
        }
    }
}
