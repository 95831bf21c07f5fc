//! Shapes shared by several getambassador.io resources: ids, label selectors, string-or-list
//! fields and the Mapping-level policies a Module can also set as defaults.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Fields nobody declared: kept so they can be reported as warnings, never an error.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// A field that is either one string or a list of strings (`ambassador_id`, `remove_*_headers`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }

    /// The items, with a lone string also split on commas (`"GET, POST"`), trimmed.
    pub fn split_commas(&self) -> Vec<String> {
        self.to_vec()
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// A string or an integer (CORS `max_age`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOrInt {
    Int(i64),
    String(String),
}

impl std::fmt::Display for StringOrInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StringOrInt::Int(i) => write!(f, "{i}"),
            StringOrInt::String(s) => f.write_str(s),
        }
    }
}

/// `{matchLabels: {...}}`: every label must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl LabelSelector {
    /// Strict AND over `matchLabels`; an empty or missing `matchLabels` matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A header to add: a plain value (appended) or `{value, append}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum AddHeader {
    Value(String),
    Detailed {
        value: String,
        /// Append to an existing header (default true) or overwrite it.
        append: Option<bool>,
    },
}

/// `{pattern, substitution}` for `regex_rewrite` and `regex_redirect`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct RegexRewriteSpec {
    pub pattern: String,
    pub substitution: String,
}

/// One circuit-breaker threshold set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
pub struct CircuitBreakerSpec {
    /// `default` or `high`.
    pub priority: Option<String>,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
}

/// TCP keepalive settings of upstream connections.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct KeepaliveSpec {
    pub time: Option<u32>,
    pub interval: Option<u32>,
    pub probes: Option<u32>,
    /// Emissary ignores this; legate uses it as `time` when `time` is unset.
    pub idle_time: Option<u32>,
}

/// Retries of one route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct RetryPolicySpec {
    /// `5xx`, `gateway-error`, `connect-failure`, `retriable-4xx`, `refused-stream` or
    /// `retriable-status-codes` (several may be comma-separated).
    pub retry_on: Option<String>,
    pub num_retries: Option<u32>,
    /// A duration: `0.5s`, `500ms`, `1m`.
    pub per_try_timeout: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A CORS policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct CorsSpec {
    /// Exact origins, a list or a comma-separated string (v2).
    pub origins: Option<OneOrMany>,
    pub methods: Option<OneOrMany>,
    pub headers: Option<OneOrMany>,
    pub exposed_headers: Option<OneOrMany>,
    pub credentials: Option<bool>,
    pub max_age: Option<StringOrInt>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Load balancing of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct LoadBalancerSpec {
    /// `round_robin`, `least_request`, `ring_hash` or `maglev`.
    pub policy: String,
    pub cookie: Option<LbCookie>,
    pub header: Option<String>,
    pub source_ip: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct LbCookie {
    pub name: String,
    pub path: Option<String>,
    pub ttl: Option<String>,
}
