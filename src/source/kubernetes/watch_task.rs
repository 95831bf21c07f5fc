//! One resource's watch: runs a kube-runtime `watcher`, turns its events into [`Change`]s for
//! the publisher, classifies errors and backs off.
//!
//! A (re)list is buffered from `Init` to `InitDone` and sent as one `Replace`, so the publisher
//! never sees a half-listed resource. Resuming after a dropped connection is the watcher's
//! (from the last resourceVersion seen); after a 410 Gone it relists.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::strip::strip;
use super::{Scope, Timing, WatchStatus, Watched};
use crate::api::{Origin, RawObject};

/// `(namespace, name)`.
pub(super) type Key = (String, String);

/// What a watch tells the publisher.
#[derive(Debug)]
pub(super) enum Change {
    /// A complete (re)list: replaces everything this watch had.
    Replace(BTreeMap<Key, RawObject>),
    Apply(Key, RawObject),
    Delete(Key),
    Status(WatchStatus),
}

#[derive(Debug)]
pub(super) struct Msg {
    pub slot: usize,
    pub change: Change,
}

pub(super) struct WatchTask {
    pub slot: usize,
    pub watched: Watched,
    pub client: kube::Client,
    pub scope: Scope,
    pub label_selector: Option<String>,
    pub timing: Timing,
    pub tx: mpsc::Sender<Msg>,
}

impl WatchTask {
    fn api(&self) -> Api<DynamicObject> {
        let resource = self.watched.api_resource();
        match &self.scope {
            Scope::All => Api::all_with(self.client.clone(), &resource),
            Scope::Namespace(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
        }
    }

    fn config(&self) -> watcher::Config {
        let mut config = watcher::Config::default();
        if let Some(fields) = self.watched.field_selector {
            config = config.fields(fields);
        }
        if let Some(labels) = &self.label_selector {
            config = config.labels(labels);
        }
        config
    }

    /// Runs until the publisher goes away.
    pub async fn run(self) {
        let resource = self.watched.resource_name();
        let stream = watcher(self.api(), self.config());
        let mut stream = std::pin::pin!(stream);
        let mut buffer: Option<BTreeMap<Key, RawObject>> = None;
        let mut status = WatchStatus::Pending;
        let mut delay = self.timing.backoff_min;
        let mut synced_once = false;
        loop {
            // A resumed watch says nothing when it is back; once it has run quietly for
            // `recovered_after` (longer than a connect attempt can take), the error is over.
            let recovering = synced_once
                && matches!(status, WatchStatus::Failing(_) | WatchStatus::Forbidden(_));
            let next = if recovering {
                match tokio::time::timeout(self.timing.recovered_after, stream.next()).await {
                    Ok(next) => next,
                    Err(_elapsed) => {
                        tracing::info!(resource = %resource, "watch recovered");
                        status = WatchStatus::Synced;
                        delay = self.timing.backoff_min;
                        if self
                            .send(Change::Status(WatchStatus::Synced))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                }
            } else {
                stream.next().await
            };
            let Some(event) = next else { return };
            let change = match event {
                Ok(watcher::Event::Init) => {
                    buffer = Some(BTreeMap::new());
                    continue;
                }
                Ok(watcher::Event::InitApply(obj)) => {
                    let (key, raw) = self.raw(obj);
                    buffer.get_or_insert_default().insert(key, raw);
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    tracing::debug!(resource = %resource, "listed");
                    synced_once = true;
                    Change::Replace(buffer.take().unwrap_or_default())
                }
                Ok(watcher::Event::Apply(obj)) => {
                    let (key, raw) = self.raw(obj);
                    Change::Apply(key, raw)
                }
                Ok(watcher::Event::Delete(obj)) => Change::Delete(self.raw(obj).0),
                Err(error) => {
                    let next = self.classify(&error);
                    let wait = if next == WatchStatus::Missing {
                        self.timing.crd_retry
                    } else {
                        let wait = jitter(delay);
                        delay = (delay * 2).min(self.timing.backoff_max);
                        wait
                    };
                    if next != status {
                        self.report(&next, &error);
                        status = next.clone();
                        if self.send(Change::Status(next)).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            delay = self.timing.backoff_min;
            if status != WatchStatus::Synced {
                if status != WatchStatus::Pending {
                    tracing::info!(resource = %resource, "watch recovered");
                }
                status = WatchStatus::Synced;
                if self
                    .send(Change::Status(WatchStatus::Synced))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if self.send(change).await.is_err() {
                return;
            }
        }
    }

    async fn send(&self, change: Change) -> Result<(), mpsc::error::SendError<Msg>> {
        let slot = self.slot;
        self.tx.send(Msg { slot, change }).await
    }

    /// The object as a `RawObject`, with `apiVersion`/`kind` set (list items may omit them) and
    /// the fields legate never reads dropped ([`strip`]).
    fn raw(&self, obj: DynamicObject) -> (Key, RawObject) {
        let namespace = obj.metadata.namespace.clone().unwrap_or_default();
        let name = obj.metadata.name.clone().unwrap_or_default();
        let mut value = serde_json::to_value(obj).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), self.watched.api_version().into());
            map.insert("kind".into(), self.watched.kind.into());
            strip(self.watched.kind, map);
        }
        let origin = Origin::Kubernetes {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        ((namespace, name), RawObject::new(origin, value))
    }

    fn classify(&self, error: &watcher::Error) -> WatchStatus {
        let (verb, api) = match error {
            watcher::Error::InitialListFailed(e) => ("list", e),
            watcher::Error::WatchStartFailed(e) => ("watch", e),
            watcher::Error::WatchFailed(e) => ("watch", e),
            watcher::Error::WatchError(status) => {
                return if status.code == 403 {
                    WatchStatus::Forbidden(self.forbidden("watch"))
                } else {
                    WatchStatus::Failing(error.to_string())
                };
            }
            _ => return WatchStatus::Failing(error.to_string()),
        };
        match api {
            kube::Error::Api(status) if status.is_forbidden() => {
                WatchStatus::Forbidden(self.forbidden(verb))
            }
            kube::Error::Api(status) if status.is_not_found() && self.watched.custom => {
                WatchStatus::Missing
            }
            _ => WatchStatus::Failing(error.to_string()),
        }
    }

    fn forbidden(&self, verb: &str) -> String {
        format!(
            "forbidden: cannot {verb} {} {}",
            self.watched.resource_name(),
            self.scope.describe()
        )
    }

    /// Logs a change of state once (not every retry).
    fn report(&self, status: &WatchStatus, error: &watcher::Error) {
        let resource = self.watched.resource_name();
        match status {
            WatchStatus::Missing => tracing::warn!(
                resource = %resource,
                retry_secs = self.timing.crd_retry.as_secs_f64(),
                "custom resource definition not installed; skipping it until it is"
            ),
            WatchStatus::Forbidden(message) => {
                tracing::error!(resource = %resource, %message, "rbac refused the request")
            }
            _ => tracing::warn!(
                resource = %resource,
                error = %crate::error::Chain(error),
                "watch failed; retrying"
            ),
        }
    }
}

/// `delay` ± 20 %, so that replicas do not retry in lockstep.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.8 + 0.4 * fastrand::f64())
}
