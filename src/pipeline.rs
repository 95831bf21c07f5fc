//! The one-way middle of legate: source states in, translated IR and versioned snapshots out.
//!
//! Each new `SourceState` is translated (on the blocking pool: 5,000 Mappings are real work),
//! the IR is checked and turned into a `Snapshot`, and both are published at once. A state that
//! cannot produce a valid snapshot is reported and skipped: the previous snapshot stays in
//! force, so Envoy keeps its last good config. Tests can feed an IR built in code instead of a
//! source.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::api::{Origin, ResourceError};
use crate::config::Config;
use crate::error::Chain;
use crate::ir::Ir;
use crate::memory;
use crate::metrics::Metrics;
use crate::readiness::Guard;
use crate::source::{SourceState, Subscription};
use crate::translate::{self, Leftovers, Options};
use crate::xds::server::Clients;
use crate::xds::{self, Snapshot, TypeKind};

/// The longest a publication's leftovers wait for Envoy to apply it before they are freed.
const FREE_WAIT: Duration = Duration::from_secs(3);

/// The translation options for these settings, with legate's probe listener at `probe`: the
/// one place they are built, so `legate translate` and `legate check` print what `legate run`
/// serves. `run` passes the bound probe address (port 0 resolved); the one-shot commands pass
/// the configured one. The built-in `check_ready`/`check_alive` routes target it (an
/// unspecified address means "this host": 127.0.0.1).
pub fn translate_options(config: &Config, probe: SocketAddr) -> Options {
    let probe_host = if probe.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        probe.ip().to_string()
    };
    Options {
        ambassador_id: config.source.ambassador_id.clone(),
        ambassador_namespace: config
            .source
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        probe_address: (probe_host, probe.port()),
        default_listeners: false,
        endpoint_routing: config.source.endpoint_routing,
    }
}

/// Where configuration comes from.
pub enum Input {
    /// A source (file or Kubernetes): translated on every change.
    Source(Subscription),
    /// An IR built in code (tests, embedding): published as is.
    Ir(watch::Receiver<Arc<Ir>>),
}

/// What is in force now, for the admin endpoints.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub generation: u64,
    /// What the published configuration was built from, and with which options. The IR itself
    /// is not kept once the snapshot is built: only `/ir` reads it, and at 5,000 services it is
    /// a tenth of legate's memory (BENCHMARKS.md, "legate's own memory"). [`Current::ir`] builds it again.
    built_from: Option<(Step, Options)>,
    /// Errors and warnings of the source and the translation of the published state.
    pub errors: Arc<Vec<ResourceError>>,
    /// When this state was published (for push-latency measurement).
    pub published_at: Option<Instant>,
}

impl Current {
    /// The IR in force: the published source state translated again (the translation is a
    /// function of the state and the options, so this is the IR the snapshot was built from),
    /// or the IR that was published as is. Empty before the first publication. Costs a full
    /// translation: for the admin endpoint, not for the data path.
    pub fn ir(&self) -> Ir {
        match &self.built_from {
            None => Ir::default(),
            Some((Step::Source(state), options)) => {
                translate::translate(&state.objects, options).ir
            }
            Some((Step::Ir(ir), _)) => ir.as_ref().clone(),
        }
    }
}

/// The outputs of a running pipeline.
#[derive(Clone)]
pub struct Outputs {
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    pub current: watch::Receiver<Arc<Current>>,
}

pub struct Pipeline {
    input: Input,
    options: Options,
    boot_id: String,
    metrics: Arc<Metrics>,
    /// "snapshot published": released on the first successful publication.
    first: Guard,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    current: watch::Sender<Arc<Current>>,
    /// With `source.translation_cache`, kept between source states: unchanged objects are not
    /// planned again (`translate::translate_with`). Used by one step at a time.
    cache: Option<Arc<std::sync::Mutex<translate::Cache>>>,
    /// With [`Pipeline::free_after_applied`]: what a publication replaced is freed once the
    /// connected Envoy has applied the new snapshot, at most `free_wait` later.
    clients: Option<Clients>,
    free_wait: Duration,
}

impl Pipeline {
    pub fn new(
        input: Input,
        options: Options,
        boot_id: String,
        metrics: Arc<Metrics>,
        first: Guard,
    ) -> (Pipeline, Outputs) {
        let (snapshots, snapshots_rx) = watch::channel(None);
        let (current, current_rx) = watch::channel(Arc::new(Current::default()));
        let p = Pipeline {
            input,
            options,
            boot_id,
            metrics,
            first,
            snapshots,
            current,
            cache: None,
            clients: None,
            free_wait: FREE_WAIT,
        };
        (
            p,
            Outputs {
                snapshots: snapshots_rx,
                current: current_rx,
            },
        )
    }

