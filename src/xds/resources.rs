//! IR → Envoy resources: one function per resource type (listener, route, cluster, endpoint,
//! secret), and [`snapshot`], which packs them into a versioned [`Snapshot`].
//!
//! Versions come from the IR fragment that produced each resource (`Ir::hash_of`), never from
//! prost bytes: envoy-types encodes protobuf maps from a `HashMap`, so equal messages encode
//! differently (docs/design.md#versions). Every version is prefixed by the boot id so a restarted
//! legate never reuses a version string an Envoy already holds.
//!
//! Routes, endpoints and certificates are referenced by name (RDS, EDS, SDS), so a route or
//! certificate change leaves the listener resource byte-stable and never drains it.

mod cluster;
mod endpoint;
mod json;
mod listener;
mod route;
mod secret;
mod services;
mod static_config;

pub use cluster::cluster;
pub use endpoint::load_assignment;
pub use json::{to_json, write_json};
pub use listener::listener;
pub use route::route_configuration;
pub use secret::secret;
pub use static_config::static_bootstrap;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, TransportSocket, config_source,
    transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    SdsSecretConfig, TlsParameters, tls_parameters::TlsProtocol,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, UInt32Value};
use prost::{Message, Name};

use super::{Piece, Resource, Snapshot, TypeKind, TypeSnapshot};
use crate::ir::{self, Dangling, Ir};

/// Why a snapshot (or a static bootstrap built from one) could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the IR is inconsistent: {}", join_errors(.0))]
    Dangling(Vec<Dangling>),
    #[error("{kind:?} resource {name} does not decode as {type_url}")]
    Decode {
        kind: TypeKind,
        name: String,
        type_url: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error("{kind:?} resource {name} is a {found}, expected {expected}")]
    UnexpectedType {
        kind: TypeKind,
        name: String,
        found: String,
        expected: String,
    },
    #[error("cannot render Envoy JSON: {0}")]
    Json(String),
    #[error("cannot write the output")]
    Write(#[source] std::io::Error),
    #[error("listener {listener} uses route configuration {route}, which the snapshot lacks")]
    MissingRoute { listener: String, route: String },
}

