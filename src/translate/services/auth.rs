//! AuthService → the ext_authz filter (docs/design.md#authservice). One AuthService is used:
//! the first in processing order; any other is reported and ignored. A misconfigured one
//! fails closed: every route but the probe routes answers 500 naming it.

use crate::api::auth_service::AuthServiceSpec;
use crate::ir::{AuthBody, AuthFilter, AuthProtocol, Cluster, ExtAuthz, HttpAuth};

use super::super::Errors;
use super::super::load::Obj;
use super::cluster::{self, Cx, Fail, fail};

/// Client headers always sent to an HTTP auth service (with `allowed_request_headers`).
const REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "from",
    "proxy-authorization",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// Auth-response headers always copied upstream or to the client (with
/// `allowed_authorization_headers`).
const RESPONSE_HEADERS: &[&str] = &[
    "authorization",
    "location",
    "proxy-authenticate",
    "set-cookie",
    "www-authenticate",
];

/// The status codes Envoy accepts in `status_on_error` (its `type.v3.StatusCode` values).
const STATUS_CODES: &[u32] = &[
    100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
    400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421,
    422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
];

pub(super) struct Planned {
    pub filter: ExtAuthz,
    pub grpc: bool,
    pub cluster: Option<Cluster>,
}

pub(super) fn plan(
    list: &[Obj<AuthServiceSpec>],
    cx: &Cx<'_>,
    errs: &mut Errors,
) -> Option<Planned> {
    let first = super::first_only(list, "AuthService", errs)?;
    match filter(first, cx, errs) {
        Ok(p) => Some(p),
        Err((field, message)) => {
            let e = first.meta.error(&field, message);
            let shown = format!(
                "the AuthService {} is misconfigured ({field}: {}); requests are refused until it is fixed",
                first.meta.id(),
                e.message
            );
            errs.push(e);
            Some(Planned {
                filter: ExtAuthz::FailClosed { message: shown },
                grpc: false,
                cluster: None,
            })
        }
    }
}

fn filter(o: &Obj<AuthServiceSpec>, cx: &Cx<'_>, errs: &mut Errors) -> Result<Planned, Fail> {
    let (s, meta) = (&o.spec, &o.meta);
    let service = s
        .auth_service
        .as_deref()
        .ok_or_else(|| fail("auth_service", "required"))?;
    let grpc = match s.proto.as_deref() {
        None | Some("http") => false,
        Some("grpc") => true,
        Some(other) => {
            return Err(fail("proto", format!("{other:?} is not http or grpc")));
        }
    };
    check_protocol_version(s.protocol_version.as_deref())?;
    let body = match (&s.include_body, s.allow_request_body) {
        (Some(b), legacy) => {
            if legacy == Some(true) {
                errs.push(meta.warning(
                    "spec.allow_request_body",
                    "ignored: include_body is set and takes precedence",
                ));
            }
            let max_bytes = match b.max_bytes {
                None => return Err(fail("include_body.max_bytes", "required")),
                Some(0) => return Err(fail("include_body.max_bytes", "must be greater than 0")),
                Some(n) => n,
            };
            let allow_partial = b
                .allow_partial
                .ok_or_else(|| fail("include_body.allow_partial", "required"))?;
            Some(AuthBody {
                max_bytes,
                allow_partial,
            })
        }
        (None, Some(true)) => Some(AuthBody {
            max_bytes: 4096,
            allow_partial: true,
        }),
        (None, _) => None,
    };
    let status_on_error = match &s.status_on_error {
        None => None,
        Some(st) => {
            let code = st
                .code
                .ok_or_else(|| fail("status_on_error.code", "required"))?;
            if !STATUS_CODES.contains(&code) {
                return Err(fail(
                    "status_on_error.code",
                    format!("{code} is not an HTTP status Envoy can answer"),
                ));
            }
            Some(code)
        }
    };
    let spec = cluster::Spec {
        field: "auth_service",
        service,
        tls: s.tls.as_ref(),
        stats_name: s.stats_name.as_deref(),
        http2: grpc,
        circuit_breakers: s.circuit_breakers.as_deref(),
        connect_timeout_ms: s.connect_timeout_ms,
        idle_timeout_ms: s.cluster_idle_timeout_ms,
        max_connection_lifetime_ms: s.cluster_max_connection_lifetime_ms,
    };
    let (cluster, authority) = cluster::build("extauth", &spec, meta, cx, errs)?;
    let protocol = if grpc {
        for (field, set) in [
            ("path_prefix", s.path_prefix.is_some()),
            (
                "allowed_request_headers",
                s.allowed_request_headers.is_some(),
            ),
            (
                "allowed_authorization_headers",
                s.allowed_authorization_headers.is_some(),
            ),
            ("add_auth_headers", s.add_auth_headers.is_some()),
            ("add_linkerd_headers", s.add_linkerd_headers == Some(true)),
        ] {
            if set {
                errs.push(meta.warning(
                    &format!("spec.{field}"),
                    "has no effect with proto: grpc (the gRPC service receives every header)",
                ));
            }
        }
        AuthProtocol::Grpc
    } else {
        let path_prefix = s.path_prefix.clone().unwrap_or_default();
        if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
            return Err(fail(
                "path_prefix",
                format!("{path_prefix:?} must start with /"),
            ));
        }
        let lower = |extra: &Option<Vec<String>>, builtin: &[&str]| {
            let mut v: Vec<String> = builtin.iter().map(|h| h.to_string()).collect();
            v.extend(extra.iter().flatten().map(|h| h.to_ascii_lowercase()));
            v.sort();
            v.dedup();
            v
        };
        let mut headers_to_add: Vec<(String, String)> = s
            .add_auth_headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        // The auth service's own host:port (Emissary derives it from path_prefix).
        if s.add_linkerd_headers
            .unwrap_or(cx.settings.add_linkerd_headers)
        {
            headers_to_add.push(("l5d-dst-override".into(), authority.clone()));
        }
        let scheme = if cluster.tls.is_some() {
            "https"
        } else {
            "http"
        };
        AuthProtocol::Http(HttpAuth {
            uri: format!("{scheme}://{authority}"),
            path_prefix,
            allowed_request_headers: lower(&s.allowed_request_headers, REQUEST_HEADERS),
            allowed_authorization_headers: lower(
                &s.allowed_authorization_headers,
                RESPONSE_HEADERS,
            ),
            headers_to_add,
        })
    };
    Ok(Planned {
        filter: ExtAuthz::Service(AuthFilter {
            cluster: cluster.name.clone(),
            timeout_ms: s.timeout_ms.unwrap_or(5000),
            protocol,
            body,
            failure_mode_allow: s.failure_mode_allow == Some(true),
            status_on_error,
        }),
        grpc,
        cluster: Some(cluster),
    })
}

/// `v3` or unset: Envoy 1.40 speaks only v3. Emissary's default, `v2`, silently disabled the
/// service; legate defaults to v3 and refuses an explicit `v2`.
pub(super) fn check_protocol_version(v: Option<&str>) -> Result<(), Fail> {
    match v {
        None | Some("v3") => Ok(()),
        Some("v2") => Err(fail(
            "protocol_version",
            "v2 is not supported: Envoy 1.40 speaks only v3 (set v3, or leave it unset)",
        )),
        Some(other) => Err(fail("protocol_version", format!("{other:?} is not v3"))),
    }
}
