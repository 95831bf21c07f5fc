//! The getambassador.io resources legate accepts, and the boundary every source feeds.
//!
//! A source (a directory of YAML, Kubernetes) produces [`RawObject`]s: one Kubernetes-style
//! object each, with where it came from. The translation parses them into typed resources
//! (module `api::*` types, owned by the translation work) and never cares which source they came
//! from. Problems are [`ResourceError`]s: data attached to the object that caused them, never a
//! process failure.

pub mod auth_service;
pub mod common;
pub mod crd;
pub mod doc;
pub mod host;
pub mod listener;
pub mod log_service;
pub mod mapping;
pub mod module;
pub mod rate_limit_service;
pub mod secret;
pub mod service;
pub mod tcp_mapping;
pub mod tls_context;
pub mod tracing_service;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

/// Where an object came from, for error messages: a file and document, or a Kubernetes object.
///
/// Ordered as the variants and their fields are declared (files by path, then document). The
/// objects of one file share its path (`Arc`): a source's state is rebuilt, and the
/// translation sorts its objects by origin, on every change, so at tens of thousands of
/// objects copying each path, or comparing two equal paths component by component, was a
/// large part of a change's cost (BENCHMARKS.md, "jemalloc as the allocator").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Document `doc` (1-based) of `file`.
    File { file: Arc<Path>, doc: usize },
    /// An object read from the Kubernetes API.
    Kubernetes { namespace: String, name: String },
    /// Built in code (tests, built-ins).
    Builtin,
}

impl Origin {
    /// Document `doc` (1-based) of the file `file`, its path copied; the objects of one file
    /// should share one `Arc<Path>` instead (see the type's docs).
    pub fn file(file: impl AsRef<Path>, doc: usize) -> Origin {
        Origin::File {
            file: Arc::from(file.as_ref()),
            doc,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Origin::File { .. } => 0,
            Origin::Kubernetes { .. } => 1,
            Origin::Builtin => 2,
        }
    }
}

impl Ord for Origin {
    fn cmp(&self, other: &Origin) -> Ordering {
        match (self, other) {
            (Origin::File { file: a, doc: x }, Origin::File { file: b, doc: y }) => {
                // The same `Arc`: the same path, without comparing it.
                let file = if Arc::ptr_eq(a, b) {
                    Ordering::Equal
                } else {
                    a.cmp(b)
                };
                file.then(x.cmp(y))
            }
            (
                Origin::Kubernetes {
                    namespace: a,
                    name: x,
                },
                Origin::Kubernetes {
                    namespace: b,
                    name: y,
                },
            ) => (a, x).cmp(&(b, y)),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Origin {
    fn partial_cmp(&self, other: &Origin) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, doc } => write!(f, "{}#{doc}", file.display()),
            Origin::Kubernetes { namespace, name } => write!(f, "{namespace}/{name}"),
            Origin::Builtin => f.write_str("<builtin>"),
        }
    }
}

/// One Kubernetes-style object as read, before typing. `value` is the whole object
/// (`apiVersion`, `kind`, `metadata`, `spec` or `data`/`type` for Secrets), held as a compact
/// [`doc::Document`] (a quarter of a `serde_json::Value`'s memory, see BENCHMARKS.md,
/// "legate's own memory").
///
/// The value is shared, not copied, when the object is cloned: a source keeps what it read
/// and publishes the same objects in every state, so at 50,000 objects a state rebuild costs
/// pointers, not a second copy of every parsed document (BENCHMARKS.md, "legate's own memory").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawObject {
    pub origin: Origin,
    pub value: std::sync::Arc<doc::Document>,
}

impl RawObject {
    /// The object of `value`. A value too large for a [`doc::Document`] (over 4 GiB) becomes
    /// `null`, which the translation reports as not a Kubernetes object; sources that can meet
    /// such input use [`RawObject::try_new`].
    pub fn new(origin: Origin, value: serde_json::Value) -> Self {
        let document = doc::Document::from_value(&value).unwrap_or_else(|_| doc::Document::null());
        RawObject {
            origin,
            value: std::sync::Arc::new(document),
        }
    }