    /// Keeps a translation cache between source states (`source.translation_cache`).
    pub fn with_translation_cache(mut self, enabled: bool) -> Self {
        self.cache = enabled.then(Arc::default);
        self
    }

    /// Frees what each publication replaced only once Envoy (a client of `clients`) has
    /// applied the new snapshot: freeing hundreds of megabytes at scale competes with Envoy for
    /// the CPU while it applies the update (BENCHMARKS.md, "Freeing after Envoy applied").
    pub fn free_after_applied(mut self, clients: Clients) -> Self {
        self.clients = Some(clients);
        self
    }

    /// Runs until the input closes (its source stopped).
    pub async fn run(mut self) {
        let mut generation = 0u64;
        let mut freeing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let next = match &mut self.input {
                Input::Source(rx) => {
                    let state = rx.borrow_and_update().clone();
                    if state.is_synced() {
                        Some(Step::Source(state))
                    } else {
                        None
                    }
                }
                Input::Ir(rx) => Some(Step::Ir(rx.borrow_and_update().clone())),
            };
            let replaced = match next {
                Some(step) => {
                    generation += 1;
                    self.step(step, generation).await
                }
                None => None,
            };
            let changed = match replaced {
                None => self.input.changed().await,
                Some(replaced) => {
                    // Freed once Envoy has applied the new snapshot, or alongside the next
                    // translation when a new input comes first (docs/design.md#deferred-freeing).
                    let applied = applied(self.clients.clone(), self.free_wait, &replaced.versions);
                    let early = tokio::select! {
                        changed = self.input.changed() => Some(changed),
                        () = applied => None,
                    };
                    // One freeing at a time: at most two replaced states are held.
                    if let Some(previous) = freeing.take() {
                        finished(previous.await);
                    }
                    let free = tokio::task::spawn_blocking(move || {
                        drop(replaced.old);
                        memory::release();
                    });
                    match early {
                        Some(changed) => {
                            freeing = Some(free);
                            changed
                        }
                        None => {
                            finished(free.await);
                            self.input.changed().await
                        }
                    }
                }
            };
            if changed.is_err() {
                tracing::debug!("configuration input closed");
                return;
            }
        }
    }

    /// Translates and publishes one input; what the publication replaced, to be freed.
    async fn step(&self, step: Step, generation: u64) -> Option<Replaced> {
        let options = self.options.clone();
        let boot_id = self.boot_id.clone();
        let cache = self.cache.clone();
        // Resources whose version is unchanged are taken from the snapshot in force.
        let previous = self.snapshots.borrow().clone();
        let started = Instant::now();
        let input = step.clone();
        let built = tokio::task::spawn_blocking(move || {
            // A step that panicked left the cache in an unknown state: start it afresh.
            let mut cache = cache.as_ref().map(|c| {
                c.lock().unwrap_or_else(|poisoned| {
                    let mut guard = poisoned.into_inner();
                    *guard = translate::Cache::new();
                    guard
                })
            });
            let previous = previous.as_deref();
            // What the translation no longer needs is freed after publishing, below.
            let mut leftovers = Leftovers::new();
            let built = build(
                step,
                &options,
                generation,
                &boot_id,
                cache.as_deref_mut(),
                previous,
                &mut leftovers,
            );
            if built.is_err() {
                // Nothing is published: free it here, off the async threads.
                drop(std::mem::take(&mut leftovers));
            }
            (built, leftovers)
        })
        .await;
        let (built, leftovers) = match built {
            Ok((built, leftovers)) => (Ok(built), leftovers),
            Err(e) => (Err(e), Leftovers::new()),
        };
        let (errors, snapshot) = match built {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                // Never publish an inconsistent snapshot: the last good one stays in force.
                tracing::error!(error = %Chain(&e), generation, "configuration not published; keeping the last good one");
                let mut errors = self.current.borrow().errors.as_ref().clone();
                errors.push(global_error(format!(
                    "configuration not published: {}",
                    Chain(&e)
                )));
                self.current
                    .send_modify(|c| Arc::make_mut(c).errors = Arc::new(errors));
                return None;
            }
            // Cancelled: the runtime is shutting down (e.g. a failed start); nothing to report.
            Err(e) if e.is_cancelled() => return None,
            Err(e) => {
                tracing::error!(error = %Chain(&e), "translation task failed");
                return None;
            }
        };
        let failures = errors.iter().filter(|e| !e.warning).count();
        self.metrics.config_errors.set(failures as i64);
        let unchanged = self
            .snapshots
            .borrow()
            .as_ref()
            .is_some_and(|s| s.versions() == snapshot.versions());
        let versions = snapshot.versions();
        // The previous state is dropped after the new one is published, off the async
        // threads: freeing a large IR and snapshot takes a while (issue 10).
        let old_current = self.current.send_replace(Arc::new(Current {
            generation,
            built_from: Some((input, self.options.clone())),
            errors: Arc::new(errors),
            published_at: Some(Instant::now()),
        }));
        // Either the snapshot replaced, or (unchanged) the one just built.
        let old_snapshot;
        if unchanged {
            tracing::debug!(generation, "configuration unchanged");
            old_snapshot = Some(Arc::new(snapshot));
        } else {
            old_snapshot = self.snapshots.send_replace(Some(Arc::new(snapshot)));
            self.metrics.reconfigurations.inc();
            tracing::info!(
                generation,
                errors = failures,
                took_ms = started.elapsed().as_millis() as u64,
                versions = ?versions.values().collect::<Vec<_>>(),
                "configuration published"
            );
        }
        self.first.release();
        // The previous state and snapshot (unless an ADS stream still holds it) and what this
        // translation left are freed by `run` (docs/design.md#deferred-freeing).
        Some(Replaced {
            old: Box::new((old_current, old_snapshot, leftovers)),
            versions,
        })
    }
}

