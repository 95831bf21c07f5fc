//! The publisher: merges every watch's objects into one [`SourceState`], coalescing bursts.
//!
//! Nothing is published until every watch has completed its initial list (or found its CRD
//! missing); the list that completes the sync is published at once, and the readiness guard is
//! released with that first publication. After that, a lone change (none arrived in the
//! `debounce` before it; the first change after the initial sync is lone too) is published at
//! once, after a gather window of a few milliseconds ([`GATHER`]) for what arrives with it.
//! Changes that follow within `debounce` of another are a burst: published once none has
//! arrived for `debounce` (at most ten windows after the burst's first), as one publication.
//! Only what actually changed is published.
//!
//! Memory: the published state is the only copy of the objects. Between publications each
//! watch's changes wait in its slot ([`Pending`]); a publication merges them into the previous
//! state's objects, moving the unchanged ones out of it when no consumer still holds it (the
//! pipeline lets go of a state once it is translated), and cloning them only when one does.
//! The published objects are in watch order, then sorted by namespace/name, so each watch's
//! objects are one contiguous, sorted run.

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

/// How long a lone change waits for others arriving with it: the file source's gather window.
const GATHER: Duration = crate::source::file::GATHER;

struct Slot {
    watched: Watched,
    /// Initial list done (or the CRD is missing): this slot's objects are a complete view.
    synced: bool,
    status: WatchStatus,
    /// How many of the published objects are this watch's.
    published: usize,
    /// Changes since the last publication.
    pending: Pending,
}

