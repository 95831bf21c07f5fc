//! The registry of connected ADS clients, shared by every stream and read by readiness, the
//! push-latency metric and the admin endpoint.
//!
//! It also holds the state that outlives a stream: per type, the last content any client
//! ACKed and the versions Envoy rejected, so that a new stream (a restarted Envoy) is served
//! the last accepted configuration instead of one known to be bad (issue 2: "the last version
//! Envoy accepted stays in force").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::xds::snapshot::{Snapshot, TypeKind, TypeSnapshot};

/// How many rejected versions per type are remembered.
const NACKED_MEMORY: usize = 32;

/// Which ADS flavour a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Sotw,
    Delta,
}

/// One connected stream, as shown on the admin endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ClientState {
    pub stream_id: u64,
    pub node_id: String,
    pub node_cluster: String,
    pub protocol: Protocol,
    pub connected_at_unix_ms: u64,
    pub types: BTreeMap<TypeKind, TypeState>,
}

/// One type on one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeState {
    /// Subscribed to every resource of the type (`*`, or legacy wildcard).
    pub wildcard: bool,
    /// Explicitly subscribed names (they may not exist yet).
    pub names: Vec<String>,
    pub sent_version: Option<String>,
    pub sent_nonce: Option<String>,
    /// The version of the last response this client ACKed.
    pub acked_version: Option<String>,
    pub last_nack: Option<Nack>,
    pub nack_count: u64,
}

impl TypeState {
    /// Whether the client currently wants anything of this type. A type that was never
    /// requested, or whose named subscription is empty, does not take part in readiness.
    pub fn subscribed(&self) -> bool {
        self.wildcard || !self.names.is_empty()
    }
}

/// A rejected response.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Nack {
    /// The version that was rejected (the one we sent, not the one Envoy kept).
    pub version: String,
    pub nonce: String,
    pub message: String,
    pub at_unix_ms: u64,
}

/// Clonable handle on the registry.
#[derive(Clone, Debug)]
pub struct Clients {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Mutex<Registry>,
    changes: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    streams: BTreeMap<u64, Entry>,
    last_good: BTreeMap<TypeKind, TypeView>,
    nacked: BTreeMap<TypeKind, Vec<String>>,
}

#[derive(Debug)]
struct Entry {
    state: ClientState,
    replaced: Arc<Notify>,
}

/// One type of one snapshot: the content a response is built from.
#[derive(Debug, Clone)]
pub(crate) struct TypeView {
    snapshot: Arc<Snapshot>,
    kind: TypeKind,
}

static EMPTY: std::sync::LazyLock<TypeSnapshot> = std::sync::LazyLock::new(TypeSnapshot::default);

impl TypeView {
    pub(crate) fn new(snapshot: Arc<Snapshot>, kind: TypeKind) -> Self {
        TypeView { snapshot, kind }
    }
    pub(crate) fn get(&self) -> &TypeSnapshot {
        self.snapshot.get(self.kind).unwrap_or(&EMPTY)
    }
    pub(crate) fn version(&self) -> &str {
        &self.get().version
    }
}

/// What a stream should serve for a type: `view`'s content, on behalf of snapshot version
/// `basis` (they differ when the current version was rejected and the last accepted content
/// is served instead).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub view: TypeView,
    pub basis: String,
}

impl Default for Clients {
    fn default() -> Self {
        Self::new()
    }
}

