//! Route tables (RDS), virtual hosts, ordered routes and their actions.

use serde::Serialize;

/// A route configuration served by RDS. Its name is derived from identity (listener + chain),
/// never from list position, so reordering chains cannot cause transient 404s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct VirtualHost {
    /// Unique within its table.
    pub name: String,
    /// Host globs as Envoy understands them (`*`, `*.example.com`, `example.com:8080`).
    pub domains: Vec<String>,
    /// First match wins.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Route {
    /// Optional stable name (shown in Envoy stats and config dumps).
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub action: RouteAction,
    pub request_headers_to_add: Vec<HeaderValue>,
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_add: Vec<HeaderValue>,
    pub response_headers_to_remove: Vec<String>,
    /// Boxed, as the other settings most routes leave unset: a route table of 50,000 routes
    /// is built, hashed and encoded on every change (issue 10).
    pub cors: Option<Box<Cors>>,
    /// AuthService: whether and how ext_authz checks this route.
    #[serde(skip_serializing_if = "super::RouteAuth::is_default")]
    pub auth: super::RouteAuth,
    /// RateLimitService: the descriptors sent for this route (forwarding routes only); shared
    /// by the routes of one Mapping.
    #[serde(skip_serializing_if = "no_rate_limits")]
    pub rate_limits: std::sync::Arc<[super::RateLimit]>,
}

impl Route {
    pub fn new(matcher: RouteMatch, action: RouteAction) -> Self {
        Route {
            name: None,
            matcher,
            action,
            request_headers_to_add: Vec::new(),
            request_headers_to_remove: Vec::new(),
            response_headers_to_add: Vec::new(),
            response_headers_to_remove: Vec::new(),
            cors: None,
            auth: super::RouteAuth::Default,
            // The empty default is a shared constant: no allocation per route.
            rate_limits: Default::default(),
        }
    }
}

fn no_rate_limits(limits: &std::sync::Arc<[super::RateLimit]>) -> bool {
    limits.is_empty()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    /// All must match. Method matching is a `:method` header, host matching `:authority`.
    pub headers: Vec<HeaderMatch>,
    pub query_parameters: Vec<QueryMatch>,
    /// Match only this share of requests, in percent (0–100); Emissary's canary thresholds.
    pub runtime_fraction: Option<RuntimeFraction>,
}

impl RouteMatch {
    pub fn prefix(prefix: impl Into<String>) -> Self {
        RouteMatch {
            path: PathMatch::Prefix(prefix.into()),
            case_sensitive: true,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            runtime_fraction: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RuntimeFraction {
    pub percent: u32,
    pub runtime_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// RE2 syntax, matched against the whole path (without query).
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HeaderMatch {
    pub name: String,
    pub matcher: StringMatch,
    pub invert: bool,
}

impl HeaderMatch {
    pub fn exact(name: impl Into<String>, value: impl Into<String>) -> Self {
        HeaderMatch {
            name: name.into(),
            matcher: StringMatch::Exact(value.into()),
            invert: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct QueryMatch {
    pub name: String,
    pub matcher: StringMatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// RE2 syntax, full match.
    Regex(String),
    /// The header or parameter is present, whatever its value.
    Present,
}

// Plain data built once per snapshot: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    Forward(Forward),
    Redirect(Redirect),
    DirectResponse { status: u32, body: Option<String> },
}

/// Proxy to one or more clusters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Forward {
    /// One entry routes to that cluster; several split by weight (shares).
    pub clusters: Vec<WeightedCluster>,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<Box<RegexRewrite>>,
    pub host_rewrite: Option<HostRewrite>,
    /// Upstream response timeout; `Some(0)` disables it, `None` keeps Envoy's default (15 s).
    pub timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub retry: Option<Box<RetryPolicy>>,
    /// Upgrade types allowed on this route, e.g. `websocket`.
    pub upgrades: Vec<String>,
    pub mirrors: Vec<Mirror>,
    pub hash_policy: Vec<super::HashPolicy>,
}

impl Forward {
    pub fn to(cluster: impl Into<String>) -> Self {
        Forward {
            clusters: vec![WeightedCluster {
                name: cluster.into(),
                weight: 100,
            }],
            prefix_rewrite: None,
            regex_rewrite: None,
            host_rewrite: None,
            timeout_ms: None,
            idle_timeout_ms: None,
            retry: None,
            upgrades: Vec::new(),
            mirrors: Vec::new(),
            hash_policy: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostRewrite {
    Literal(String),
    /// Use the upstream host's DNS name (strict/logical DNS clusters).
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RetryPolicy {
    /// Envoy `retry_on` conditions, comma-joined by the xds layer.
    pub retry_on: Vec<String>,
    pub num_retries: Option<u32>,
    pub per_try_timeout_ms: Option<u64>,
    pub retriable_status_codes: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Mirror {
    pub cluster: String,
    /// Share of requests mirrored, in percent.
    pub percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Redirect {
    /// Redirect to https (`https_redirect`).
    pub https: bool,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<RedirectPath>,
    pub code: RedirectCode,
    pub strip_query: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectPath {
    Path(String),
    Prefix(String),
    Regex(RegexRewrite),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RedirectCode {
    MovedPermanently,
    Found,
    SeeOther,
    TemporaryRedirect,
    PermanentRedirect,
}

impl RedirectCode {
    pub fn from_status(code: u16) -> Option<Self> {
        Some(match code {
            301 => RedirectCode::MovedPermanently,
            302 => RedirectCode::Found,
            303 => RedirectCode::SeeOther,
            307 => RedirectCode::TemporaryRedirect,
            308 => RedirectCode::PermanentRedirect,
            _ => return None,
        })
    }

    pub fn status(self) -> u16 {
        match self {
            RedirectCode::MovedPermanently => 301,
            RedirectCode::Found => 302,
            RedirectCode::SeeOther => 303,
            RedirectCode::TemporaryRedirect => 307,
            RedirectCode::PermanentRedirect => 308,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HeaderValue {
    pub name: String,
    pub value: String,
    /// Append to an existing header (true) or overwrite it (false).
    pub append: bool,
}

/// A CORS policy (emitted as the CORS filter's per-route config).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Cors {
    /// Exact origins; `*` allows any.
    pub origins: Vec<StringMatch>,
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub credentials: bool,
    pub max_age: Option<String>,
}
