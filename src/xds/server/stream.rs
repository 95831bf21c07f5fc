//! The loop shared by SotW and delta streams: read requests, follow snapshot changes, push in
//! make-before-break phases, mirror the stream's state into the [`Clients`] registry, and end
//! on shutdown, on replacement by a newer stream of the same node, or when the client leaves.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::Node;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::{Status, Streaming};

use super::clients::{Clients, Protocol, TypeState};
use crate::metrics::Metrics;
use crate::xds::snapshot::{Resource, Snapshot, TypeKind};

/// Secrets, clusters and endpoints: pushed first, never held back.
pub(crate) const PHASE_MAKE: [TypeKind; 3] =
    [TypeKind::Secret, TypeKind::Cluster, TypeKind::Endpoint];
/// Filter configs (ECDS), listeners and routes, in that order: pushed once the client has
/// answered every phase-one push, because routes and filter configs do not warm: a route to a
/// cluster Envoy has not accepted yet answers 503, an ext_authz filter naming such a cluster
/// fails its checks (403).
pub(crate) const PHASE_USE: [TypeKind; 3] = [
    TypeKind::ExtensionConfig,
    TypeKind::Listener,
    TypeKind::Route,
];

/// What every stream needs from the server.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub clients: Clients,
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    pub metrics: Arc<Metrics>,
    pub stop: watch::Receiver<bool>,
}

/// One protocol's per-stream state machine.
pub(crate) trait Handler: Send + 'static {
    type Req: Send + 'static;
    type Resp: Send + 'static;
    const PROTOCOL: Protocol;

    fn node(req: &Self::Req) -> Option<&Node>;
    /// Takes in one request; responses are produced by `sync`.
    fn on_request(&mut self, req: Self::Req, snapshot: Option<&Arc<Snapshot>>);
    /// Responses owed now, in push order.
    fn sync(&mut self, snapshot: &Arc<Snapshot>) -> Vec<Self::Resp>;
    /// The registry view of every type.
    fn view(&self) -> BTreeMap<TypeKind, TypeState>;
    /// When a held-back removal becomes due (a lingering resource,
    /// docs/design.md#push-order-and-warming); `sync` must run then.
    fn wake_at(&self) -> Option<Instant>;
}

/// The earliest of `due` still in the future.
pub(crate) fn next_due<'a>(due: impl Iterator<Item = &'a Instant>) -> Option<Instant> {
    let now = Instant::now();
    due.filter(|d| **d > now).min().copied()
}

/// Removes the stream from the registry however the task ends.
struct Registration {
    clients: Clients,
    metrics: Arc<Metrics>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.remove(self.id);
        self.metrics.xds_streams.set(self.clients.len() as i64);
        tracing::info!(stream = self.id, "ads stream closed");
    }
}

/// Runs one stream to its end. Responses go to `tx`; dropping it ends the response stream.
pub(crate) async fn drive<H: Handler>(
    mut ctx: Ctx,
    mut handler: H,
    mut requests: Streaming<H::Req>,
    tx: mpsc::Sender<Result<H::Resp, Status>>,
    id: u64,
    replaced: Arc<tokio::sync::Notify>,
) {
    let _registration = Registration {
        clients: ctx.clients.clone(),
        metrics: ctx.metrics.clone(),
        id,
    };
    ctx.metrics.xds_streams.set(ctx.clients.len() as i64);
    tracing::info!(stream = id, protocol = ?H::PROTOCOL, "ads stream opened");
    let mut snapshot = ctx.snapshots.borrow_and_update().clone();
    let mut watching = true;
    let mut named = false;
    loop {
        if *ctx.stop.borrow() {
            return;
        }
        let wake = handler.wake_at();
        tokio::select! {
            stop = ctx.stop.changed() => match stop {
                Ok(()) => continue,
                Err(_) => return,
            },
            _ = replaced.notified() => return,
            msg = requests.message() => match msg {
                Ok(Some(req)) => {
                    if !named && let Some(node) = H::node(&req) {
                        named = true;
                        ctx.clients.set_node(id, &node.id, &node.cluster);
                    }
                    handler.on_request(req, snapshot.as_ref());
                }
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(stream = id, %status, "ads stream ended by the client");
                    return;
                }
            },
            changed = ctx.snapshots.changed(), if watching => match changed {
                Ok(()) => snapshot = ctx.snapshots.borrow_and_update().clone(),
                // The publisher is gone: keep serving what we have.
                Err(_) => watching = false,
            },
            // A lingering resource's removal is due.
            _ = sleep_until(wake), if wake.is_some() => {}
        }
        if let Some(snap) = &snapshot {
            for resp in handler.sync(snap) {
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        }
        ctx.clients.update(id, handler.view());
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Names of EDS clusters in `sent` that are new or changed compared with `before`
/// (name → resource version). Envoy warms such a cluster until it receives a fresh EDS
/// response for it, even when the endpoints did not change (docs/design.md#push-order-and-warming).
pub(crate) fn changed_eds_clusters<'a>(
    sent: impl Iterator<Item = &'a Resource>,
    before: &BTreeMap<String, String>,
) -> Vec<String> {
    sent.filter(|r| before.get(&r.name) != Some(&r.version))
        .filter(|r| is_eds_cluster(r))
        .map(|r| r.name.clone())
        .collect()
}

fn is_eds_cluster(r: &Resource) -> bool {
    match Cluster::decode(r.body.value.as_slice()) {
        Ok(c) => matches!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32
        ),
        // Undecodable: assume it may need endpoints; an extra EDS response is harmless.
        Err(_) => true,
    }
}

/// Logs and counts a NACK.
/// Removes private-key material from an Envoy NACK message before it is logged or shown on the
/// admin endpoint: when a resource fails validation, Envoy dumps the offending proto, secrets
/// included.
pub(crate) fn redact(message: String) -> String {
    static PEM_KEY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|"|$)"#,
        )
        .expect("static regex")
    });
    if !message.contains("PRIVATE KEY") {
        return message;
    }
    PEM_KEY
        .replace_all(&message, "<redacted private key>")
        .into_owned()
}

pub(crate) fn log_nack(
    metrics: &Metrics,
    stream: u64,
    kind: TypeKind,
    version: &str,
    nonce: &str,
    message: &str,
) {
    metrics.nacks.inc(kind.short());
    tracing::warn!(
        stream,
        r#type = kind.short(),
        version,
        nonce,
        error = message,
        "envoy rejected configuration"
    );
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn private_keys_in_nack_messages_are_redacted() {
        let msg = r#"Proto constraint validation failed: tls_certificate { private_key { inline_string: "-----BEGIN PRIVATE KEY-----\nMIIEvQSECRET\n-----END PRIVATE KEY-----\n" } }"#;
        let out = redact(msg.to_string());
        assert!(!out.contains("MIIEvQSECRET"), "{out}");
        assert!(out.contains("<redacted private key>"), "{out}");
        // truncated dumps lose the END line: still redacted up to the closing quote
        let cut =
            r#"private_key { inline_string: "-----BEGIN EC PRIVATE KEY-----\nSECRETSECRET" }"#;
        assert!(!redact(cut.to_string()).contains("SECRETSECRET"));
        assert_eq!(
            redact("duplicate cluster c1 found".into()),
            "duplicate cluster c1 found"
        );
    }
}
