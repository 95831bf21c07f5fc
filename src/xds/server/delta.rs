//! Delta (incremental) ADS for one stream: per-resource versions, explicit subscribe and
//! unsubscribe, `removed_resources`.
//!
//! Rules (docs/design.md#delta-rules): resources the client already holds at the same version
//! (`initial_resource_versions` or an earlier response) are not re-sent, except when the
//! client names them again in `resource_names_subscribe`; subscriptions are honoured even with
//! a stale nonce; subscribed names that do not exist are reported in `removed_resources`; a
//! NACKed response is never re-sent. Removals of resources the client holds are held back
//! until the listeners and routes of the same change are answered (make before break); only
//! listener removals go out with the listener changes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as WireResource,
};

use super::clients::{Clients, Nack, Protocol, TypeState, TypeView, name_list, now_ms};
use super::stream::{
    Handler, PHASE_MAKE, PHASE_USE, changed_eds_clusters, log_nack, next_due, redact,
};
use crate::metrics::Metrics;
use crate::xds::snapshot::{Snapshot, TypeKind};
use tokio::time::Instant;

/// Unanswered responses remembered per type (Envoy answers each in order).
const PENDING_MEMORY: usize = 16;

pub(crate) struct Delta {
    id: u64,
    clients: Clients,
    metrics: Arc<Metrics>,
    nonce: u64,
    types: BTreeMap<TypeKind, DType>,
}

#[derive(Default)]
struct DType {
    requested: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the client holds, as far as we know: name → resource version.
    known: BTreeMap<String, String>,
    /// Subscribed names already reported absent.
    told_absent: BTreeSet<String>,
    /// Names to send (or report absent) even if the client holds them.
    force: BTreeSet<String>,
    must_answer: bool,
    /// Snapshot version of the last push, and the label the client holds once it ACKs all.
    basis: Option<String>,
    label: Option<String>,
    /// Held resources whose removal is deferred: until the listeners and routes of the
    /// change are answered, then until their linger has passed.
    stale: BTreeSet<String>,
    /// How long each held resource with a non-zero linger must outlive its last use.
    linger: BTreeMap<String, Duration>,
    /// When each stale resource may be removed (set once the change is answered).
    due: BTreeMap<String, Instant>,
    pending: VecDeque<Pending>,
    last_sent: Option<(String, String)>,
    acked: Option<String>,
    last_nack: Option<Nack>,
    nack_count: u64,
}

impl DType {
    /// Awaiting an answer that will come: a client does not answer for a type it stopped
    /// watching.
    fn in_flight(&self) -> bool {
        !self.pending.is_empty() && (self.wildcard || !self.names.is_empty())
    }
}

struct Pending {
    nonce: String,
    version: String,
    basis: String,
    view: TypeView,
}