/// What a watch changed since the last publication.
#[derive(Debug, Default)]
enum Pending {
    #[default]
    Nothing,
    /// Per key: the new object, or `None` for a deletion.
    Changes(BTreeMap<Key, Option<RawObject>>),
    /// A complete (re)list: replaces every published object of the watch.
    Replace(BTreeMap<Key, RawObject>),
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
                published: 0,
                pending: Pending::Nothing,
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
        }
    }

    /// Runs until every receiver of the state is dropped.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // When the last message arrived; `None` until the first publication, so that the first
        // change after the initial sync is lone.
        let mut last: Option<Instant> = None;
        loop {
            let first = tokio::select! {
                msg = rx.recv() => msg,
                () = self.state.closed() => None,
            };
            let Some(msg) = first else { return };
            let now = Instant::now();
            let lone = last.is_none_or(|t| now.duration_since(t) >= self.debounce);
            self.apply(msg);
            if !self.state.borrow().is_synced() {
                // Initial sync: nothing to publish until every watch has listed; the list that
                // completes it is published at once, with whatever queued up behind it.
                if self.slots.iter().all(|s| s.synced) {
                    self.drain(&mut rx);
                    self.publish();
                }
                continue;
            }
            last = Some(now);
            // A lone change (none in the window before it) is served after `GATHER` only,
            // gathering what arrives with it (a batch applied at once: one publication, not
            // two), and at the latest one window after it. A burst is published once quiet for
            // `debounce`, but no later than `MAX_WINDOWS` windows after its first change, so a
            // steady trickle still flows.
            let (window, cap) = match lone {
                true => (GATHER.min(self.debounce), now + self.debounce),
                false => (self.debounce, now + self.debounce * MAX_WINDOWS),
            };
            loop {
                let deadline = (Instant::now() + window).min(cap);
                let next = tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    msg = rx.recv() => msg,
                };
                let Some(msg) = next else { return };
                last = Some(Instant::now());
                self.apply(msg);
            }
            self.publish();
        }
    }

    /// Applies the messages already queued, without waiting.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            self.apply(msg);
        }
    }

    fn apply(&mut self, msg: Msg) {
        let Some(slot) = self.slots.get_mut(msg.slot) else {
            return;
        };
        match msg.change {
            Change::Replace(objects) => {
                slot.synced = true;
                slot.pending = Pending::Replace(objects);
            }
            Change::Apply(key, raw) => slot.pending.set(key, Some(raw)),
            Change::Delete(key) => slot.pending.set(key, None),
            Change::Status(status) => {
                if status == WatchStatus::Missing {
                    // No CRD, no objects: a missing kind counts as synced and empty.
                    slot.synced = true;
                    slot.pending = Pending::Replace(BTreeMap::new());
                }
                if slot.status != status {
                    let name = slot.watched.resource_name();
                    self.status.send_modify(|all| {
                        all.insert(name, status.clone());
                    });
                    slot.status = status;
                }
            }
        }
    }

    /// Publishes the pending changes, if every watch has synced and they change anything (the
    /// first publication always happens).
    fn publish(&mut self) {
        if !self.slots.iter().all(|s| s.synced) {
            return;
        }
        let errors: Vec<ResourceError> = self.slots.iter().filter_map(|s| self.error(s)).collect();
        let (generation, unique) = {
            let current = self.state.borrow();
            if current.is_synced() && current.errors == errors && !self.changes(&current.objects) {
                drop(current);
                for slot in &mut self.slots {
                    slot.pending = Pending::Nothing;
                }
                return;
            }
            (current.generation + 1, Arc::strong_count(&*current) == 1)
        };
        // A consumer still holds the current state: copy its list outside the channel's lock
        // (each object's value is shared, not copied). Otherwise it is moved out below.
        let copied = (!unique).then(|| self.state.borrow().objects.clone());
        let slots = &mut self.slots;
        let mut count = 0;
        let error_count = errors.len();
        self.state.send_if_modified(|current| {
            let previous = match (copied, std::mem::take(current)) {
                (Some(objects), _) => objects,
                (None, state) => Arc::try_unwrap(state)
                    .map(|s| s.objects)
                    .unwrap_or_else(|shared| shared.objects.clone()),
            };
            let objects = merge(slots, previous);
            count = objects.len();
            *current = Arc::new(SourceState {
                generation,
                objects,
                errors,
            });
            true
        });
        tracing::info!(
            generation,
            objects = count,
            errors = error_count,
            "kubernetes state published"
        );
        self.guard.release();
    }

    /// Whether the pending changes differ from `published` (the current objects).
    fn changes(&self, published: &[RawObject]) -> bool {
        let mut start = 0;
        for slot in &self.slots {
            let Some(old) = published.get(start..start + slot.published) else {
                return true;
            };
            start += slot.published;
            let changed = match &slot.pending {
                Pending::Nothing => false,
                Pending::Replace(objects) => {
                    objects.len() != old.len() || objects.values().zip(old).any(|(n, o)| n != o)
                }
                Pending::Changes(changes) => changes.iter().any(|(key, change)| {
                    let found = old
                        .binary_search_by(|o| key_of(o).cmp(&(key.0.as_str(), key.1.as_str())))
                        .ok()
                        .map(|i| &old[i]);
                    change.as_ref() != found
                }),
            };
            if changed {
                return true;
            }
        }
        false
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

impl Pending {
    /// Records that `key` is now `object` (`None`: deleted).
    fn set(&mut self, key: Key, object: Option<RawObject>) {
        match self {
            Pending::Nothing => *self = Pending::Changes(BTreeMap::from([(key, object)])),
            Pending::Changes(changes) => {
                changes.insert(key, object);
            }
            Pending::Replace(objects) => match object {
                Some(object) => {
                    objects.insert(key, object);
                }
                None => {
                    objects.remove(&key);
                }
            },
        }
    }
}

/// The next published objects: `previous` (each slot's run, in slot order) with every slot's
/// pending changes applied, which are cleared. Updates each slot's `published` count.
fn merge(slots: &mut [Slot], previous: Vec<RawObject>) -> Vec<RawObject> {
    let capacity = slots
        .iter()
        .map(|s| match &s.pending {
            Pending::Nothing => s.published,
            Pending::Replace(objects) => objects.len(),
            Pending::Changes(changes) => s.published + changes.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(capacity);
    let mut previous = previous.into_iter();
    for slot in slots {
        let start = out.len();
        let mut old = previous.by_ref().take(slot.published).peekable();
        match std::mem::take(&mut slot.pending) {
            Pending::Nothing => {}
            Pending::Replace(objects) => {
                old.by_ref().for_each(drop);
                out.extend(objects.into_values());
            }
            Pending::Changes(changes) => {
                for (key, change) in changes {
                    let key = (key.0.as_str(), key.1.as_str());
                    while let Some(o) = old.next_if(|o| key_of(o) < key) {
                        out.push(o);
                    }
                    // Replaced or deleted.
                    old.next_if(|o| key_of(o) == key);
                    out.extend(change);
                }
            }
        }
        out.extend(old);
        slot.published = out.len() - start;
    }
    out
}

/// The namespace/name an object is keyed by (its origin, set from the same metadata).
fn key_of(object: &RawObject) -> (&str, &str) {
    match &object.origin {
        Origin::Kubernetes { namespace, name } => (namespace, name),
        _ => ("", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::Ready;

    fn key(ns: &str, name: &str) -> Key {
        (ns.into(), name.into())
    }

    fn raw(ns: &str, name: &str, spec: &str) -> RawObject {
        RawObject::new(
            Origin::Kubernetes {
                namespace: ns.into(),
                name: name.into(),
            },
            serde_json::json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}),
        )
    }

    fn names(objects: &[RawObject]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}={}",
                    key_of(o).0,
                    key_of(o).1,
                    o.value.to_value()["spec"]
                )
            })
            .collect()
    }

    /// Where the object's map lives: the same after a move, new after a clone.
    fn address(object: &RawObject) -> *const u8 {
        Arc::as_ptr(&object.value).cast()
    }

    fn publisher() -> (Publisher, watch::Receiver<Arc<SourceState>>, Ready) {
        publisher_with(Duration::from_millis(1))
    }

    fn publisher_with(debounce: Duration) -> (Publisher, watch::Receiver<Arc<SourceState>>, Ready) {
        let ready = Ready::new();
        let (state, rx) = watch::channel(Arc::new(SourceState::default()));
        let publisher = Publisher::new(
            Scope::All,
            debounce,
            ready.guard("test"),
            watch::Sender::new(Statuses::new()),
            state,
            Vec::new(),
        );
        (publisher, rx, ready)
    }

    fn msg(slot: usize, change: Change) -> Msg {
        Msg { slot, change }
    }

    fn sync_all(p: &mut Publisher, first: BTreeMap<Key, RawObject>) {
        p.apply(msg(0, Change::Replace(first)));
        for slot in 1..WATCHED.len() {
            p.apply(msg(slot, Change::Replace(BTreeMap::new())));
        }
    }

    #[test]
    fn merge_applies_changes_in_key_order_per_slot() {
        let (mut p, _rx, _ready) = publisher();
        let slots = &mut p.slots[..3];
        slots[0].published = 2;
        slots[0].pending = Pending::Changes(BTreeMap::from([
            (key("a", "w"), Some(raw("a", "w", "new"))),
            (key("a", "x"), None),
            (key("c", "z"), Some(raw("c", "z", "new"))),
        ]));
        slots[1].published = 2;
        slots[1].pending = Pending::Changes(BTreeMap::from([(
            key("a", "2"),
            Some(raw("a", "2", "changed")),
        )]));
        slots[2].pending = Pending::Replace(BTreeMap::from([(key("n", "q"), raw("n", "q", "r"))]));
        let previous = vec![
            raw("a", "x", "old"),
            raw("b", "y", "old"),
            raw("a", "1", "old"),
            raw("a", "2", "old"),
        ];
        let merged = merge(slots, previous);
        assert_eq!(
            names(&merged),
            [
                "a/w=\"new\"",
                "b/y=\"old\"",
                "c/z=\"new\"",
                "a/1=\"old\"",
                "a/2=\"changed\"",
                "n/q=\"r\"",
            ]
        );
        assert_eq!(
            slots.iter().map(|s| s.published).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert!(slots.iter().all(|s| matches!(s.pending, Pending::Nothing)));
    }

    #[test]
    fn unchanged_objects_are_shared_with_a_consumer_that_holds_the_state() {
        let (mut p, rx, ready) = publisher();
        sync_all(
            &mut p,
            BTreeMap::from([
                (key("a", "1"), raw("a", "1", "x")),
                (key("a", "2"), raw("a", "2", "x")),
            ]),
        );
        p.publish();
        assert!(ready.is_ready());
        let first = address(&rx.borrow().objects[0]);

        // Nobody holds the state: the untouched object is moved into the next one.
        p.apply(msg(0, Change::Apply(key("a", "2"), raw("a", "2", "y"))));
        p.publish();
        let second = rx.borrow().clone();
        assert_eq!(second.generation, 2);
        assert_eq!(names(&second.objects), ["a/1=\"x\"", "a/2=\"y\""]);
        assert_eq!(address(&second.objects[0]), first);

        // A consumer holds generation 2: it keeps it intact, and the next state shares the
        // untouched object's value with it instead of copying it.
        p.apply(msg(0, Change::Delete(key("a", "2"))));
        p.publish();
        let third = rx.borrow().clone();
        assert_eq!(third.generation, 3);
        assert_eq!(names(&third.objects), ["a/1=\"x\""]);
        assert_eq!(names(&second.objects), ["a/1=\"x\"", "a/2=\"y\""]);
        assert_eq!(address(&third.objects[0]), first);
    }

    /// With a debounce window of a minute (virtual time: the runtime's clock only moves when
    /// every task waits on a timer), the initial sync and a lone change are published without
    /// the clock moving at all, while a burst is held until quiet for the window and then
    /// published once, whole.
    #[tokio::test(start_paused = true)]
    async fn a_lone_change_is_published_at_once_and_a_burst_once_quiet() {
        let debounce = Duration::from_secs(60);
        let (publisher, mut rx, ready) = publisher_with(debounce);
        let (tx, msgs) = mpsc::channel(1024);
        tokio::spawn(publisher.run(msgs));
        let send = |m: Msg| {
            let tx = tx.clone();
            async move { tx.send(m).await.expect("publisher alive") }
        };

        let t0 = Instant::now();
        for slot in 0..WATCHED.len() {
            send(msg(slot, Change::Replace(BTreeMap::new()))).await;
        }
        rx.changed().await.expect("published");
        assert_eq!(rx.borrow_and_update().generation, 1);
        assert!(ready.is_ready());
        assert_eq!(t0.elapsed(), Duration::ZERO, "the initial sync waited");

        // A lone change: published after the gather window only. (The timer wheel counts
        // whole milliseconds.)
        let gathered = GATHER + Duration::from_millis(1);
        let t1 = Instant::now();
        send(msg(
            0,
            Change::Apply(key("a", "lone"), raw("a", "lone", "x")),
        ))
        .await;
        rx.changed().await.expect("published");
        assert_eq!(rx.borrow_and_update().generation, 2);
        assert!(
            t1.elapsed() <= gathered,
            "the lone change waited {:?}",
            t1.elapsed()
        );

        // A burst: 100 changes a second apart, each within the window of the one before.
        for i in 0..100 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let name = format!("b{i:03}");
            send(msg(0, Change::Apply(key("a", &name), raw("a", &name, "x")))).await;
        }
        let last = Instant::now();
        rx.changed().await.expect("published");
        let state = rx.borrow_and_update().clone();
        assert_eq!(state.generation, 3, "one publication for the burst");
        assert_eq!(state.objects.len(), 101);
        let waited = last.elapsed();
        assert!(
            waited >= debounce && waited < debounce + Duration::from_millis(2),
            "published {waited:?} after the last change, not once quiet for the window"
        );

        // After a quiet window, a change is lone again.
        tokio::time::sleep(debounce).await;
        let t2 = Instant::now();
        send(msg(0, Change::Delete(key("a", "lone")))).await;
        rx.changed().await.expect("published");
        assert_eq!(rx.borrow_and_update().generation, 4);
        assert!(t2.elapsed() <= gathered, "the change after quiet waited");

        // Changes sent together with a lone one are gathered into its publication.
        tokio::time::sleep(debounce).await;
        for i in 0..50 {
            let name = format!("g{i:02}");
            send(msg(1, Change::Apply(key("a", &name), raw("a", &name, "x")))).await;
        }
        rx.changed().await.expect("published");
        let state = rx.borrow_and_update().clone();
        assert_eq!(
            state.generation, 5,
            "one publication for changes sent together"
        );
        assert_eq!(state.objects.len(), 150);
    }

    /// A steady stream is still published every `MAX_WINDOWS` windows, not held forever.
    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_is_published_every_ten_windows() {
        let debounce = Duration::from_millis(75);
        let (publisher, mut rx, _ready) = publisher_with(debounce);
        let (tx, msgs) = mpsc::channel(1024);
        tokio::spawn(publisher.run(msgs));
        for slot in 0..WATCHED.len() {
            tx.send(msg(slot, Change::Replace(BTreeMap::new())))
                .await
                .expect("publisher alive");
        }
        rx.changed().await.expect("published");
        rx.borrow_and_update();
        // 1,000 changes 1 ms apart: the first lone, the rest a burst of ~1 s, cut every 750 ms.
        let counter = tokio::spawn(async move {
            let mut generations = Vec::new();
            while rx.changed().await.is_ok() {
                let state = rx.borrow_and_update().clone();
                generations.push((state.generation, state.objects.len()));
                if state.objects.len() == 1000 {
                    break;
                }
            }
            generations
        });
        for i in 0..1000 {
            let name = format!("m{i:04}");
            tx.send(msg(0, Change::Apply(key("a", &name), raw("a", &name, "x"))))
                .await
                .expect("publisher alive");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let generations = counter.await.expect("counter");
        // The lone first change with what came within one window of it, the rest at the
        // ten-window cut and once quiet.
        assert_eq!(generations.len(), 3, "{generations:?}");
        assert_eq!(generations[0].0, 2);
        assert!(generations[0].1 <= 100, "{generations:?}");
        assert_eq!(generations[2], (4, 1000));
    }

    #[test]
    fn changes_that_restore_the_published_state_publish_nothing() {
        let (mut p, rx, _ready) = publisher();
        sync_all(
            &mut p,
            BTreeMap::from([(key("a", "1"), raw("a", "1", "x"))]),
        );
        p.publish();
        p.apply(msg(0, Change::Apply(key("a", "1"), raw("a", "1", "y"))));
        p.apply(msg(0, Change::Apply(key("a", "1"), raw("a", "1", "x"))));
        p.apply(msg(0, Change::Delete(key("a", "9"))));
        p.publish();
        assert_eq!(rx.borrow().generation, 1);
        // A relist with the same content is no change either; one with other content is.
        p.apply(msg(
            0,
            Change::Replace(BTreeMap::from([(key("a", "1"), raw("a", "1", "x"))])),
        ));
        p.publish();
        assert_eq!(rx.borrow().generation, 1);
        p.apply(msg(0, Change::Replace(BTreeMap::new())));
        p.publish();
        assert_eq!(rx.borrow().generation, 2);
        assert!(rx.borrow().objects.is_empty());
    }
}
