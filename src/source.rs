//! Sources of configuration: where the `getambassador.io` objects come from.
//!
//! Every source (a directory of YAML in [`file`], the Kubernetes API in [`kubernetes`]) publishes the whole
//! set of objects it currently sees as one immutable [`SourceState`] through a
//! `tokio::sync::watch` channel. Consumers (the translation) always see a complete, consistent
//! state, never a half-applied update, and skip intermediate states they were too slow to see.
//!
//! A source holds a named readiness [`Guard`] (`"source file synced"`) and releases it after its
//! first complete load, so `/ready` stays 503 until there is configuration to serve.

pub mod file;
pub mod kubernetes;

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use crate::api::{RawObject, ResourceError};
use crate::readiness::Guard;

pub use file::{FileSource, LoadOptions, SourceError, load_dir, parse_bytes};

/// Everything one source sees at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceState {
    /// 0 before the first complete load; +1 on every publication.
    pub generation: u64,
    /// Objects in a deterministic order (files by relative path, then documents in order).
    pub objects: Vec<RawObject>,
    /// Problems found while reading (unparsable documents, missing `kind`, unreadable files).
    /// The object concerned is left out of `objects`; everything else is unaffected.
    pub errors: Vec<ResourceError>,
}

impl SourceState {
    /// Whether the source has completed its first load.
    pub fn is_synced(&self) -> bool {
        self.generation > 0
    }
}

/// What a consumer holds: the latest state, replaced as a whole on every change.
pub type Subscription = watch::Receiver<Arc<SourceState>>;

/// The readiness guard name for a source, e.g. `source file synced`.
pub fn guard_name(source: &str) -> String {
    format!("source {source} synced")
}

/// The publishing side shared by every source: bumps the generation, publishes only real
/// changes, logs each new error once, and releases the readiness guard on the first load.
#[derive(Debug)]
pub struct Publisher {
    tx: watch::Sender<Arc<SourceState>>,
    guard: Guard,
    /// Errors of the last publication, so only new ones are logged.
    logged: BTreeSet<ResourceError>,
}

impl Publisher {
    /// A publisher with nothing published yet (generation 0) and its first subscription.
    pub fn new(guard: Guard) -> (Self, Subscription) {
        let (tx, rx) = watch::channel(Arc::new(SourceState::default()));
        let publisher = Publisher {
            tx,
            guard,
            logged: BTreeSet::new(),
        };
        (publisher, rx)
    }

    /// Publishes `objects` and `errors` as the next generation, unless they equal what is
    /// already published (the first load is always published). Returns whether it published.
    pub fn publish(&mut self, objects: Vec<RawObject>, errors: Vec<ResourceError>) -> bool {
        let current = self.tx.borrow().clone();
        if current.is_synced()
            && same_objects(&current.objects, &objects)
            && current.errors == errors
        {
            return false;
        }
        self.log_new_errors(&errors);
        let generation = current.generation + 1;
        tracing::info!(
            generation,
            objects = objects.len(),
            errors = errors.len(),
            "source state published"
        );
        self.tx.send_replace(Arc::new(SourceState {
            generation,
            objects,
            errors,
        }));
        self.guard.release();
        true
    }

    /// The state last published.
    pub fn current(&self) -> Arc<SourceState> {
        self.tx.borrow().clone()
    }

    /// Another subscription to the same state.
    pub fn subscribe(&self) -> Subscription {
        self.tx.subscribe()
    }

    /// Resolves once every subscription has been dropped: nobody is listening any more.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    fn log_new_errors(&mut self, errors: &[ResourceError]) {
        let now: BTreeSet<ResourceError> = errors.iter().cloned().collect();
        for error in now.difference(&self.logged) {
            tracing::warn!(origin = %error.origin, %error, "invalid configuration");
        }
        self.logged = now;
    }
}

/// Whether two states hold the same objects. Objects a source kept share their document with
/// the last state, so at 50,000 objects this is mostly pointer comparisons (issue 10).
fn same_objects(a: &[RawObject], b: &[RawObject]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.origin == b.origin && a.same_content(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Origin;
    use crate::readiness::Ready;

    fn object(name: &str) -> RawObject {
        RawObject::new(
            Origin::Builtin,
            serde_json::json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": name}}),
        )
    }

    #[test]
    fn publishes_only_changes_and_releases_the_guard_on_first_load() {
        let ready = Ready::new();
        let (mut publisher, rx) = Publisher::new(ready.guard(guard_name("test")));
        assert_eq!(ready.pending(), vec!["source test synced"]);
        assert!(!rx.borrow().is_synced());

        // The first load is published even when empty.
        assert!(publisher.publish(vec![], vec![]));
        assert!(ready.is_ready());
        assert_eq!(rx.borrow().generation, 1);

        assert!(!publisher.publish(vec![], vec![]));
        assert!(publisher.publish(vec![object("a")], vec![]));
        assert!(!publisher.publish(vec![object("a")], vec![]));
        let state = publisher.current();
        assert_eq!(state.generation, 2);
        assert_eq!(state.objects[0].name(), "a");
    }
}