impl Delta {
    pub(crate) fn new(id: u64, clients: Clients, metrics: Arc<Metrics>) -> Self {
        Delta {
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
            .any(|k| self.types.get(k).is_some_and(DType::in_flight))
    }

    fn on_answer(&mut self, kind: TypeKind, nonce: &str, error: Option<String>) {
        let Some(st) = self.types.get_mut(&kind) else {
            return;
        };
        let Some(pos) = st.pending.iter().position(|p| p.nonce == nonce) else {
            tracing::debug!(
                stream = self.id,
                r#type = kind.short(),
                nonce,
                "answer to an unknown nonce"
            );
            return;
        };
        // Older responses are answered implicitly.
        st.pending.drain(..pos);
        let Some(p) = st.pending.pop_front() else {
            return;
        };
        match error {
            Some(message) => {
                log_nack(&self.metrics, self.id, kind, &p.version, &p.nonce, &message);
                self.clients.record_nack(kind, &p.basis);
                st.nack_count += 1;
                st.last_nack = Some(Nack {
                    version: p.version,
                    nonce: p.nonce,
                    message,
                    at_unix_ms: now_ms(),
                });
            }
            None => {
                if p.version == p.view.version() {
                    self.clients.record_ack(kind, &p.view);
                }
                st.acked = match st.pending.is_empty() {
                    true => st.label.clone(),
                    false => Some(p.version),
                };
            }
        }
    }

    fn push(
        &mut self,
        kind: TypeKind,
        snap: &Arc<Snapshot>,
        finish: bool,
    ) -> Option<DeltaDiscoveryResponse> {
        let target = self.clients.target(snap, kind);
        let st = self.types.get_mut(&kind)?;
        if !st.requested {
            return None;
        }
        let outdated = st.basis.as_ref() != Some(&target.basis);
        if !(outdated || st.must_answer || !st.force.is_empty() || finish) {
            return None;
        }
        let content = &target.view.get().resources;
        let mut sent = Vec::new();
        let mut removed = BTreeSet::new();
        for (n, r) in content
            .iter()
            .filter(|(n, _)| st.wildcard || st.names.contains(*n))
        {
            if !r.linger.is_zero() {
                st.linger.insert(n.clone(), r.linger);
            } else if !st.linger.is_empty() {
                st.linger.remove(n);
            }
            if st.force.contains(n) || st.known.get(n) != Some(&r.version) {
                st.known.insert(n.clone(), r.version.clone());
                sent.push(r);
            }
            st.told_absent.remove(n);
        }
        let absent = st.force.iter().chain(
            st.names
                .iter()
                .filter(|n| !st.told_absent.contains(*n) && !st.known.contains_key(*n)),
        );
        removed.extend(absent.filter(|n| !content.contains_key(*n)).cloned());
        st.force.clear();
        let stale: Vec<String> = st
            .known
            .keys()
            .filter(|n| !content.contains_key(*n))
            .cloned()
            .collect();
        let defer = !finish && kind != TypeKind::Listener;
        let now = Instant::now();
        let (gone, kept): (BTreeSet<String>, BTreeSet<String>) = stale
            .into_iter()
            .partition(|n| !defer && st.due.get(n).is_none_or(|d| *d <= now));
        st.due.retain(|n, _| kept.contains(n));
        st.stale = kept;
        removed.extend(gone);
        for n in &removed {
            st.known.remove(n);
            st.linger.remove(n);
            if st.names.contains(n) {
                st.told_absent.insert(n.clone());
            }
        }
        let label = match st.stale.is_empty() {
            true => target.view.version().to_string(),
            false => format!("{}+keep", target.view.version()),
        };
        st.basis = Some(target.basis.clone());
        st.label = Some(label.clone());
        if sent.is_empty() && removed.is_empty() && !st.must_answer {
            // Nothing this client holds or wants changed: it is already at `label`.
            if st.pending.is_empty() && st.acked.is_some() {
                st.acked = Some(label);
            }
            return None;
        }
        st.must_answer = false;
        self.nonce += 1;
        let nonce = format!("{}-{}", self.id, self.nonce);
        tracing::debug!(stream = self.id, r#type = kind.short(), version = %label, %nonce,
            resources = sent.len(), removed = removed.len(), "ads delta push");
        let resp = DeltaDiscoveryResponse {
            system_version_info: label.clone(),
            resources: sent
                .iter()
                .map(|r| WireResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.body.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: kind.type_url().to_string(),
            removed_resources: removed.into_iter().collect(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        let refresh: Vec<String> = match kind {
            TypeKind::Cluster => changed_eds_clusters(sent.into_iter(), &BTreeMap::new()),
            _ => Vec::new(),
        };
        st.last_sent = Some((label.clone(), nonce.clone()));
        st.pending.push_back(Pending {
            nonce,
            version: label,
            basis: target.basis,
            view: target.view,
        });
        if st.pending.len() > PENDING_MEMORY {
            st.pending.pop_front();
        }
        // A changed EDS cluster warms until it gets its endpoints again
        // (docs/design.md#push-order-and-warming).
        if let Some(eds) = self.types.get_mut(&TypeKind::Endpoint) {
            let wanted: Vec<String> = refresh
                .into_iter()
                .filter(|n| eds.names.contains(n) || eds.wildcard)
                .collect();
            eds.force.extend(wanted);
        }
        Some(resp)
    }
}

impl Handler for Delta {
    type Req = DeltaDiscoveryRequest;
    type Resp = DeltaDiscoveryResponse;
    const PROTOCOL: Protocol = Protocol::Delta;

    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn on_request(&mut self, req: DeltaDiscoveryRequest, _snapshot: Option<&Arc<Snapshot>>) {
        if req.type_url.is_empty() {
            // An answer to a push of a type the client no longer watches: drop that push
            // from the pending ones so it does not hold back later phases.
            tracing::debug!(stream = self.id, nonce = %req.response_nonce, "ignoring a delta request without type url");
            for st in self.types.values_mut() {
                st.pending.retain(|p| p.nonce != req.response_nonce);
            }
            return;
        }
        let Some(kind) = TypeKind::from_type_url(&req.type_url) else {
            tracing::warn!(stream = self.id, type_url = %req.type_url, "ignoring a request for a type legate does not serve");
            return;
        };
        let st = self.types.entry(kind).or_default();
        let first = !st.requested;
        if first {
            st.requested = true;
            st.must_answer = true;
            st.known = req.initial_resource_versions.into_iter().collect();
            st.wildcard = req.resource_names_subscribe.is_empty() && kind.is_wildcard();
        }
        for n in req.resource_names_subscribe {
            if n == "*" {
                st.wildcard = true;
                continue;
            }
            if !first {
                st.force.insert(n.clone());
            }
            st.names.insert(n);
        }
        for n in req.resource_names_unsubscribe {
            if n == "*" {
                st.wildcard = false;
                let names = &st.names;
                st.known.retain(|k, _| names.contains(k));
                continue;
            }
            st.names.remove(&n);
            st.told_absent.remove(&n);
            if st.wildcard {
                // Still covered by `*`: the client must be told (docs/design.md#delta-rules).
                st.force.insert(n);
            } else {
                st.force.remove(&n);
                st.known.remove(&n);
            }
        }
        if !req.response_nonce.is_empty() {
            let error = req.error_detail.map(|s| redact(s.message));
            self.on_answer(kind, &req.response_nonce, error);
        }
    }

    fn sync(&mut self, snap: &Arc<Snapshot>) -> Vec<DeltaDiscoveryResponse> {
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
        // The change is applied: each held-back removal waits out its resource's linger
        // from now on (docs/design.md#push-order-and-warming).
        let now = Instant::now();
        for kind in TypeKind::ORDER {
            let Some(st) = self.types.get_mut(&kind) else {
                continue;
            };
            for n in &st.stale {
                let linger = st.linger.get(n).copied().unwrap_or_default();
                st.due.entry(n.clone()).or_insert(now + linger);
            }
            let ripe = st.due.values().any(|d| *d <= now);
            if ripe && !self.in_flight(&[kind]) {
                out.extend(self.push(kind, snap, true));
            }
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
                    sent_version: st.last_sent.as_ref().map(|s| s.0.clone()),
                    sent_nonce: st.last_sent.as_ref().map(|s| s.1.clone()),
                    acked_version: st.acked.clone(),
                    last_nack: st.last_nack.clone(),
                    nack_count: st.nack_count,
                };
                (*k, ts)
            })
            .collect()
    }
}
