//! The publisher: merges every watch's objects into one [`SourceState`], coalescing bursts.
//!
//! Nothing is published until every watch has completed its initial list (or found its CRD
//! missing); the readiness guard is released with that first publication. After that, changes
//! are published once none has arrived for `debounce` (at most ten windows after the first),
//! as one publication, and only if something actually changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::watch_task::{Change, Key, Msg};
use super::{Scope, Statuses, WATCHED, WatchStatus, Watched};
use crate::api::{Origin, RawObject, ResourceError};
use crate::readiness;
use crate::source::SourceState;

/// A burst is published at most this many debounce windows after its first change.
const MAX_WINDOWS: u32 = 10;

struct Slot {
    watched: Watched,
    /// Initial list done (or the CRD is missing): this slot's objects are a complete view.
    synced: bool,
    status: WatchStatus,
    objects: BTreeMap<Key, RawObject>,
}

pub(super) struct Publisher {
    scope: Scope,
    debounce: Duration,
    guard: readiness::Guard,
    status: watch::Sender<Statuses>,
    state: watch::Sender<Arc<SourceState>>,
    /// The watch tasks, stopped when the publisher ends.
    tasks: Vec<AbortHandle>,
    slots: Vec<Slot>,
    generation: u64,
    dirty: bool,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Publisher {
    pub(super) fn new(
        scope: Scope,
        debounce: Duration,
        guard: readiness::Guard,
        status: watch::Sender<Statuses>,
        state: watch::Sender<Arc<SourceState>>,
        tasks: Vec<AbortHandle>,
    ) -> Self {
        let slots = WATCHED
            .iter()
            .map(|watched| Slot {
                watched: *watched,
                synced: false,
                status: WatchStatus::Pending,
                objects: BTreeMap::new(),
            })
            .collect();
        Publisher {
            scope,
            debounce,
            guard,
            status,
            state,
            tasks,
            slots,
            generation: 0,
            dirty: false,
        }
    }

    /// Runs until every receiver of the state is dropped.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            let first = tokio::select! {
                msg = rx.recv() => msg,
                () = self.state.closed() => None,
            };
            let Some(msg) = first else { return };
            self.apply(msg);
            // Trailing window: publish once quiet for `debounce`, but no later than
            // `MAX_WINDOWS` windows after the first change, so a steady trickle still flows.
            let cap = Instant::now() + self.debounce * MAX_WINDOWS;
            loop {
                let deadline = (Instant::now() + self.debounce).min(cap);
                let next = tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    msg = rx.recv() => msg,
                };
                let Some(msg) = next else { return };
                self.apply(msg);
            }
            self.publish();
        }
    }

    fn apply(&mut self, msg: Msg) {
        let Some(slot) = self.slots.get_mut(msg.slot) else {
            return;
        };
        match msg.change {
            Change::Replace(objects) => {
                if !slot.synced || slot.objects != objects {
                    self.dirty = true;
                }
                slot.synced = true;
                slot.objects = objects;
            }
            Change::Apply(key, raw) => {
                if slot.objects.get(&key) != Some(&raw) {
                    slot.objects.insert(key, raw);
                    self.dirty = true;
                }
            }
            Change::Delete(key) => {
                if slot.objects.remove(&key).is_some() {
                    self.dirty = true;
                }
            }
            Change::Status(status) => {
                if status == WatchStatus::Missing {
                    // No CRD, no objects: a missing kind counts as synced and empty.
                    if !slot.synced || !slot.objects.is_empty() {
                        self.dirty = true;
                    }
                    slot.synced = true;
                    slot.objects.clear();
                }
                if slot.status != status {
                    if matches!(status, WatchStatus::Missing | WatchStatus::Forbidden(_))
                        || matches!(
                            slot.status,
                            WatchStatus::Missing | WatchStatus::Forbidden(_)
                        )
                    {
                        // These show in the published errors.
                        self.dirty = true;
                    }
                    let name = slot.watched.resource_name();
                    self.status.send_modify(|all| {
                        all.insert(name, status.clone());
                    });
                    slot.status = status;
                }
            }
        }
    }

    fn publish(&mut self) {
        if !self.dirty || !self.slots.iter().all(|s| s.synced) {
            return;
        }
        self.dirty = false;
        self.generation += 1;
        let objects: Vec<RawObject> = self
            .slots
            .iter()
            .flat_map(|s| s.objects.values().cloned())
            .collect();
        let errors: Vec<ResourceError> = self.slots.iter().filter_map(|s| self.error(s)).collect();
        tracing::info!(
            generation = self.generation,
            objects = objects.len(),
            errors = errors.len(),
            "kubernetes state published"
        );
        self.state.send_replace(Arc::new(SourceState {
            generation: self.generation,
            objects,
            errors,
        }));
        self.guard.release();
    }

    /// A watch-level problem as a resource error, so it shows with the others on the admin
    /// endpoint: a missing CRD is a warning, an RBAC refusal an error.
    fn error(&self, slot: &Slot) -> Option<ResourceError> {
        let (message, warning) = match &slot.status {
            WatchStatus::Missing => (
                format!(
                    "custom resource definition {} is not installed",
                    slot.watched.resource_name()
                ),
                true,
            ),
            WatchStatus::Forbidden(message) => (message.clone(), false),
            _ => return None,
        };
        let namespace = match &self.scope {
            Scope::All => String::new(),
            Scope::Namespace(ns) => ns.clone(),
        };
        Some(ResourceError {
            origin: Origin::Kubernetes {
                namespace,
                name: String::new(),
            },
            kind: slot.watched.kind.into(),
            name: String::new(),
            field: None,
            message,
            warning,
        })
    }
}