impl Clients {
    pub fn new() -> Self {
        Clients {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::default()),
                changes: watch::Sender::new(0),
            }),
        }
    }

    /// Every connected stream, by stream id.
    pub fn state(&self) -> Vec<ClientState> {
        let reg = self.lock();
        reg.streams.values().map(|e| e.state.clone()).collect()
    }

    /// Bumped on every change of any client's state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Number of connected streams.
    pub fn len(&self) -> usize {
        self.lock().streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when a connected client subscribes to CDS and LDS (legate's bootstrap always does)
    /// and has ACKed exactly `versions` for every type it subscribes to. Types it never
    /// subscribed to (no secrets, no RDS) do not count.
    pub fn acked(&self, versions: &BTreeMap<TypeKind, String>) -> bool {
        let reg = self.lock();
        reg.streams
            .values()
            .any(|e| client_matches(&e.state, versions, |_, _| false))
    }

    /// Like [`Clients::acked`], but a type whose wanted version was rejected counts as settled
    /// when the client holds some accepted version of it (it keeps serving the last good
    /// config; readiness should not flap on a bad change).
    pub fn settled(&self, versions: &BTreeMap<TypeKind, String>) -> bool {
        let reg = self.lock();
        reg.streams.values().any(|e| {
            client_matches(&e.state, versions, |kind, ts| {
                let wanted = versions.get(&kind).map(String::as_str).unwrap_or("");
                ts.acked_version.is_some()
                    && reg
                        .nacked
                        .get(&kind)
                        .is_some_and(|v| v.iter().any(|x| x == wanted))
            })
        })
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Registers a new stream; returns its id and the signal that ends it when another stream
    /// of the same node replaces it.
    pub(crate) fn register(&self, protocol: Protocol) -> (u64, Arc<Notify>) {
        let replaced = Arc::new(Notify::new());
        let id = {
            let mut reg = self.lock();
            reg.next_id += 1;
            let id = reg.next_id;
            let state = ClientState {
                stream_id: id,
                node_id: String::new(),
                node_cluster: String::new(),
                protocol,
                connected_at_unix_ms: now_ms(),
                types: BTreeMap::new(),
            };
            let replaced = replaced.clone();
            reg.streams.insert(id, Entry { state, replaced });
            id
        };
        self.bump();
        (id, replaced)
    }

    /// Records the node of a stream. An older stream of the same node is told to end: a
    /// restarted Envoy replaces its previous incarnation, whose stream may linger half-open.
    pub(crate) fn set_node(&self, id: u64, node_id: &str, node_cluster: &str) {
        let mut reg = self.lock();
        for (other, e) in reg.streams.iter_mut() {
            if *other != id && e.state.node_id == node_id && e.state.node_cluster == node_cluster {
                tracing::info!(
                    stream = other,
                    by = id,
                    node = node_id,
                    "ads stream replaced by a newer one"
                );
                e.replaced.notify_one();
            }
        }
        if let Some(e) = reg.streams.get_mut(&id) {
            e.state.node_id = node_id.to_string();
            e.state.node_cluster = node_cluster.to_string();
        }
    }

    pub(crate) fn update(&self, id: u64, types: BTreeMap<TypeKind, TypeState>) {
        if let Some(e) = self.lock().streams.get_mut(&id) {
            e.state.types = types;
        }
        self.bump();
    }

    pub(crate) fn remove(&self, id: u64) {
        self.lock().streams.remove(&id);
        self.bump();
    }

    /// What to serve for `kind` from `snapshot`: its content, unless that version was
    /// rejected and some accepted content exists.
    pub(crate) fn target(&self, snapshot: &Arc<Snapshot>, kind: TypeKind) -> Target {
        let view = TypeView::new(snapshot.clone(), kind);
        let basis = view.version().to_string();
        let reg = self.lock();
        let rejected = reg.nacked.get(&kind).is_some_and(|v| v.contains(&basis));
        match reg.last_good.get(&kind) {
            Some(good) if rejected => Target {
                view: good.clone(),
                basis,
            },
            _ => Target { view, basis },
        }
    }

    /// A client accepted `view`'s content.
    pub(crate) fn record_ack(&self, kind: TypeKind, view: &TypeView) {
        let mut reg = self.lock();
        let version = view.version().to_string();
        if let Some(v) = reg.nacked.get_mut(&kind) {
            v.retain(|x| *x != version);
        }
        reg.last_good.insert(kind, view.clone());
    }

    /// A client rejected the content of snapshot version `basis`.
    pub(crate) fn record_nack(&self, kind: TypeKind, basis: &str) {
        let mut reg = self.lock();
        let v = reg.nacked.entry(kind).or_default();
        if !v.iter().any(|x| x == basis) {
            v.push(basis.to_string());
            if v.len() > NACKED_MEMORY {
                v.remove(0);
            }
        }
    }
}

fn client_matches(
    state: &ClientState,
    versions: &BTreeMap<TypeKind, String>,
    excused: impl Fn(TypeKind, &TypeState) -> bool,
) -> bool {
    let has = |k: TypeKind| state.types.get(&k).is_some_and(TypeState::subscribed);
    if !has(TypeKind::Cluster) || !has(TypeKind::Listener) {
        return false;
    }
    state
        .types
        .iter()
        .filter(|(_, ts)| ts.subscribed())
        .all(|(kind, ts)| {
            let wanted = versions.get(kind).map(String::as_str).unwrap_or("");
            ts.acked_version.as_deref() == Some(wanted) || excused(*kind, ts)
        })
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Names as a sorted list, for [`TypeState::names`].
pub(crate) fn name_list(names: &BTreeSet<String>) -> Vec<String> {
    names.iter().cloned().collect()
}