    /// Whether `other` holds the same content as this object (the same parsed value, or an
    /// equal one): what the translation cache (`translate::Cache`) keys reuse on. Cheap when
    /// the source kept the unchanged object's value (the same `Arc`).
    pub fn same_content(&self, other: &RawObject) -> bool {
        std::sync::Arc::ptr_eq(&self.value, &other.value) || self.value == other.value
    }

    /// The object of `value`, or why it cannot be held.
    pub fn try_new(origin: Origin, value: &serde_json::Value) -> Result<Self, doc::TooLarge> {
        Ok(RawObject {
            origin,
            value: std::sync::Arc::new(doc::Document::from_value(value)?),
        })
    }

    /// The whole object.
    pub fn doc(&self) -> doc::Doc<'_> {
        self.value.root()
    }

    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.metadata("name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata("namespace").and_then(|v| v.as_str())
    }

    /// `metadata.<key>`.
    fn metadata(&self, key: &str) -> Option<doc::Doc<'_>> {
        self.value.get("metadata")?.get(key)
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        labels_of(self.metadata("labels"))
    }

    /// `apiVersion`, `kind`, `metadata.name`, `metadata.namespace` and `metadata.labels`,
    /// in one pass over the object's top level and one over its metadata (loading reads them
    /// all for every object; keys are unique, so the pass finds what a lookup would).
    pub fn head(&self) -> Head<'_> {
        let mut head = Head {
            api_version: "",
            kind: "",
            name: "",
            namespace: None,
            labels: None,
        };
        let mut metadata = None;
        for (key, value) in self.doc().entries().into_iter().flatten() {
            match key {
                "apiVersion" => head.api_version = value.as_str().unwrap_or_default(),
                "kind" => head.kind = value.as_str().unwrap_or_default(),
                "metadata" => metadata = Some(value),
                _ => {}
            }
        }
        let fields = metadata.and_then(doc::Doc::entries).into_iter().flatten();
        for (key, value) in fields {
            match key {
                "name" => head.name = value.as_str().unwrap_or_default(),
                "namespace" => head.namespace = value.as_str(),
                "labels" => head.labels = Some(value),
                _ => {}
            }
        }
        head
    }
}

/// What [`RawObject::head`] reads; each field as the accessor of the same name gives it.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    /// `metadata.labels` as written ([`Head::labels`] types it).
    pub labels: Option<doc::Doc<'a>>,
}

impl Head<'_> {
    /// As [`RawObject::labels`].
    pub fn labels(&self) -> BTreeMap<String, String> {
        labels_of(self.labels)
    }
}

/// The string-valued entries of a `labels` object.
fn labels_of(labels: Option<doc::Doc<'_>>) -> BTreeMap<String, String> {
    labels
        .and_then(|v| v.entries())
        .map(|m| {
            m.filter_map(|(k, v)| v.as_str().map(|v| (k.to_string(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A problem with one resource. The resource is left out; everything else is translated as if
/// it were absent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResourceError {
    pub origin: Origin,
    /// e.g. `Mapping`; empty when the document could not be parsed far enough to tell.
    pub kind: String,
    /// `namespace/name`, or empty.
    pub name: String,
    /// Dotted path of the offending field (`spec.retry_policy.retry_on`), if one.
    pub field: Option<String>,
    pub message: String,
    /// Warnings (unknown fields, deprecated forms) do not leave the resource out.
    pub warning: bool,
}

impl fmt::Display for ResourceError {
    /// One line: `origin: Kind ns/name: field: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if self.warning {
            f.write_str("warning: ")?;
        }
        if !self.kind.is_empty() {
            write!(f, "{} {}: ", self.kind, self.name)?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests;
