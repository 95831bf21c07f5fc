//! State-of-the-World ADS: per-type subscriptions, nonces, ACK/NACK and pushes for one stream.
//!
//! Rules (docs/design.md#state-of-the-world-rules):
//! ACK and NACK are told apart only by `error_detail`; a
//! NACKed version is never re-sent; a request echoing an older nonce is ignored; the first
//! request of each type on a stream is always answered (versions are boot-id prefixed, but a
//! reconnecting Envoy's version must never be taken for "up to date"); a changed name set is
//! answered even when version and nonce echo the last ACK; an EDS request after a CDS push
//! that added or modified EDS clusters is answered afresh (docs/design.md#push-order-and-warming).
//!
//! Stale clusters are removed only after the listeners and routes of the same change are
//! answered: while they are pending, the CDS response also carries the clusters the client
//! still holds, labelled `<version>+keep`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Superseded responses remembered per type.
const EARLIER_MEMORY: usize = 4;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::clients::{Clients, Nack, Protocol, TypeState, TypeView, name_list, now_ms};
use super::stream::{
    Handler, PHASE_MAKE, PHASE_USE, changed_eds_clusters, log_nack, next_due, redact,
};
use crate::metrics::Metrics;
use crate::xds::snapshot::{Resource, Snapshot, TypeKind};
use tokio::time::Instant;

pub(crate) struct Sotw {
    id: u64,
    clients: Clients,
    metrics: Arc<Metrics>,
    nonce: u64,
    types: BTreeMap<TypeKind, TypeSt>,
}

#[derive(Default)]
struct TypeSt {
    requested: bool,
    /// Subscribed by an empty first request: stays wildcard while requests stay empty.
    legacy_wildcard: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// A request that must be answered even if nothing changed.
    must_answer: bool,
    sent: Option<Sent>,
    /// Resources of the last response ACKed while it was the latest.
    held: Contents,
    /// Earlier responses, so that a late ACK or NACK of one is still recorded.
    earlier: VecDeque<Past>,
    /// The latest response has been ACKed or NACKed.
    answered: bool,
    acked: Option<String>,
    /// (EDS only) a CDS push added or changed EDS clusters since the last EDS response.
    eds_refresh: bool,
    /// (CDS only) when each stale cluster may be removed: set once the change that dropped
    /// it is answered, its linger later (docs/design.md#push-order-and-warming).
    due: BTreeMap<String, Instant>,
    last_nack: Option<Nack>,
    nack_count: u64,
}

/// What is remembered of a response once newer ones were sent.
#[derive(Clone)]
struct Past {
    nonce: String,
    version: String,
    basis: String,
    view: TypeView,
}

struct Sent {
    version: String,
    nonce: String,
    /// The snapshot version this response stands for.
    basis: String,
    view: TypeView,
    /// False for a CDS response that still carries stale clusters.
    exact: bool,
    resources: Contents,
}

/// The resources of a response, by name, each with the view it is found in (a stale cluster
/// kept in a CDS response comes from an earlier snapshot). Shared between a response and
/// `held`; the resources themselves are never copied out of their snapshots.
type Contents = Arc<BTreeMap<String, TypeView>>;

/// The resource `name` of `view`.
fn resource<'a>(name: &str, view: &'a TypeView) -> Option<&'a Resource> {
    view.get().resources.get(name)
}

impl Sent {
    fn past(&self) -> Past {
        Past {
            nonce: self.nonce.clone(),
            version: self.version.clone(),
            basis: self.basis.clone(),
            view: self.view.clone(),
        }
    }
}

impl TypeSt {
    fn subscribed(&self) -> bool {
        self.wildcard || !self.names.is_empty()
    }
    fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
    /// Awaiting an answer that will come: a client does not answer for a type it stopped
    /// watching.
    fn in_flight(&self) -> bool {
        self.sent.is_some() && !self.answered && self.subscribed()
    }
}

impl Sotw {
    pub(crate) fn new(id: u64, clients: Clients, metrics: Arc<Metrics>) -> Self {
        Sotw {
            id,
            clients,
            metrics,
            nonce: 0,
            types: BTreeMap::new(),
        }
    }

    fn in_flight(&self, kinds: &[TypeKind]) -> bool {
        kinds
            .iter()
            .any(|k| self.types.get(k).is_some_and(TypeSt::in_flight))
    }