fn join_errors(errors: &[Dangling]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Builds every resource type (empty types included) from an IR, after checking it with
/// [`Ir::validate`]: an IR with dangling references or duplicate names is refused whole.
///
/// A large IR is built on two threads: the route tables (usually one big resource) on one,
/// the check and every other type on the other. The result does not depend on the split.
pub fn snapshot(ir: &Ir, generation: u64, boot_id: &str) -> Result<Snapshot, Error> {
    snapshot_reusing(ir, generation, boot_id, None)
}

/// [`snapshot`], taking from `previous` (a snapshot built by this process, with the same
/// `boot_id`) every resource whose name and version are unchanged instead of encoding it
/// again: a version is the hash of the IR fragment the resource is encoded from. Versions are
/// exactly [`snapshot`]'s; so are the resources, up to the order protobuf map entries are
/// encoded in (see the module docs).
pub fn snapshot_reusing(
    ir: &Ir,
    generation: u64,
    boot_id: &str,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, Error> {
    let v = Versioner { boot_id };
    let before = |kind| previous.and_then(|p| p.get(kind));
    // A route table's version hashes its routes' hashes: a changed table re-encodes only
    // the routes whose hash the previous encoding lacks (`route::route_configuration_reusing`).
    let routes = || {
        v.collect_pieces(
            before(TypeKind::Route),
            ir.route_tables.iter().map(|t| {
                let hashes = route::route_hashes(t);
                let hash = route::table_hash(t, &hashes);
                (&t.name, hash, move |old: Option<&Resource>| {
                    route::route_configuration_reusing(t, &hashes, old)
                })
            }),
        )
    };
    let rest = || -> Result<_, Error> {
        ir.validate().map_err(Error::Dangling)?;
        let listeners = v.collect(
            before(TypeKind::Listener),
            ir.listeners
                .iter()
                .map(|l| (&l.name, Ir::hash_of(l), move || pack(listener(l)))),
        );
        // Each cluster is hashed once: its EDS resource's version covers it by this hash.
        let cluster_hashes: Vec<u64> = ir.clusters.iter().map(Ir::hash_of).collect();
        let mut clusters = v.collect(
            before(TypeKind::Cluster),
            ir.clusters
                .iter()
                .zip(&cluster_hashes)
                .map(|(c, hash)| (&c.name, *hash, move || pack(cluster(c)))),
        );
        for (name, linger) in services::lingering_clusters(ir) {
            if let Some(r) = clusters.resources.get_mut(name) {
                r.linger = linger;
            }
        }
        let endpoints = v.collect(
            before(TypeKind::Endpoint),
            endpoint::all(ir, &cluster_hashes),
        );
        let secrets = v.collect(
            before(TypeKind::Secret),
            ir.secrets
                .iter()
                .map(|s| (&s.name, Ir::hash_of(s), move || pack(secret(s)))),
        );
        // AuthService/RateLimitService filter configs (ECDS).
        let extension_configs = v.collect(
            before(TypeKind::ExtensionConfig),
            services::extension_configs(ir)
                .into_iter()
                .map(|(name, hash, body)| (name, hash, move || body)),
        );
        Ok([
            (TypeKind::ExtensionConfig, extension_configs),
            (TypeKind::Listener, listeners),
            (TypeKind::Cluster, clusters),
            (TypeKind::Endpoint, endpoints),
            (TypeKind::Secret, secrets),
        ])
    };
    let routes_size: usize = ir
        .route_tables
        .iter()
        .flat_map(|t| &t.virtual_hosts)
        .map(|vh| vh.routes.len())
        .sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (routes, rest) = if threads >= 2 && routes_size + ir.clusters.len() >= PARALLEL_MIN {
        std::thread::scope(|scope| {
            let worker = scope.spawn(routes);
            let rest = rest();
            // A panic while encoding is a bug; it propagates as it would on one thread.
            let routes = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (routes, rest)
        })
    } else {
        // Checked first, so an invalid IR costs no encoding.
        let rest = rest()?;
        (routes(), Ok(rest))
    };
    let mut types: BTreeMap<TypeKind, TypeSnapshot> = rest?.into_iter().collect();
    types.insert(TypeKind::Route, routes);
    Ok(Snapshot { generation, types })
}

/// Below this many routes and clusters, a snapshot is built on the calling thread.
const PARALLEL_MIN: usize = 512;

/// Turns content hashes into version strings.
struct Versioner<'a> {
    boot_id: &'a str,
}

impl Versioner<'_> {
    /// `<boot id>-<hash as 16 lower-case hex digits>`, written directly (this runs for every
    /// resource of every snapshot).
    fn version(&self, hash: u64) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        }
        let mut out = String::with_capacity(self.boot_id.len() + 17);
        out.push_str(self.boot_id);
        out.push('-');
        // Only ASCII hex digits were written.
        out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
        out
    }

    /// One type's resources; the type version hashes the sorted (name, version) pairs, so it
    /// changes exactly when some resource of the type is added, removed or changed. A
    /// resource `before` holds under the same name and version is taken from there; the
    /// others are encoded (`encode`).
    fn collect<'n, F: FnOnce() -> Any>(
        &self,
        before: Option<&TypeSnapshot>,
        items: impl IntoIterator<Item = (&'n String, u64, F)>,
    ) -> TypeSnapshot {
        self.collect_pieces(
            before,
            items
                .into_iter()
                .map(|(name, hash, encode)| (name, hash, |_: Option<&Resource>| (encode(), None))),
        )
    }

    /// [`Self::collect`] for resources encoded from pieces (`Resource::pieces`): `encode` is
    /// given the resource of the same name in `before` (any version) to take unchanged pieces
    /// from, and returns the body and its pieces.
    fn collect_pieces<'n, F: FnOnce(Option<&Resource>) -> (Any, Option<Vec<Piece>>)>(
        &self,
        before: Option<&TypeSnapshot>,
        items: impl IntoIterator<Item = (&'n String, u64, F)>,
    ) -> TypeSnapshot {
        let mut previous = before.map(|b| Previous::new(&b.resources));
        let resources: BTreeMap<String, Resource> = items
            .into_iter()
            .map(|(name, hash, encode)| {
                let version = self.version(hash);
                let old = previous.as_mut().and_then(|p| p.get(name));
                let (body, pieces) = match old {
                    Some(old) if old.version == version => (old.body.clone(), old.pieces.clone()),
                    _ => {
                        let (body, pieces) = encode(old);
                        (body, pieces.map_or_else(Default::default, Into::into))
                    }
                };
                let resource = Resource {
                    name: name.clone(),
                    version,
                    body,
                    linger: std::time::Duration::ZERO,
                    pieces,
                };
                (name.clone(), resource)
            })
            .collect();
        let pairs: Vec<(&str, &str)> = resources
            .values()
            .map(|r| (r.name.as_str(), r.version.as_str()))
            .collect();
        TypeSnapshot {
            version: self.version(Ir::hash_of(&pairs)),
            resources,
        }
    }
}

