//! The `notify` watch on the config directory, turned into [`Signal`]s for the source loop.
//!
//! Events only say *where to look*: the loop always re-walks the directory and compares stamps,
//! so a lost or coalesced event costs nothing but latency. Events naming a visible config file
//! force that file to be re-read even if its stamp looks unchanged (two writes within one
//! timestamp tick); anything else (a new directory, a ConfigMap's `..data` swap, the directory
//! itself being replaced) asks for a rescan. The directory's parent is watched too (not
//! recursively) so that replacing the directory, or a symlink to it, is noticed at once.

use std::path::{Component, Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// What the watch tells the source loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Signal {
    /// This visible config file (relative path) changed.
    Changed(PathBuf),
    /// Something changed; walk the directory again.
    Rescan,
    /// Events were lost (queue overflow, watch error): re-read every file.
    Reread,
}

/// The live watch, re-created when the directory is replaced.
pub(super) struct DirWatch {
    dir: PathBuf,
    tx: UnboundedSender<Signal>,
    watcher: Option<RecommendedWatcher>,
    /// (device, inode) of the directory the watcher was set up on.
    identity: Option<(u64, u64)>,
}

impl DirWatch {
    /// `dir` must be absolute (events carry absolute paths).
    pub fn new(dir: PathBuf, tx: UnboundedSender<Signal>) -> Self {
        DirWatch {
            dir,
            tx,
            watcher: None,
            identity: None,
        }
    }

    /// Whether events can be relied on; otherwise the loop polls.
    pub fn healthy(&self) -> bool {
        self.watcher.is_some() && self.identity.is_some()
    }

    /// Sets the watch up again when the directory's identity (as found by the last walk)
    /// differs from the one watched. `None` (the directory is missing) keeps the old watcher,
    /// whose parent watch announces the directory's return.
    pub fn ensure(&mut self, identity: Option<(u64, u64)>) {
        if identity.is_none() {
            self.identity = None;
            return;
        }
        if self.watcher.is_some() && self.identity == identity {
            return;
        }
        self.watcher = None;
        match self.create() {
            Ok(watcher) => {
                tracing::debug!(dir = %self.dir.display(), "watching config directory");
                self.watcher = Some(watcher);
                self.identity = identity;
                // Changes made between the walk and the watch starting would be missed.
                let _ = self.tx.send(Signal::Rescan);
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::Chain(&error), dir = %self.dir.display(), "cannot watch config directory; polling");
                self.identity = None;
            }
        }
    }

    fn create(&self) -> notify::Result<RecommendedWatcher> {
        let (dir, tx) = (self.dir.clone(), self.tx.clone());
        let mut watcher = notify::recommended_watcher(move |event| handle(&dir, &tx, event))?;
        watcher.watch(&self.dir, RecursiveMode::Recursive)?;
        if let Some(parent) = self.dir.parent()
            && let Err(error) = watcher.watch(parent, RecursiveMode::NonRecursive)
        {
            tracing::debug!(error = %crate::error::Chain(&error), "cannot watch the config directory's parent");
        }
        Ok(watcher)
    }
}

fn handle(dir: &Path, tx: &UnboundedSender<Signal>, event: notify::Result<notify::Event>) {
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(error = %crate::error::Chain(&error), "config directory watch error; re-reading everything");
            let _ = tx.send(Signal::Reread);
            return;
        }
    };
    if event.need_rescan() {
        let _ = tx.send(Signal::Reread);
        return;
    }
    // Our own reads open and close files: only a close after writing is a change.
    if let EventKind::Access(kind) = event.kind
        && kind != AccessKind::Close(AccessMode::Write)
    {
        return;
    }
    for path in &event.paths {
        if let Some(signal) = classify(dir, path) {
            let _ = tx.send(signal);
        }
    }
}

/// What an event on `path` means for the directory `dir`; `None` for the parent's other
/// entries.
fn classify(dir: &Path, path: &Path) -> Option<Signal> {
    let Ok(rel) = path.strip_prefix(dir) else {
        return None;
    };
    let hidden = rel.components().any(|c| match c {
        Component::Normal(name) => name.as_encoded_bytes().starts_with(b"."),
        _ => true,
    });
    if rel.as_os_str().is_empty() || hidden || !super::scan::is_config(rel) {
        return Some(Signal::Rescan);
    }
    Some(Signal::Changed(rel.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_event_paths() {
        let dir = Path::new("/etc/legate");
        let changed = |p: &str| Some(Signal::Changed(PathBuf::from(p)));
        assert_eq!(
            classify(dir, Path::new("/etc/legate/a/b.YAML")),
            changed("a/b.YAML")
        );
        assert_eq!(
            classify(dir, Path::new("/etc/legate")),
            Some(Signal::Rescan)
        );
        let swap = Path::new("/etc/legate/..2024_01_01/b.yaml");
        assert_eq!(classify(dir, swap), Some(Signal::Rescan));
        assert_eq!(
            classify(dir, Path::new("/etc/legate/sub")),
            Some(Signal::Rescan)
        );
        assert_eq!(classify(dir, Path::new("/etc/other")), None);
        assert_eq!(classify(dir, Path::new("/etc/legate-old")), None);
    }
}
