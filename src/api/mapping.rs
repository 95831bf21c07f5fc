//! `Mapping` (getambassador.io v3alpha1 and v2): one HTTP route and its upstream.

use std::collections::BTreeMap;

use super::doc::{Doc, Document};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AddHeader, CircuitBreakerSpec, CorsSpec, Extra, KeepaliveSpec, LoadBalancerSpec, OneOrMany,
    RegexRewriteSpec, RetryPolicySpec,
};

/// The `spec` of a Mapping. Every field is optional at the serde level so a wrong value can be
/// reported against its own field; `prefix` and `service` are checked by the translation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct MappingSpec {
    #[serde(alias = "ambassadorId")]
    pub ambassador_id: Option<OneOrMany>,

    // --- matching ---
    /// Path prefix (required). A regex with `prefix_regex`, the exact path with `prefix_exact`.
    pub prefix: Option<String>,
    pub prefix_regex: Option<bool>,
    pub prefix_exact: Option<bool>,
    /// Default true.
    pub case_sensitive: Option<bool>,
    pub method: Option<String>,
    pub method_regex: Option<bool>,
    /// Exact header matches; a value `true` (v2) means "present".
    pub headers: Option<BTreeMap<String, serde_json::Value>>,
    pub regex_headers: Option<BTreeMap<String, String>>,
    /// Exact query-parameter matches; a value `true` means "present".
    pub query_parameters: Option<BTreeMap<String, serde_json::Value>>,
    pub regex_query_parameters: Option<BTreeMap<String, String>>,
    /// DNS glob of the `:authority` this Mapping serves.
    pub hostname: Option<String>,
    /// Deprecated: exact host, or a regex with `host_regex`.
    pub host: Option<String>,
    pub host_regex: Option<bool>,
    /// Route order: higher first (default 0).
    pub precedence: Option<i64>,

    // --- upstream ---
    /// `[scheme://]host[:port]` (required).
    pub service: Option<String>,
    /// A TLSContext name to originate TLS with; v2 also takes `true`/`false`.
    pub tls: Option<serde_json::Value>,
    pub grpc: Option<bool>,
    pub resolver: Option<String>,
    pub dns_type: Option<String>,
    pub respect_dns_ttl: Option<bool>,
    pub enable_ipv4: Option<bool>,
    pub enable_ipv6: Option<bool>,
    pub load_balancer: Option<LoadBalancerSpec>,
    pub circuit_breakers: Option<Vec<CircuitBreakerSpec>>,
    pub keepalive: Option<KeepaliveSpec>,
    pub connect_timeout_ms: Option<u64>,
    pub cluster_idle_timeout_ms: Option<u64>,
    pub cluster_max_connection_lifetime_ms: Option<u64>,
    pub stats_name: Option<String>,
    pub cluster_tag: Option<String>,

    // --- route action ---
    /// Default `/`; `""` leaves the path as is.
    pub rewrite: Option<String>,
    pub regex_rewrite: Option<RegexRewriteSpec>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: Option<bool>,
    /// Default: Module `cluster_request_timeout_ms`, else 3000; 0 disables.
    pub timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub retry_policy: Option<RetryPolicySpec>,
    /// Canary weight (percent) within the Mapping's group.
    pub weight: Option<u32>,
    /// Mirror the group's traffic to this Mapping's service instead of routing to it.
    pub shadow: Option<bool>,
    pub allow_upgrade: Option<Vec<String>>,
    pub use_websocket: Option<bool>,

    // --- redirects ---
    pub host_redirect: Option<bool>,
    pub path_redirect: Option<String>,
    pub prefix_redirect: Option<String>,
    pub regex_redirect: Option<RegexRewriteSpec>,
    pub redirect_response_code: Option<u32>,

    // --- headers ---
    pub add_request_headers: Option<BTreeMap<String, AddHeader>>,
    pub add_response_headers: Option<BTreeMap<String, AddHeader>>,
    pub remove_request_headers: Option<OneOrMany>,
    pub remove_response_headers: Option<OneOrMany>,
    pub add_linkerd_headers: Option<bool>,

    pub cors: Option<CorsSpec>,

    // --- accepted, not (yet) implemented: reported when set ---
    pub bypass_auth: Option<bool>,
    pub auth_context_extensions: Option<serde_json::Value>,
    // Read where it is used, from the object as written (`Present`): labels are as large as
    // the rest of a Mapping, and a typed copy of them cost the translation a third of its time.
    #[schemars(with = "Option<serde_json::Value>")]
    pub labels: Option<Present>,
    pub priority: Option<serde_json::Value>,
    pub outlier_detection: Option<serde_json::Value>,
    pub error_response_overrides: Option<serde_json::Value>,
    pub health_checks: Option<serde_json::Value>,
    /// Ignored, as in Emissary.
    pub docs: Option<serde_json::Value>,
    pub envoy_override: Option<serde_json::Value>,

    #[serde(flatten)]
    pub extra: Extra,
}

impl MappingSpec {
    /// Types a spec as written. The value of `labels` is not visited, only its presence is
    /// noted ([`Present`]): serde's `flatten` (for [`Extra`]) buffers every field's value
    /// before typing it, which for `labels` would be a deep copy of the label tree for every
    /// Mapping. Errors are those of typing `doc` itself.
    pub fn from_doc(doc: Doc<'_>) -> Result<Self, serde_json::Error> {
        match doc.entries() {
            Some(fields) => Self::deserialize(Fields(fields)),
            None => Self::deserialize(doc),
        }
    }
}

/// A one-node document (`true`), typed in place of a non-null `labels`.
fn placeholder() -> &'static Document {
    static PLACEHOLDER: std::sync::OnceLock<Document> = std::sync::OnceLock::new();
    PLACEHOLDER.get_or_init(|| {
        Document::from_value(&serde_json::Value::Bool(true)).unwrap_or_else(|_| Document::null())
    })
}

/// A spec's fields, `labels` replaced by a placeholder (see [`MappingSpec::from_doc`]).
struct Fields<I>(I);

impl<'de, I> serde::Deserializer<'de> for Fields<I>
where
    I: ExactSizeIterator<Item = (&'de str, Doc<'de>)>,
{
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        v.visit_map(FieldAccess {
            fields: self.0,
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct FieldAccess<'de, I> {
    fields: I,
    /// The next value: the field's, or `None` for the placeholder of a non-null `labels`.
    value: Option<Option<Doc<'de>>>,
}

impl<'de, I> serde::de::MapAccess<'de> for FieldAccess<'de, I>
where
    I: ExactSizeIterator<Item = (&'de str, Doc<'de>)>,
{
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((k, v)) = self.fields.next() else {
            return Ok(None);
        };
        self.value = Some((k != "labels" || v.is_null()).then_some(v));
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(k))
            .map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(Some(v)) => seed.deserialize(v),
            // What a non-null `labels` is typed from: any value types as [`Present`].
            Some(None) => seed.deserialize(placeholder().root()),
            None => Err(serde::de::Error::custom("a value without its field")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.fields.len())
    }
}

/// A field whose presence is typed but whose value is read from the object as written, so
/// typing costs no copy of it. Serializes as `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present;

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Present)
    }
}

impl Serialize for Present {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}
