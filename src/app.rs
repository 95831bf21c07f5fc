//! The one wiring function: settings in, exit code out.
//!
//! `App::start` builds every component in dependency order and returns once all listeners are
//! bound (tests bind port 0 and read [`Bound`]); `App::wait` runs until a drain or a fatal error
//! and returns the exit code (see [`crate::exit`]). Shutdown flows one way: signal → not ready
//! → Envoy drains → Envoy stopped and reaped → ADS server and sources stop → exit code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, info_span};

use crate::config::{Config, Env};
use crate::drain::{Phase, Trigger};
use crate::envoy::supervisor::{self, Supervisor, SupervisorError};
use crate::error::Chain;
use crate::metrics::Metrics;
use crate::pipeline::{self, Input, Pipeline};
use crate::readiness::{Guard, Ready};
use crate::source::{self, FileSource, LoadOptions, kubernetes};
use crate::xds::Snapshot;
use crate::xds::server::{Clients, Server};
use crate::{admin, envoy, exit, probe, reaper, runtime_dir, signal};

/// What `main` set up before the settings were loaded: the signal thread feeds `trigger`, and
/// hands SIGUSR1 to the forwarder in `envoy_pid`, which the app points at the Envoy supervisor
/// (Envoy's owner) while it runs.
#[derive(Debug, Clone)]
pub struct Signals {
    pub trigger: Trigger,
    pub envoy_pid: signal::EnvoyPid,
}

/// Test and embedding hooks; the binary uses the defaults.
#[derive(Default)]
pub struct Overrides {
    /// Feed this instead of the configured source (e.g. an IR built in code).
    pub input: Option<Input>,
    /// Do not reap orphans. In-process tests share their process with other children whose
    /// statuses the reaper would take; the binary always reaps.
    pub no_reaper: bool,
}

/// Addresses as bound (port 0 resolved).
#[derive(Debug, Clone)]
pub struct Bound {
    pub probe: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    pub xds: crate::address::Address,
    pub runtime_dir: PathBuf,
}

/// A failure to start, with the exit code it maps to. `message` is what failed and its whole
/// cause chain (see [`crate::error`]).
#[derive(Debug)]
pub struct StartError {
    pub code: u8,
    pub message: String,
}

