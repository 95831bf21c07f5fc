//! Versioned, immutable snapshots of Envoy resources, published through a
//! `tokio::sync::watch` and shared by every ADS stream.
//!
//! Versions are derived from IR content (never from prost bytes, whose map encoding is
//! unstable) and prefixed with a boot id, so a restarted legate never reuses a version string
//! an Envoy already holds with other content.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::google::protobuf::Any;

/// The six resource types legate serves, in make-before-break push order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    Secret,
    Cluster,
    Endpoint,
    /// ECDS: the configs of the AuthService and RateLimitService filters, so a change to
    /// them never touches (and drains) a listener (docs/design.md#extension-config-discovery).
    ExtensionConfig,
    Listener,
    Route,
}

impl TypeKind {
    /// Push order: secrets and clusters (and their endpoints) before the listeners and routes
    /// that use them.
    pub const ORDER: [TypeKind; 6] = [
        TypeKind::Secret,
        TypeKind::Cluster,
        TypeKind::Endpoint,
        TypeKind::ExtensionConfig,
        TypeKind::Listener,
        TypeKind::Route,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            TypeKind::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
            TypeKind::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeKind::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            TypeKind::ExtensionConfig => {
                "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
            }
            TypeKind::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeKind::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ORDER.into_iter().find(|k| k.type_url() == url)
    }

    /// LDS and CDS are full-state (wildcard) in SotW; the others are per-resource.
    pub fn is_wildcard(self) -> bool {
        matches!(self, TypeKind::Cluster | TypeKind::Listener)
    }

    pub fn short(self) -> &'static str {
        match self {
            TypeKind::Secret => "sds",
            TypeKind::Cluster => "cds",
            TypeKind::Endpoint => "eds",
            TypeKind::ExtensionConfig => "ecds",
            TypeKind::Listener => "lds",
            TypeKind::Route => "rds",
        }
    }
}

/// One named Envoy resource, packed, with a version derived from the IR it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub body: Any,
    /// How long the resource must stay in Envoy after the change that stops using it is
    /// applied, before it is removed; zero for most. An auth or rate-limit service's cluster
    /// lingers while the checks sent to it under the previous filter config may still be
    /// running: Envoy resets them when it removes the cluster
    /// (docs/design.md#push-order-and-warming).
    pub linger: Duration,
    /// For a resource encoded from separately hashed pieces (a route configuration's routes),
    /// each piece's content hash and where its encoding sits in `body.value`, in order, so the
    /// next snapshot re-encodes only the pieces that changed (`xds::resources`); empty for
    /// every other resource.
    pub pieces: Arc<[Piece]>,
}

/// One separately encoded part of a resource's body (see [`Resource::pieces`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// `Ir::hash_of` the IR fragment the bytes were encoded from.
    pub hash: u64,
    /// The encoded message (without its field key and length) is `body.value[start..end]`.
    pub start: usize,
    pub end: usize,
}

/// Every resource of one type, plus the type's version (derived from all of them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypeSnapshot {
    pub version: String,
    pub resources: BTreeMap<String, Resource>,
}

/// A complete configuration for Envoy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Increases with every publication in this process (diagnostics only).
    pub generation: u64,
    pub types: BTreeMap<TypeKind, TypeSnapshot>,
}

impl Snapshot {
    pub fn get(&self, kind: TypeKind) -> Option<&TypeSnapshot> {
        self.types.get(&kind)
    }

    /// The version of each type, for readiness and the admin endpoint.
    pub fn versions(&self) -> BTreeMap<TypeKind, String> {
        TypeKind::ORDER
            .into_iter()
            .map(|k| {
                (
                    k,
                    self.types
                        .get(&k)
                        .map(|t| t.version.clone())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }
}
