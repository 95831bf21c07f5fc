//! Named readiness conditions: `/ready` is 200 only when none is pending.
//!
//! Each component that must finish something before legate can take traffic holds a
//! [`Guard`] (ztunnel's `BlockReady` idea): a source until its first sync, the publisher until
//! the first snapshot, the Envoy supervisor while Envoy is down or has not ACKed the current
//! versions, the drain once it starts. A guard can be re-armed (Envoy restarts) and released any
//! number of times; dropping it releases it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The set of pending conditions, shared by every guard.
#[derive(Clone, Debug)]
pub struct Ready {
    pending: Arc<watch::Sender<BTreeSet<String>>>,
}

impl Default for Ready {
    fn default() -> Self {
        Self::new()
    }
}

impl Ready {
    pub fn new() -> Self {
        Ready {
            pending: Arc::new(watch::Sender::new(BTreeSet::new())),
        }
    }

    /// Registers a condition, initially pending.
    pub fn guard(&self, name: impl Into<String>) -> Guard {
        let name = name.into();
        self.set(&name, true);
        Guard {
            ready: self.clone(),
            name,
            held: Mutex::new(true),
        }
    }

    /// Names of the conditions still pending, sorted.
    pub fn pending(&self) -> Vec<String> {
        self.pending.borrow().iter().cloned().collect()
    }

    pub fn is_ready(&self) -> bool {
        self.pending.borrow().is_empty()
    }

    /// A receiver that changes whenever the pending set does.
    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<String>> {
        self.pending.subscribe()
    }

    fn set(&self, name: &str, pending: bool) {
        self.pending.send_if_modified(|set| {
            if pending {
                set.insert(name.to_string())
            } else {
                set.remove(name)
            }
        });
    }
}

/// One named condition. `release` marks it satisfied, `block` pending again.
#[derive(Debug)]
pub struct Guard {
    ready: Ready,
    name: String,
    held: Mutex<bool>,
}

impl Guard {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn release(&self) {
        self.update(false);
    }

    pub fn block(&self) {
        self.update(true);
    }

    /// Sets the condition from a boolean: `true` means satisfied.
    pub fn satisfied(&self, ok: bool) {
        self.update(!ok);
    }

    fn update(&self, pending: bool) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if *held != pending {
            *held = pending;
            self.ready.set(&self.name, pending);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_guard_is_released() {
        let ready = Ready::new();
        assert!(ready.is_ready());
        let a = ready.guard("source synced");
        let b = ready.guard("envoy live");
        assert_eq!(ready.pending(), vec!["envoy live", "source synced"]);
        a.release();
        assert!(!ready.is_ready());
        b.release();
        assert!(ready.is_ready());
        b.block();
        assert_eq!(ready.pending(), vec!["envoy live"]);
        drop(b);
        assert!(ready.is_ready());
    }
}