fn fail(
    code: u8,
    what: &str,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StartError {
    let error: Box<dyn std::error::Error + Send + Sync> = error.into();
    StartError {
        code,
        message: format!("{what}: {}", Chain(&*error)),
    }
}

/// Logs a fatal error with its cause chain and repeats it on stderr as the exit message (the
/// log may go to a collector; the exit message is what `kubectl logs --previous` shows last).
fn fatal(message: &str, error: &(dyn std::error::Error + 'static)) {
    tracing::error!(error = %Chain(error), "{message}");
    eprintln!("legate: {message}: {}", Chain(error));
}

/// Runs legate until it drains or fails; returns the process exit code.
pub async fn run(config: Config, env: Env, signals: Signals) -> u8 {
    match App::start(config, &env, signals, Overrides::default()).await {
        Ok(app) => app.wait().await,
        Err(e) => {
            tracing::error!(code = e.code, error = %e.message, "cannot start");
            eprintln!("legate: {}", e.message);
            e.code
        }
    }
}

pub struct App {
    config: Config,
    bound: Bound,
    ready: Ready,
    metrics: Arc<Metrics>,
    trigger: Trigger,
    envoy: supervisor::Handle,
    /// `None` once its result has been taken.
    supervisor: Option<JoinHandle<Result<Option<envoy::process::ExitInfo>, SupervisorError>>>,
    not_draining: Guard,
    xds_stop: Option<oneshot::Sender<()>>,
    xds_task: JoinHandle<()>,
    /// Tasks whose unexpected end is fatal: (name, task).
    critical: Vec<(&'static str, JoinHandle<()>)>,
    /// Tasks stopped at the very end.
    background: Vec<JoinHandle<()>>,
    clients: Clients,
    _reaper: Option<reaper::Reaper>,
    remove_runtime_dir: bool,
    /// Where the signal thread hands signals for Envoy; cleared once Envoy is stopped.
    envoy_forward: signal::EnvoyPid,
}

impl App {
    pub async fn start(
        config: Config,
        env: &Env,
        signals: Signals,
        overrides: Overrides,
    ) -> Result<App, StartError> {
        // 1. PID-1 duties first: reap orphans (and be a subreaper when not PID 1).
        let reaper = if overrides.no_reaper {
            None
        } else {
            Some(reaper::Reaper::spawn().map_err(|e| fail(exit::FATAL, "reaper", e))?)
        };

        // 2. the runtime directory for the bootstrap and the unix sockets
        let dir = runtime_dir::prepare(config.runtime_dir.as_deref(), &std::env::temp_dir())
            .map_err(|e| fail(exit::FATAL, "runtime dir", e))?;
        // A directory legate made up is removed again if the start fails below.
        let cleanup = RemoveOnDrop(dir.remove_on_exit.then(|| dir.path.clone()));
        let (runtime_dir, remove_runtime_dir) = (dir.path, dir.remove_on_exit);

        let ready = Ready::new();
        let metrics = Arc::new(Metrics::default());
        let not_draining = ready.guard("not draining");
        not_draining.release();

        // 3. liveness heartbeat and the probe listener, early so Kubernetes sees us start
        let heartbeat = probe::Heartbeat::default();
        let beat = heartbeat.spawn();
        let probe = probe::Server::bind(config.probe.address, ready.clone(), heartbeat)
            .await
            .map_err(|e| fail(exit::FATAL, "probe listener", e))?;
        let probe_addr = probe.local_addr();

        // 4. the configuration input: an override, Kubernetes, or the config directory
        let input = match overrides.input {
            Some(input) => input,
            None => open_source(&config, env, &ready).await?,
        };

        // 5. the pipeline: source states → IR → snapshots
        let options = pipeline::translate_options(&config, probe_addr);
        let (pipeline, outputs) = Pipeline::new(
            input,
            options,
            pipeline::boot_id(),
            metrics.clone(),
            ready.guard("snapshot published"),
        );
        // 6. the ADS server; the pipeline frees what a change replaced once the connected
        // Envoy has applied the change (docs/design.md#deferred-freeing)
        let server = Server::new(&config.xds, outputs.snapshots.clone(), metrics.clone());
        let pipeline = pipeline
            .with_translation_cache(config.source.translation_cache)
            .free_after_applied(server.clients());
        let pipeline_task = tokio::spawn(pipeline.run().instrument(info_span!("pipeline")));
        let xds = server
            .bind(&runtime_dir.join("xds.sock"))
            .await
            .map_err(|e| fail(exit::FATAL, "xds server", e))?;
        let xds_address = xds.address().clone();
        let clients = xds.clients();
        let (xds_stop, xds_stopped) = oneshot::channel::<()>();
        let xds_task = tokio::spawn(
            async move {
                if let Err(error) = xds
                    .serve(async {
                        let _ = xds_stopped.await;
                    })
                    .await
                {
                    tracing::error!(error = %Chain(&error), "xds server failed");
                }
            }
            .instrument(info_span!("xds")),
        );

        // 7. "envoy acked config" readiness, the push-latency metric, and whether a push is
        // outstanding (the supervisor never kills an Envoy busy applying one)
        let (push_outstanding, outstanding_rx) = watch::channel(false);
        let acked_task = tokio::spawn(
            track_acks(
                outputs.clone(),
                clients.clone(),
                metrics.clone(),
                ready.guard("envoy acked config"),
                push_outstanding,
            )
            .instrument(info_span!("acks")),
        );

        // 8. Envoy
        // $LEGATE_ENVOY_BIN is folded into envoy.binary by config::load
        let binary = envoy::locate(config.envoy.binary.as_deref(), None)
            .map_err(|e| fail(exit::ENVOY_NOT_FOUND, "envoy", e))?;
        let paths = supervisor::Paths {
            binary,
            runtime_dir: runtime_dir.clone(),
            xds: xds_address.clone(),
        };
        let (sup, handle) = Supervisor::new(
            &config.envoy,
            &config.drain,
            paths,
            metrics.clone(),
            ready.guard("envoy live"),
        )
        .map_err(|e| fail(exit::INVALID_SETTINGS, "envoy", e))?;
        let sup = sup.push_outstanding(outstanding_rx);

        // 9. the admin listener (loopback unless configured)
        let views = admin_views(&config, &outputs, &clients, &handle);
        let admin = admin::Server::bind(
            &config.admin,
            views,
            metrics.clone(),
            signals.trigger.clone(),
        )
        .await
        .map_err(|e| fail(exit::FATAL, "admin listener", e))?;
        // Envoy starts last, once nothing can fail any more: a failed start leaves no Envoy.
        let supervisor = tokio::spawn(sup.run().instrument(info_span!("envoy")));
        let owner = handle.clone();
        signals.envoy_pid.set(move |sig| owner.forward(sig).is_ok());
        let bound = Bound {
            probe: probe_addr,
            admin: admin.local_addr(),
            xds: xds_address,
            runtime_dir,
        };
        std::mem::forget(cleanup);
        tracing::info!(
            probe = %bound.probe,
            admin = %bound.admin,
            xds = %bound.xds,
            runtime_dir = %bound.runtime_dir.display(),
            "legate started"
        );
        Ok(App {
            config,
            bound,
            ready,
            metrics,
            trigger: signals.trigger,
            envoy_forward: signals.envoy_pid,
            envoy: handle,
            supervisor: Some(supervisor),
            not_draining,
            xds_stop: Some(xds_stop),
            xds_task,
            // The sources end only when the pipeline drops their subscription, and the pipeline
            // ends only when its source does: one watch covers both.
            critical: vec![
                ("pipeline (source and translator)", pipeline_task),
                ("ack tracker", acked_task),
                ("probe server", probe.spawn()),
                ("heartbeat", beat),
            ],
            background: vec![admin.spawn()],
            clients,
            _reaper: reaper,
            remove_runtime_dir,
        })
    }

    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn envoy(&self) -> &supervisor::Handle {
        &self.envoy
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }

    /// Test hook: stops the ADS server now, as if it had ended on its own; [`App::wait`] must
    /// then fail (exit 1) rather than leave legate unready forever.
    #[doc(hidden)]
    pub fn end_ads_server(&mut self) {
        self.envoy_forward.clear();
        if let Some(stop) = self.xds_stop.take() {
            let _ = stop.send(());
        }
    }

    /// Runs until a drain completes or something fatal happens; returns the exit code.
    pub async fn wait(mut self) -> u8 {
        let mut drain = self.trigger.watch();
        let Some(mut supervisor) = self.supervisor.take() else {
            return exit::FATAL;
        };
        let critical = futures_any(&mut self.critical);
        let xds = &mut self.xds_task;
        let reaper = reaper_end(self._reaper.as_mut());
        let code = tokio::select! {
            _ = drain.started() => {
                self.supervisor = Some(supervisor);
                self.drain(drain).await
            }
            result = &mut supervisor => {
                match result {
                    Ok(Err(SupervisorError::BudgetExhausted { deaths, window, last_exit })) => {
                        tracing::error!(deaths, ?window, %last_exit, "envoy restart budget spent; exiting");
                        exit::RESTART_BUDGET
                    }
                    Ok(Err(error)) => {
                        fatal("envoy supervisor failed", &error);
                        exit::FATAL
                    }
                    Ok(Ok(_)) | Err(_) => {
                        tracing::error!("envoy supervisor ended unexpectedly");
                        exit::FATAL
                    }
                }
            }
            (name, result) = critical => {
                task_ended(name, result);
                self.stop_envoy_now().await;
                exit::FATAL
            }
            result = xds => {
                task_ended("ads server", result);
                self.stop_envoy_now().await;
                exit::FATAL
            }
            result = reaper => {
                task_ended("reaper", result);
                self.stop_envoy_now().await;
                exit::FATAL
            }
        };
        self.finish().await;
        tracing::info!(code, "exiting");
        code
    }

    /// Steps 1–5 of the drain; returns the exit code.
    async fn drain(&mut self, mut watch: crate::drain::Watch) -> u8 {
        let started = Instant::now();
        let d = self.config.drain.clone();
        let deadline =
            tokio::time::Instant::from_std(started) + Duration::from_millis(d.deadline_ms);
        tracing::info!(
            reason = watch.reason(),
            delay_ms = d.delay_ms,
            deadline_ms = d.deadline_ms,
            "drain started"
        );
        // 1. optionally stay ready while load balancers deregister
        if watch.phase() == Phase::Draining && d.delay_ms > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(d.delay_ms)) => {}
                _ = watch.reached(Phase::Fast) => {}
            }
        }
        // 2. readiness goes false
        self.not_draining.block();
        if watch.phase() == Phase::Fast {
            return self.stop_fast().await;
        }
        // 3–5. Envoy drains its listeners, connections are polled, Envoy is stopped and reaped
        let envoy = self.envoy.clone();
        // The supervisor bounds every step; this outer bound only guards against it wedging.
        let bound = deadline + Duration::from_millis(d.stop_timeout_ms) + Duration::from_secs(5);
        let outcome = tokio::select! {
            outcome = envoy.drain(&d, deadline) => outcome,
            _ = watch.reached(Phase::Fast) => return self.stop_fast().await,
            _ = tokio::time::sleep_until(bound) => {
                tracing::error!("drain did not finish by its deadline; stopping envoy");
                return self.stop_fast().await;
            }
        };
        match outcome {
            Ok(o) if o.completed && !o.envoy_died => {
                tracing::info!(took_ms = started.elapsed().as_millis() as u64, "drained");
                exit::CLEAN
            }
            Ok(o) => {
                tracing::warn!(
                    active_connections = ?o.active_connections,
                    envoy_died = o.envoy_died,
                    "drain did not complete cleanly"
                );
                exit::FORCED
            }
            Err(error) => {
                tracing::error!(error = %Chain(&error), "drain failed");
                self.stop_envoy_now().await;
                exit::FORCED
            }
        }
    }

    /// Stops Envoy at once through the supervisor, bounded: if the supervisor does not confirm
    /// in time, Envoy's process group is killed directly so no Envoy outlives legate.
    async fn stop_envoy_now(&self) {
        let pid = self.envoy.pid();
        let bound =
            Duration::from_millis(self.config.drain.stop_timeout_ms) + Duration::from_secs(3);
        if tokio::time::timeout(bound, self.envoy.stop_now())
            .await
            .is_err()
        {
            tracing::error!(
                ?pid,
                "envoy supervisor did not stop envoy in time; killing it"
            );
            if let Some(pid) = pid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    async fn stop_fast(&mut self) -> u8 {
        tracing::warn!("fast exit requested; stopping envoy now");
        self.stop_envoy_now().await;
        exit::FORCED
    }

    /// 6. Envoy is stopped: now stop the ADS server, the sources and everything else.
    async fn finish(&mut self) {
        if let Some(mut supervisor) = self.supervisor.take() {
            if !supervisor.is_finished() {
                self.stop_envoy_now().await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut supervisor).await;
        }
        if let Some(stop) = self.xds_stop.take() {
            let _ = stop.send(());
        }
        if !self.xds_task.is_finished() {
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.xds_task).await;
        }
        for (_, task) in &self.critical {
            task.abort();
        }
        for task in &self.background {
            task.abort();
        }
        if self.remove_runtime_dir {
            let _ = std::fs::remove_dir_all(&self.bound.runtime_dir);
        }
    }
}

/// Resolves with the name and result of the first critical task that ends.
async fn futures_any(
    tasks: &mut [(&'static str, JoinHandle<()>)],
) -> (&'static str, Result<(), tokio::task::JoinError>) {
    std::future::poll_fn(|cx| {
        for (name, task) in tasks.iter_mut() {
            if let std::task::Poll::Ready(result) = std::pin::Pin::new(task).poll(cx) {
                return std::task::Poll::Ready((*name, result));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Resolves when the reaper task ends (never when there is no reaper).
async fn reaper_end(reaper: Option<&mut reaper::Reaper>) -> Result<(), tokio::task::JoinError> {
    match reaper {
        Some(reaper) => reaper.ended().await,
        None => std::future::pending().await,
    }
}

/// A critical task ended while legate was not stopping: fail loudly, with the cause (a panic
/// or the task returning), in the log and on stderr.
fn task_ended(name: &str, result: Result<(), tokio::task::JoinError>) {
    let message = format!("critical task {name} ended unexpectedly; stopping");
    match result {
        Err(error) => fatal(&message, &error),
        Ok(()) => {
            tracing::error!(task = name, "{message}");
            eprintln!("legate: {message}");
        }
    }
}

use std::future::Future;

async fn open_source(config: &Config, env: &Env, ready: &Ready) -> Result<Input, StartError> {
    let s = &config.source;
    let kube_env = kubernetes::Environment::from_env(env);
    let client = kubernetes::detect(s, &kube_env)
        .await
        .map_err(|e| fail(exit::INVALID_SETTINGS, "kubernetes", e))?;
    if let Some(client) = client {
        if s.config_dir.is_some() {
            tracing::warn!("running with Kubernetes; source.config_dir is ignored");
        }
        let source = kubernetes::KubernetesSource::new(
            client,
            s,
            ready.guard(source::guard_name("kubernetes")),
        );
        tracing::info!("configuration source: kubernetes");
        return Ok(Input::Source(source.spawn()));
    }
    let Some(dir) = config_dir(s) else {
        return Err(fail(
            exit::INVALID_SETTINGS,
            "invalid setting source.config_dir",
            no_source_reason(s),
        ));
    };
    let dir = &dir;
    let options = LoadOptions::from_env(env, s.namespace.as_deref());
    let sub = FileSource::new(
        dir.clone(),
        Duration::from_millis(s.debounce_ms),
        ready.guard(source::guard_name("file")),
    )
    .with_options(options)
    .spawn()
    .map_err(|e| {
        // `fail` prints the whole chain: "… /config cannot be read: Permission denied (os error 13)"
        fail(
            exit::INVALID_SETTINGS,
            "invalid setting source.config_dir",
            e,
        )
    })?;
    tracing::info!(dir = %dir.display(), "configuration source: directory");
    Ok(Input::Source(sub))
}

/// The directory to serve: `source.config_dir`, else `source.default_config_dir` when it
/// exists (the image's `/config`), else none.
fn config_dir(s: &crate::config::SourceSettings) -> Option<PathBuf> {
    s.config_dir.clone().or_else(|| {
        s.default_config_dir
            .as_ref()
            .filter(|dir| dir.exists())
            .cloned()
    })
}

fn no_source_reason(s: &crate::config::SourceSettings) -> String {
    let mut reason = "no configuration source: not in a Kubernetes cluster (no KUBERNETES_SERVICE_HOST and service-account token) and no KUBECONFIG".to_string();
    if let Some(dir) = &s.default_config_dir {
        reason.push_str(&format!(", and no directory at {}", dir.display()));
    }
    reason.push_str(
        "; pass --config-dir DIR (or LEGATE_SOURCE__CONFIG_DIR), mount a directory there, or run in Kubernetes / set KUBECONFIG",
    );
    reason
}

/// Keeps the "envoy acked config" guard, the push-latency histogram and `outstanding` (the
/// current snapshot is neither ACKed nor NACKed by a connected Envoy) up to date.
async fn track_acks(
    outputs: pipeline::Outputs,
    clients: Clients,
    metrics: Arc<Metrics>,
    guard: Guard,
    outstanding: watch::Sender<bool>,
) {
    let mut snapshots = outputs.snapshots.clone();
    let mut changes = clients.subscribe();
    let mut pending: Option<(Arc<Snapshot>, Instant)> = None;
    let mut current: Option<Arc<Snapshot>> = None;
    // Whether the connected Envoy has applied some snapshot (reset when no Envoy is connected).
    let mut applied = false;
    loop {
        // Always look at the latest snapshot: `changed()` below marks it seen, so a
        // `has_changed()` test here would miss every snapshot after the first.
        let latest = snapshots.borrow_and_update().clone();
        if let Some(s) = latest
            && current.as_ref().is_none_or(|c| !Arc::ptr_eq(c, &s))
        {
            pending = Some((s.clone(), Instant::now()));
            current = Some(s);
        }
        if clients.is_empty() {
            applied = false;
        }
        if let Some(s) = &current {
            let settled = clients.settled(&s.versions());
            outstanding.send_if_modified(|o| std::mem::replace(o, !settled) == settled);
            applied |= settled;
            if let Some((p, at)) = &pending
                && clients.acked(&p.versions())
            {
                metrics.push_latency.observe(at.elapsed());
                pending = None;
            }
            // Ready once Envoy has applied the current config. Later changes do not flip
            // readiness while Envoy applies them (it keeps serving the previous config), unless
            // one stays un-ACKed past ACK_GRACE: then Envoy is stuck and readiness says so.
            let in_grace = pending
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() < ACK_GRACE);
            guard.satisfied(settled || (applied && (pending.is_none() || in_grace)));
        }
        let grace_left = pending
            .as_ref()
            .map(|(_, at)| ACK_GRACE.saturating_sub(at.elapsed()))
            .filter(|d| !d.is_zero());
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { return },
            r = changes.changed() => if r.is_err() { return },
            _ = sleep_or_never(grace_left) => {}
        }
    }
}

/// How long a new snapshot may stay un-ACKed before readiness reports Envoy as stuck.
const ACK_GRACE: Duration = Duration::from_secs(10);

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn admin_views(
    config: &Config,
    outputs: &pipeline::Outputs,
    clients: &Clients,
    envoy: &supervisor::Handle,
) -> admin::Views {
    let mut views = admin::Views::new(serde_json::to_value(config).unwrap_or_default());
    let current = outputs.current.clone();
    // The IR is rebuilt per request (`Current::ir`): clone the state in force out of the
    // channel first, so the translation does not hold the channel's lock, and translate for one
    // request at a time, so concurrent requests cannot multiply the memory of a large one.
    let one_at_a_time = Arc::new(std::sync::Mutex::new(()));
    views.ir = Arc::new(move || {
        let _turn = one_at_a_time
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = current.borrow().clone();
        serde_json::to_value(now.ir()).unwrap_or_default()
    });
    let current = outputs.current.clone();
    views.errors = Arc::new(move || {
        serde_json::to_value(current.borrow().errors.as_ref()).unwrap_or_default()
    });
    let c = clients.clone();
    views.xds = Arc::new(move || serde_json::to_value(c.state()).unwrap_or_default());
    let status = envoy.status();
    views.envoy = Arc::new(move || serde_json::to_value(&*status.borrow()).unwrap_or_default());
    let e = envoy.clone();
    views.envoy_pid = Arc::new(move || e.pid());
    views
}

/// Removes a directory when dropped (a start that fails half-way).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceSettings;

    #[test]
    fn the_default_config_dir_is_used_only_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SourceSettings {
            default_config_dir: Some(dir.path().join("config")),
            ..SourceSettings::default()
        };
        assert_eq!(config_dir(&s), None);
        let reason = no_source_reason(&s);
        assert!(reason.contains("no configuration source"), "{reason}");
        assert!(
            reason.contains(&format!(
                "no directory at {}",
                dir.path().join("config").display()
            )),
            "{reason}"
        );
        assert!(reason.contains("--config-dir"), "{reason}");

        std::fs::create_dir(dir.path().join("config")).unwrap();
        assert_eq!(config_dir(&s), Some(dir.path().join("config")));
        // an explicit directory wins, existing or not (its absence is reported later)
        s.config_dir = Some(dir.path().join("other"));
        assert_eq!(config_dir(&s), Some(dir.path().join("other")));
    }
}
