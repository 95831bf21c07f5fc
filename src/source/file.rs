//! The file source: a directory of `getambassador.io` YAML/JSON, read once ([`load_dir`], for
//! `legate translate` and `legate check`) or watched ([`FileSource`], for `legate run`).
//!
//! The directory is read recursively: `*.yaml`, `*.yml`, `*.json` (any case), multi-document,
//! hidden entries skipped (see [`scan`]). Every document becomes a [`RawObject`] with origin
//! `file#doc` (`file` relative to the directory, `doc` 1-based; `doc` 0 means the file as a
//! whole), or a [`ResourceError`] saying why not. Errors never stop the source.
//!
//! Watching: a lone change (the first after a debounce window without any) is served at once:
//! after a short gather window ([`GATHER`], the several events one file write makes). Changes
//! that follow within the debounce window are a burst: they are coalesced until the directory
//! has been quiet for the window (at most ten windows under a steady stream). Then the
//! directory is re-walked and only changed files re-read. A whole new [`SourceState`] is
//! published only if objects or errors differ.
//!
//! Mid-write rule (issue 3: never publish a half-written file): a file that fails to parse and
//! either changed while it was read or was modified less than two debounce windows ago is
//! *unsettled* (so is an empty file, which may have just been truncated by its writer). The
//! source then waits one more window and reads it again, up to five times,
//! and publishes nothing meanwhile; if the file is still broken after that, its error is
//! published (and the rest of the directory with it).

mod depth;
mod expansion;
mod parse;
mod scan;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::time::Instant;
use tracing::Instrument;

use self::scan::Cache;
use self::watch::{DirWatch, Signal};
use super::{Publisher, SourceState, Subscription};
use crate::readiness::Guard;

#[cfg(doc)]
use crate::api::{RawObject, ResourceError};

/// How documents are completed before they leave the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Given to documents without `metadata.namespace`: `AMBASSADOR_NAMESPACE`, default
    /// `default`. (Emissary aborts the whole load instead.)
    pub default_namespace: String,
    /// Values for `$VAR` / `${VAR}` substitution in file text before parsing;
    /// `None` disables it. Unset variables stay literal.
    pub env: Option<BTreeMap<String, String>>,
}

impl Default for LoadOptions {
    /// Namespace `default`, no substitution.
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".into(),
            env: None,
        }
    }
}