/// What a publication replaced, and the versions of the snapshot published.
struct Replaced {
    old: Box<dyn Send>,
    versions: BTreeMap<TypeKind, String>,
}

impl Input {
    /// Waits for the input to change; an error when it closed.
    async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        match self {
            Input::Source(rx) => rx.changed().await,
            Input::Ir(rx) => rx.changed().await,
        }
    }
}

/// Returns once a connected Envoy has applied (ACKed, or settled on) `versions`, at once when
/// none is connected or none is watched, and after `cap` at the latest.
async fn applied(clients: Option<Clients>, cap: Duration, versions: &BTreeMap<TypeKind, String>) {
    let Some(clients) = clients else {
        return;
    };
    let mut changes = clients.subscribe();
    let settled = async {
        while !clients.is_empty() && !clients.settled(versions) {
            if changes.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(cap, settled).await;
}

/// Reports a freeing task that did not run to completion (it panicked, or the runtime is
/// shutting down).
fn finished(freed: Result<(), tokio::task::JoinError>) {
    if let Err(e) = freed {
        tracing::debug!(error = %e, "memory release task did not run");
    }
}

#[derive(Debug, Clone)]
enum Step {
    Source(Arc<SourceState>),
    Ir(Arc<Ir>),
}

fn build(
    step: Step,
    options: &Options,
    generation: u64,
    boot_id: &str,
    cache: Option<&mut translate::Cache>,
    previous: Option<&Snapshot>,
    leftovers: &mut Leftovers,
) -> Result<(Vec<ResourceError>, Snapshot), xds::resources::Error> {
    let started = Instant::now();
    let (ir, errors) = match step {
        Step::Source(state) => {
            let t = translate::translate_deferring(&state.objects, options, cache, leftovers);
            let mut errors = state.errors.clone();
            errors.extend(t.errors);
            (t.ir, errors)
        }
        Step::Ir(ir) => (ir.as_ref().clone(), Vec::new()),
    };
    let translated = started.elapsed();
    let snapshot = xds::resources::snapshot_reusing(&ir, generation, boot_id, previous)?;
    tracing::debug!(
        generation,
        translate_ms = translated.as_millis() as u64,
        snapshot_ms = (started.elapsed() - translated).as_millis() as u64,
        "configuration built"
    );
    // The IR is freed after the snapshot is published (`Current::ir` rebuilds it when asked).
    leftovers.keep(ir);
    Ok((errors, snapshot))
}

fn global_error(message: String) -> ResourceError {
    ResourceError {
        origin: Origin::Builtin,
        kind: String::new(),
        name: String::new(),
        field: None,
        message,
        warning: false,
    }
}

/// A short random id distinguishing this process's versions from a previous incarnation's.
pub fn boot_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use std::sync::Weak;

    use super::*;
    use crate::ir::{Cluster, Discovery, Endpoint};
    use crate::readiness::Ready;
    use crate::xds::server::{Protocol, TypeState};

    /// An IR whose snapshot differs for every `n`.
    fn ir(n: u16) -> Arc<Ir> {
        let endpoint = Endpoint::new("127.0.0.1", 1000 + n);
        Arc::new(Ir {
            clusters: vec![Cluster::new(
                format!("c{n}"),
                Discovery::Static(vec![endpoint]),
            )],
            ..Ir::default()
        })
    }

    struct Running {
        tx: watch::Sender<Arc<Ir>>,
        outputs: Outputs,
        metrics: Arc<Metrics>,
        clients: Clients,
        /// The stream of the Envoy, when one is connected.
        envoy: Option<u64>,
    }

    /// A pipeline over IRs sent in code that frees after its Envoy applied, waiting at most
    /// `free_wait`, once it has published its first snapshot; with `envoy`, an Envoy is
    /// connected and has applied that snapshot.
    async fn start(envoy: bool, free_wait: Duration) -> Running {
        let clients = Clients::new();
        let envoy = envoy.then(|| clients.register(Protocol::Delta).0);
        let (tx, rx) = watch::channel(ir(0));
        let metrics = Arc::new(Metrics::default());
        let ready = Ready::new();
        let (p, outputs) = Pipeline::new(
            Input::Ir(rx),
            Options::default(),
            "test".into(),
            metrics.clone(),
            ready.guard("snapshot published"),
        );
        let mut p = p.free_after_applied(clients.clone());
        p.free_wait = free_wait;
        tokio::spawn(p.run());
        let r = Running {
            tx,
            outputs,
            metrics,
            clients,
            envoy,
        };
        until("first publication", || {
            r.metrics.reconfigurations.get() == 1
        })
        .await;
        r.envoy_applies();
        r
    }

    impl Running {
        /// The Envoy (if any) has applied the snapshot in force (CDS and LDS, as legate's
        /// bootstrap asks).
        fn envoy_applies(&self) {
            let Some(id) = self.envoy else {
                return;
            };
            let s = self.outputs.snapshots.borrow().clone();
            let versions = s.expect("a snapshot is in force").versions();
            let types = [TypeKind::Cluster, TypeKind::Listener]
                .into_iter()
                .map(|k| {
                    let state = TypeState {
                        wildcard: true,
                        acked_version: versions.get(&k).cloned(),
                        ..TypeState::default()
                    };
                    (k, state)
                })
                .collect();
            self.clients.update(id, types);
        }
    }

    /// Waits (up to 30 s) until `done`.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within 30 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Publishes IR `n` (the `n`-th publication) and returns a weak reference to the snapshot
    /// it replaced.
    async fn publish(r: &Running, n: u16) -> Weak<Snapshot> {
        let old = r
            .outputs
            .snapshots
            .borrow()
            .clone()
            .expect("a snapshot is in force");
        let weak = Arc::downgrade(&old);
        drop(old);
        r.tx.send_replace(ir(n));
        let n = u64::from(n) + 1;
        until("published", || r.metrics.reconfigurations.get() == n).await;
        weak
    }

    #[tokio::test]
    async fn the_replaced_snapshot_is_freed_once_envoy_applied_the_new_one() {
        let r = start(true, Duration::from_secs(3600)).await;
        let old = publish(&r, 1).await;
        // Envoy still has the previous snapshot: nothing is freed yet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(old.upgrade().is_some(), "freed before Envoy applied");
        r.envoy_applies();
        until("freed once applied", || old.upgrade().is_none()).await;
    }

    #[tokio::test]
    async fn a_new_change_or_the_wait_limit_frees_before_envoy_applied() {
        // Envoy never applies anything; the limit is an hour: the next change frees.
        let r = start(true, Duration::from_secs(3600)).await;
        let first = publish(&r, 1).await;
        let second = publish(&r, 2).await;
        until("freed by the next change", || first.upgrade().is_none()).await;
        assert!(second.upgrade().is_some(), "freed before Envoy applied");
        // A short limit frees without Envoy.
        let r = start(true, Duration::from_millis(50)).await;
        let old = publish(&r, 1).await;
        until("freed after the wait limit", || old.upgrade().is_none()).await;
    }

    #[tokio::test]
    async fn closing_the_input_frees_what_is_held_and_ends_the_pipeline() {
        let r = start(true, Duration::from_secs(3600)).await;
        let old = publish(&r, 1).await;
        let Running { tx, outputs, .. } = r;
        drop(tx);
        until("freed once the input closed", || old.upgrade().is_none()).await;
        // The pipeline ended: it dropped its senders.
        let mut snapshots = outputs.snapshots;
        snapshots.borrow_and_update();
        let ended = tokio::time::timeout(Duration::from_secs(30), snapshots.changed()).await;
        assert!(matches!(ended, Ok(Err(_))), "the pipeline is still running");
    }

    #[tokio::test]
    async fn without_a_connected_envoy_the_replaced_snapshot_is_freed_at_once() {
        let r = start(false, Duration::from_secs(3600)).await;
        let old = publish(&r, 1).await;
        until("freed", || old.upgrade().is_none()).await;
    }
}