    /// Records a rejection of `past` (the latest response, or a superseded one).
    fn on_nack(
        &mut self,
        kind: TypeKind,
        past: Past,
        message: String,
        snapshot: Option<&Arc<Snapshot>>,
    ) {
        log_nack(
            &self.metrics,
            self.id,
            kind,
            &past.version,
            &past.nonce,
            &message,
        );
        self.clients.record_nack(kind, &past.basis);
        let clients = self.clients.clone();
        let Some(st) = self.types.get_mut(&kind) else {
            return;
        };
        st.nack_count += 1;
        st.last_nack = Some(Nack {
            version: past.version,
            nonce: past.nonce.clone(),
            message,
            at_unix_ms: now_ms(),
        });
        let Some(sent) = st.sent.as_mut().filter(|s| s.nonce == past.nonce) else {
            return;
        };
        // Envoy kept what it held: nothing of the rejected response is stale.
        sent.exact = true;
        sent.resources = st.held.clone();
        // Never re-send rejected content: a changed subscription is answered only when
        // accepted content exists to answer it with.
        let rejected = past.view.version().to_string();
        st.must_answer = st.must_answer
            && snapshot.is_some_and(|s| clients.target(s, kind).view.version() != rejected);
    }

    fn push(
        &mut self,
        kind: TypeKind,
        snap: &Arc<Snapshot>,
        finish: bool,
    ) -> Option<DiscoveryResponse> {
        let target = self.clients.target(snap, kind);
        let st = self.types.get_mut(&kind)?;
        if !st.requested || !st.subscribed() {
            st.must_answer = false;
            return None;
        }
        let outdated = st.sent.as_ref().is_none_or(|s| s.basis != target.basis);
        if !(outdated || st.must_answer || finish) {
            return None;
        }
        let mut resources: BTreeMap<String, TypeView> = target
            .view
            .get()
            .resources
            .keys()
            .filter(|n| st.wants(n))
            .map(|n| (n.clone(), target.view.clone()))
            .collect();
        let mut exact = true;
        let before: BTreeMap<String, String> = st.sent.as_ref().map_or_else(BTreeMap::new, |s| {
            s.resources
                .iter()
                .filter_map(|(n, v)| Some((n.clone(), resource(n, v)?.version.clone())))
                .collect()
        });
        if kind == TypeKind::Cluster {
            // Stale clusters stay until the change is answered, then until their linger
            // has passed.
            let now = Instant::now();
            let sent = st.sent.as_ref().map(|s| s.resources.as_ref());
            let mut kept = BTreeSet::new();
            for (n, v) in sent.into_iter().flatten() {
                let keep = !finish || st.due.get(n).is_some_and(|d| *d > now);
                if keep && !resources.contains_key(n) && st.wants(n) {
                    resources.insert(n.clone(), v.clone());
                    kept.insert(n);
                    exact = false;
                }
            }
            st.due.retain(|n, _| kept.contains(n));
        }
        let bodies: Vec<&Resource> = resources
            .iter()
            .filter_map(|(n, v)| resource(n, v))
            .collect();
        let version = match exact {
            true => target.view.version().to_string(),
            false => format!("{}+keep", target.view.version()),
        };
        self.nonce += 1;
        let nonce = format!("{}-{}", self.id, self.nonce);
        let resp = DiscoveryResponse {
            version_info: version.clone(),
            resources: bodies.iter().map(|r| r.body.clone()).collect(),
            type_url: kind.type_url().to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        tracing::debug!(stream = self.id, r#type = kind.short(), %version, %nonce,
            resources = bodies.len(), "ads push");
        let refresh_eds = kind == TypeKind::Cluster
            && !changed_eds_clusters(bodies.into_iter(), &before).is_empty();
        if let Some(prev) = st.sent.take() {
            st.earlier.push_back(prev.past());
            if st.earlier.len() > EARLIER_MEMORY {
                st.earlier.pop_front();
            }
        }
        st.sent = Some(Sent {
            version,
            nonce,
            basis: target.basis,
            view: target.view,
            exact,
            resources: Arc::new(resources),
        });
        st.answered = false;
        st.must_answer = false;
        if kind == TypeKind::Endpoint {
            st.eds_refresh = false;
        }
        if refresh_eds && let Some(eds) = self.types.get_mut(&TypeKind::Endpoint) {
            eds.eds_refresh = true;
        }
        Some(resp)
    }
}

impl Handler for Sotw {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::Sotw;

    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn on_request(&mut self, req: DiscoveryRequest, snapshot: Option<&Arc<Snapshot>>) {
        if req.type_url.is_empty() {
            // Envoy answers a push of a type it does not watch with an empty type URL; such
            // a request carries nothing to act on and must not end the stream.
            // It still answers that push: the type must not hold back later phases.
            tracing::debug!(stream = self.id, nonce = %req.response_nonce, "ignoring a request without type url");
            for st in self.types.values_mut() {
                if st
                    .sent
                    .as_ref()
                    .is_some_and(|s| s.nonce == req.response_nonce)
                {
                    st.answered = true;
                }
            }
            return;
        }
        let Some(kind) = TypeKind::from_type_url(&req.type_url) else {
            tracing::warn!(stream = self.id, type_url = %req.type_url, "ignoring a request for a type legate does not serve");
            return;
        };
        let st = self.types.entry(kind).or_default();
        let echoes = st
            .sent
            .as_ref()
            .is_some_and(|s| s.nonce == req.response_nonce);
        if !req.response_nonce.is_empty() && st.sent.is_some() && !echoes {
            // Superseded by a newer response: not answered, but what it says about the
            // older response is recorded (a snapshot change can overtake an ACK).
            tracing::debug!(stream = self.id, r#type = kind.short(), nonce = %req.response_nonce, "ignoring a request with a stale nonce");
            let Some(pos) = st
                .earlier
                .iter()
                .position(|p| p.nonce == req.response_nonce)
            else {
                return;
            };
            // Envoy answers in order: the responses before this one will not be answered
            // any more, and need not keep their snapshots alive.
            st.earlier.drain(..pos);
            let Some(past) = st.earlier.front().cloned() else {
                return;
            };
            match req.error_detail {
                Some(status) => self.on_nack(kind, past, redact(status.message), snapshot),
                None => {
                    if req.version_info == past.version {
                        self.clients.record_ack(kind, &past.view);
                    }
                    st.acked = Some(req.version_info);
                }
            }
            return;
        }
        let first = !st.requested;
        let mut names: BTreeSet<String> = req.resource_names.into_iter().collect();
        let wildcard = if first && names.is_empty() && kind.is_wildcard() {
            st.legacy_wildcard = true;
            true
        } else if st.legacy_wildcard && names.is_empty() {
            true
        } else {
            st.legacy_wildcard = false;
            names.remove("*")
        };
        let changed = !first && (wildcard != st.wildcard || names != st.names);
        st.requested = true;
        st.wildcard = wildcard;
        st.names = names;
        st.must_answer |= first || changed || (kind == TypeKind::Endpoint && st.eds_refresh);
        if echoes {
            st.answered = true;
            // The latest response is answered, so are all earlier ones (in order): their
            // snapshots need not be kept alive.
            st.earlier.clear();
        }
        if let Some(status) = req.error_detail {
            // `version_info` of a NACK is the version the client keeps.
            if !req.version_info.is_empty() {
                st.acked = Some(req.version_info);
            }
            if let Some(past) = st.sent.as_ref().filter(|_| echoes).map(Sent::past) {
                self.on_nack(kind, past, redact(status.message), snapshot);
            }
            return;
        }
        if echoes && let Some(sent) = &st.sent {
            if req.version_info == sent.version {
                self.clients.record_ack(kind, &sent.view);
                st.held = sent.resources.clone();
            }
            st.acked = Some(req.version_info);
        }
    }

    fn sync(&mut self, snap: &Arc<Snapshot>) -> Vec<DiscoveryResponse> {
        let mut out: Vec<_> = PHASE_MAKE
            .iter()
            .filter_map(|k| self.push(*k, snap, false))
            .collect();
        if self.in_flight(&PHASE_MAKE) {
            return out;
        }
        out.extend(PHASE_USE.iter().filter_map(|k| self.push(*k, snap, false)));
        if self.in_flight(&PHASE_USE) {
            return out;
        }
        // The change is applied: each stale cluster waits out its linger from now on.
        let target = self.clients.target(snap, TypeKind::Cluster);
        let content = &target.view.get().resources;
        let now = Instant::now();
        let mut ripe = false;
        if let Some(st) = self.types.get_mut(&TypeKind::Cluster)
            && let Some(sent) = st.sent.as_ref().filter(|s| !s.exact)
        {
            for (n, v) in sent.resources.iter() {
                if !content.contains_key(n) {
                    let linger = resource(n, v).map(|r| r.linger).unwrap_or_default();
                    st.due.entry(n.clone()).or_insert(now + linger);
                }
            }
            ripe = st.due.values().any(|d| *d <= now);
        }
        if ripe && !self.in_flight(&[TypeKind::Cluster]) {
            out.extend(self.push(TypeKind::Cluster, snap, true));
        }
        out
    }

    fn wake_at(&self) -> Option<Instant> {
        next_due(self.types.values().flat_map(|st| st.due.values()))
    }

    fn view(&self) -> BTreeMap<TypeKind, TypeState> {
        self.types
            .iter()
            .filter(|(_, st)| st.requested)
            .map(|(k, st)| {
                let ts = TypeState {
                    wildcard: st.wildcard,
                    names: name_list(&st.names),
                    sent_version: st.sent.as_ref().map(|s| s.version.clone()),
                    sent_nonce: st.sent.as_ref().map(|s| s.nonce.clone()),
                    acked_version: st.acked.clone(),
                    last_nack: st.last_nack.clone(),
                    nack_count: st.nack_count,
                };
                (*k, ts)
            })
            .collect()
    }
}