impl LoadOptions {
    /// Emissary's file-mode behaviour: documents without a namespace get `namespace`
    /// (`AMBASSADOR_NAMESPACE`, default `default`), and `$VAR` substitution uses the process
    /// environment snapshot (variables that are not UTF-8 are left out).
    pub fn from_env(env: &crate::config::Env, namespace: Option<&str>) -> Self {
        LoadOptions {
            default_namespace: namespace.unwrap_or("default").to_string(),
            env: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }
}

/// Why the config directory cannot be used at all. Problems with individual files are
/// [`ResourceError`]s in the state instead.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("config directory {} does not exist", dir.display())]
    Missing { dir: PathBuf },
    #[error("config path {} is not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("config directory {} cannot be read", dir.display())]
    Unreadable {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Parses one file's bytes exactly as the file source does: `rel` (the path relative to the
/// config directory) names the origins and, by its extension, chooses JSON or YAML. For tools
/// and the fuzzer (`tests/fuzz.rs`).
pub fn parse_bytes(
    rel: &Path,
    bytes: &[u8],
    options: &LoadOptions,
) -> (Vec<crate::api::RawObject>, Vec<crate::api::ResourceError>) {
    let parsed = parse::parse_file(rel, bytes, options);
    (parsed.objects, parsed.errors)
}

/// Reads `dir` once. The state has generation 1. Files caught mid-write are not retried.
pub fn load_dir(dir: &Path, options: &LoadOptions) -> Result<SourceState, SourceError> {
    check_dir(dir)?;
    let mut cache = Cache::default();
    let outcome = cache.refresh(dir, &BTreeSet::new(), true, options, Duration::ZERO);
    if outcome.dir_identity.is_none() {
        // It vanished between the check and the walk.
        return Err(check_dir(dir).err().unwrap_or(SourceError::Missing {
            dir: dir.to_path_buf(),
        }));
    }
    let (objects, errors) = cache.into_parts();
    Ok(SourceState {
        generation: 1,
        objects,
        errors,
    })
}

fn check_dir(dir: &Path) -> Result<(), SourceError> {
    let unreadable = |source| SourceError::Unreadable {
        dir: dir.to_path_buf(),
        source,
    };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SourceError::Missing {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(unreadable(e)),
        Ok(meta) if !meta.is_dir() => Err(SourceError::NotADirectory {
            dir: dir.to_path_buf(),
        }),
        Ok(_) => std::fs::read_dir(dir).map(drop).map_err(unreadable),
    }
}

/// How long a lone change waits for the other events of the same write (create, modify,
/// close, rename) before the directory is read.
pub const GATHER: Duration = Duration::from_millis(5);

/// Timing of the watch loop.
#[derive(Debug, Clone)]
struct Timing {
    /// Quiet period that ends a burst of changes; a change after this long without one is
    /// lone and served after `gather` only.
    debounce: Duration,
    gather: Duration,
    /// A burst is cut off after this long even if changes keep coming.
    max_delay: Duration,
    /// A broken file modified more recently than this may still be being written.
    settle: Duration,
    /// How many times an unsettled file is read again before its error is published.
    retries: u32,
    /// Full rescan interval while the watch works (belt and braces) ...
    resync: Duration,
    /// ... and while it does not (directory missing, watch failed).
    poll: Duration,
}

impl Timing {
    fn new(debounce: Duration) -> Timing {
        Timing {
            debounce,
            gather: GATHER.min(debounce),
            max_delay: (debounce * 10).max(Duration::from_millis(500)),
            settle: debounce * 2,
            retries: 5,
            resync: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        }
    }
}

/// Watches a config directory and publishes its objects on every change.
#[derive(Debug)]
pub struct FileSource {
    dir: PathBuf,
    options: LoadOptions,
    timing: Timing,
    guard: Guard,
    #[cfg(test)]
    progress: tokio::sync::watch::Sender<Progress>,
}

/// Test-only view of the watch loop, so that tests wait for what the loop did instead of
/// sleeping: every scan, the files it was told to re-read and the files it found unsettled.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
struct Progress {
    scans: u64,
    /// Every file named by a change event of some scan, in order.
    forced: Vec<PathBuf>,
    /// Every file some scan found unsettled, in order.
    unsettled: Vec<PathBuf>,
}

impl FileSource {
    /// `debounce` is the `source.debounce_ms` setting; `guard` is released after the first
    /// complete load (name it with `source::guard_name("file")`).
    pub fn new(dir: impl Into<PathBuf>, debounce: Duration, guard: Guard) -> Self {
        FileSource {
            dir: dir.into(),
            options: LoadOptions::default(),
            timing: Timing::new(debounce),
            guard,
            #[cfg(test)]
            progress: tokio::sync::watch::Sender::default(),
        }
    }

    pub fn with_options(mut self, options: LoadOptions) -> Self {
        self.options = options;
        self
    }

    /// Checks the directory, starts watching it on a new task (the current Tokio runtime) and
    /// returns the subscription. The task ends when every subscription is dropped.
    pub fn spawn(self) -> Result<Subscription, SourceError> {
        check_dir(&self.dir)?;
        let dir = std::path::absolute(&self.dir).map_err(|source| SourceError::Unreadable {
            dir: self.dir.clone(),
            source,
        })?;
        let (publisher, rx) = Publisher::new(self.guard);
        let (tx, events) = mpsc::unbounded_channel();
        let span = tracing::info_span!("source", kind = "file", dir = %dir.display());
        let runner = Runner {
            watch: DirWatch::new(dir.clone(), tx),
            dir,
            options: self.options,
            timing: self.timing,
            cache: Cache::default(),
            publisher,
            events,
            #[cfg(test)]
            progress: self.progress,
            last_event: None,
        };
        tokio::spawn(runner.run().instrument(span));
        Ok(rx)
    }
}

/// Changes announced since the last scan.
#[derive(Debug, Default)]
struct Pending {
    forced: BTreeSet<PathBuf>,
    reread_all: bool,
}

impl Pending {
    fn add(&mut self, signal: Signal) {
        match signal {
            Signal::Changed(rel) => {
                self.forced.insert(rel);
            }
            Signal::Rescan => {}
            Signal::Reread => self.reread_all = true,
        }
    }
}

struct Runner {
    dir: PathBuf,
    options: LoadOptions,
    timing: Timing,
    cache: Cache,
    publisher: Publisher,
    events: UnboundedReceiver<Signal>,
    watch: DirWatch,
    #[cfg(test)]
    progress: tokio::sync::watch::Sender<Progress>,
    /// When the last change event arrived.
    last_event: Option<Instant>,
}

impl Runner {
    async fn run(mut self) {
        let mut pending = Pending {
            forced: BTreeSet::new(),
            reread_all: true,
        };
        loop {
            let changed = self.load(pending).await;
            if changed || !self.publisher.current().is_synced() {
                self.publisher
                    .publish(self.cache.objects(), self.cache.errors());
            }
            pending = match self.next_change().await {
                Some(pending) => pending,
                None => break,
            };
        }
        tracing::debug!("file source stopped: no subscribers");
    }

    /// Scans until no file is unsettled (or retries run out). Returns whether anything changed.
    async fn load(&mut self, mut pending: Pending) -> bool {
        let mut changed = false;
        let mut attempt = 0;
        loop {
            let outcome = self.scan(&pending).await;
            #[cfg(test)]
            self.progress.send_modify(|p| {
                p.scans += 1;
                p.forced.extend(pending.forced.iter().cloned());
                p.unsettled.extend(outcome.unsettled.iter().cloned());
            });
            changed |= outcome.changed;
            self.watch.ensure(outcome.dir_identity);
            if outcome.unsettled.is_empty() || attempt >= self.timing.retries {
                return changed;
            }
            attempt += 1;
            tracing::debug!(files = ?outcome.unsettled, attempt, "file may be mid-write; reading it again");
            pending = Pending {
                forced: outcome.unsettled.into_iter().collect(),
                reread_all: false,
            };
            let deadline = Instant::now() + self.timing.debounce;
            while let Ok(Some(signal)) = tokio::time::timeout_at(deadline, self.events.recv()).await
            {
                pending.add(signal);
            }
        }
    }

    /// One refresh of the cache, off the async threads.
    async fn scan(&mut self, pending: &Pending) -> scan::Outcome {
        let mut cache = std::mem::take(&mut self.cache);
        let (dir, options) = (self.dir.clone(), self.options.clone());
        let (forced, reread_all, settle) = (
            pending.forced.clone(),
            pending.reread_all,
            self.timing.settle,
        );
        let task = tokio::task::spawn_blocking(move || {
            let outcome = cache.refresh(&dir, &forced, reread_all, &options, settle);
            (cache, outcome)
        });
        match task.await {
            Ok((cache, outcome)) => {
                self.cache = cache;
                outcome
            }
            Err(error) => {
                // The cache is lost with the task: the next scan reads everything again. Until
                // then the published state stays as it was.
                tracing::error!(error = %crate::error::Chain(&error), "config directory scan failed");
                scan::Outcome::default()
            }
        }
    }

    /// Waits for a change and the end of its burst. `None` when nobody listens any more.
    async fn next_change(&mut self) -> Option<Pending> {
        let mut pending = Pending::default();
        let idle = match self.watch.healthy() {
            true => self.timing.resync,
            false => self.timing.poll,
        };
        // Changes that queued up while the last scan ran continue a burst. (`Rescan` is also
        // what a new watch sends about itself: not a change by itself.)
        let (mut queued, mut rescan) = (false, false);
        while let Ok(signal) = self.events.try_recv() {
            let is_rescan = matches!(signal, Signal::Rescan);
            queued |= !is_rescan;
            rescan |= is_rescan;
            pending.add(signal);
        }
        if rescan && !queued {
            // Only a rescan was asked for (a new watch catching what changed before it was
            // set up): do it now, without waiting for another event.
            return Some(pending);
        }
        if !queued {
            tokio::select! {
                _ = self.publisher.closed() => return None,
                _ = tokio::time::sleep(idle) => return Some(pending),
                signal = self.events.recv() => pending.add(signal?),
            }
        }
        let now = Instant::now();
        // The first change ever is lone even when it queued up during the start-up scans;
        // later, changes that queued up during a scan continue a burst.
        let lone = match self.last_event {
            None => true,
            Some(t) => !queued && now.duration_since(t) >= self.timing.debounce,
        };
        self.last_event = Some(now);
        // A lone change: gather the rest of its write, then serve it. A burst: wait for quiet.
        let (window, cutoff) = match lone {
            true => (self.timing.gather, now + self.timing.debounce),
            false => (self.timing.debounce, now + self.timing.max_delay),
        };
        loop {
            let quiet = (Instant::now() + window).min(cutoff);
            match tokio::time::timeout_at(quiet, self.events.recv()).await {
                Ok(Some(signal)) => {
                    self.last_event = Some(Instant::now());
                    pending.add(signal);
                }
                Ok(None) | Err(_) => return Some(pending),
            }
        }
    }
}