/// Looks names up in the previous snapshot's resources of one type. The names usually come
/// in sorted order (the IR keeps its lists sorted by name), so the lookups walk the map once
/// instead of searching it from the root for every resource; a name out of order is searched.
struct Previous<'a> {
    map: &'a BTreeMap<String, Resource>,
    walk: std::iter::Peekable<std::collections::btree_map::Iter<'a, String, Resource>>,
    /// The greatest name the walk has passed: a name up to it is searched instead.
    passed: Option<&'a str>,
}

impl<'a> Previous<'a> {
    fn new(map: &'a BTreeMap<String, Resource>) -> Self {
        Previous {
            map,
            walk: map.iter().peekable(),
            passed: None,
        }
    }

    fn get(&mut self, name: &str) -> Option<&'a Resource> {
        if self.passed.is_some_and(|p| name <= p) {
            return self.map.get(name);
        }
        while let Some((k, _)) = self.walk.next_if(|(k, _)| k.as_str() < name) {
            self.passed = Some(k.as_str());
        }
        self.walk
            .peek()
            .and_then(|(k, r)| (k.as_str() == name).then_some(*r))
    }
}

/// Packs a message into an `Any` with its `type.googleapis.com/` URL.
fn pack<T: Message + Name>(message: T) -> Any {
    envoy_types::util::pack_any(message)
}

/// Decodes a packed resource, checking its type URL.
fn unpack<T: Message + Name + Default>(kind: TypeKind, name: &str, any: &Any) -> Result<T, Error> {
    if any.type_url != T::type_url() {
        return Err(Error::UnexpectedType {
            kind,
            name: name.to_string(),
            found: any.type_url.clone(),
            expected: T::type_url(),
        });
    }
    T::decode(any.value.as_slice()).map_err(|source| Error::Decode {
        kind,
        name: name.to_string(),
        type_url: T::type_url(),
        source,
    })
}

/// The ADS config source every dynamic reference (RDS, EDS, SDS) points at.
fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// A reference to a secret served over ADS.
fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ads()),
    }
}

fn duration_ms(ms: u64) -> Duration {
    Duration {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        // Below 1e9, so the cast is lossless.
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn u32v(value: u32) -> UInt32Value {
    UInt32Value { value }
}

fn boolv(value: bool) -> BoolValue {
    BoolValue { value }
}

fn tls_transport_socket(typed_config: Any) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(typed_config)),
    }
}

/// TLS parameters, or `None` when everything is Envoy's default.
fn tls_params(
    min: Option<ir::TlsVersion>,
    max: Option<ir::TlsVersion>,
    cipher_suites: &[String],
    ecdh_curves: &[String],
) -> Option<TlsParameters> {
    if min.is_none() && max.is_none() && cipher_suites.is_empty() && ecdh_curves.is_empty() {
        return None;
    }
    let version = |v: Option<ir::TlsVersion>| {
        (match v {
            None => TlsProtocol::TlsAuto,
            Some(ir::TlsVersion::V1_0) => TlsProtocol::TlSv10,
            Some(ir::TlsVersion::V1_1) => TlsProtocol::TlSv11,
            Some(ir::TlsVersion::V1_2) => TlsProtocol::TlSv12,
            Some(ir::TlsVersion::V1_3) => TlsProtocol::TlSv13,
        }) as i32
    };
    Some(TlsParameters {
        tls_minimum_protocol_version: version(min),
        tls_maximum_protocol_version: version(max),
        cipher_suites: cipher_suites.to_vec(),
        ecdh_curves: ecdh_curves.to_vec(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
