//! The Envoy supervisor: starts Envoy, tracks its state through the admin API, restarts it
//! within a budget when it dies or hangs, and drains and stops it on shutdown.
//!
//! One task ([`Supervisor::run`]) owns the process. Everything else talks to it through a
//! [`Handle`]: the cached [`EnvoyStatus`] (probes never wait on Envoy's admin; istio #18046),
//! the drain and stop requests, signal forwarding. Crash policy (docs/design.md#crash-policy):
//! readiness goes pending the moment Envoy exits; restarts back off exponentially with jitter;
//! more than `budget` restarts within `window_ms` ends `run` with
//! [`SupervisorError::BudgetExhausted`] so the orchestrator sees a crash loop.
//!
//! A silent admin alone is not a hang: Envoy answers admin on the thread that applies xDS, so
//! it is silent while it applies a large config. [`watchdog`] kills only an Envoy that is
//! silent *and* makes no CPU progress (SIGSTOP, deadlock), or that spins with nothing to do.

mod drain;
pub mod watchdog;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::admin::{self, AdminError, ServerInfo};
use super::bootstrap::{self, BootstrapError};
use super::process::{self, ExitInfo, Flags, Launcher, Process};
use super::{Address, AddressError, State};
use crate::config::{DrainSettings, EnvoySettings, RestartSettings};
use crate::metrics::Metrics;
use crate::readiness::Guard;
use watchdog::{Sample, Verdict, Watchdog};

pub use drain::DrainOutcome;

/// How long Envoy gets to die after SIGABRT (backtrace) before SIGKILL, when it hangs.
const ABORT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("invalid envoy setting {name}: {reason}")]
    Settings { name: &'static str, reason: String },
    #[error("invalid envoy admin address")]
    Address(#[from] AddressError),
    #[error("cannot create the runtime dir {path}")]
    RuntimeDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("envoy bootstrap")]
    Bootstrap(#[from] BootstrapError),
    #[error("cannot start envoy")]
    Spawn(#[source] io::Error),
    #[error(
        "envoy restart budget spent: it died {deaths} times within {window:?} (last: {last_exit})"
    )]
    BudgetExhausted {
        deaths: u32,
        window: Duration,
        last_exit: ExitInfo,
    },
    #[error("the envoy supervisor is not running")]
    Gone,
}

/// What the rest of legate knows about Envoy, published on every change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EnvoyStatus {
    pub pid: Option<u32>,
    pub state: State,
    /// Restarts so far (not counting the first start).
    pub restarts: u32,
    pub last_exit: Option<ExitInfo>,
    pub version: Option<String>,
}

/// Files and addresses the supervisor needs.
#[derive(Debug, Clone)]
pub struct Paths {
    pub binary: PathBuf,
    /// Holds the bootstrap, the admin socket and the admin address file.
    pub runtime_dir: PathBuf,
    /// legate's ADS server as bound.
    pub xds: Address,
}

impl Paths {
    pub fn bootstrap(&self) -> PathBuf {
        self.runtime_dir.join("envoy.yaml")
    }
    pub fn admin_socket(&self) -> PathBuf {
        self.runtime_dir.join("envoy-admin.sock")
    }
    pub fn admin_address_file(&self) -> PathBuf {
        self.runtime_dir.join("envoy-admin.address")
    }
}

enum Request {
    Drain {
        settings: DrainSettings,
        deadline: Instant,
        reply: oneshot::Sender<DrainOutcome>,
    },
    StopNow {
        reply: oneshot::Sender<Option<ExitInfo>>,
    },
    Signal(Signal),
}

/// Talks to a running [`Supervisor`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    status: watch::Receiver<EnvoyStatus>,
    admin: watch::Receiver<Option<admin::Client>>,
    requests: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Drain { .. } => "Drain",
            Request::StopNow { .. } => "StopNow",
            Request::Signal(_) => "Signal",
        })
    }
}

impl Handle {
    /// The status channel (cached; never waits on Envoy).
    pub fn status(&self) -> watch::Receiver<EnvoyStatus> {
        self.status.clone()
    }

    /// The running Envoy's pid (for sysinfo sampling).
    pub fn pid(&self) -> Option<u32> {
        self.status.borrow().pid
    }

    /// An admin client for the current Envoy (`None` until a TCP port 0 admin is known).
    pub fn admin(&self) -> Option<admin::Client> {
        self.admin.borrow().clone()
    }

    /// Forwards a signal to Envoy (e.g. SIGUSR1 to reopen access logs).
    pub fn forward(&self, sig: Signal) -> Result<(), SupervisorError> {
        self.requests
            .try_send(Request::Signal(sig))
            .map_err(|_| SupervisorError::Gone)
    }

    /// Drains Envoy and stops it (steps 3–5 of the drain): `drain_listeners?graceful&skip_exit`,
    /// at least `min_ms`, then poll data-plane connections every `poll_ms` until none or
    /// `deadline`, then `/quitquitquit`, SIGTERM, SIGKILL, reap. `run` returns afterwards.
    pub async fn drain(
        &self,
        settings: &DrainSettings,
        deadline: Instant,
    ) -> Result<DrainOutcome, SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Drain {
                settings: settings.clone(),
                deadline,
                reply,
            })
            .await
            .map_err(|_| SupervisorError::Gone)?;
        rx.await.map_err(|_| SupervisorError::Gone)
    }

    /// Stops Envoy at once (SIGTERM, then SIGKILL after the stop timeout) and reaps it; `run`
    /// returns afterwards. Also cuts a running drain short (its outcome is then not
    /// `completed`). Returns Envoy's exit, if one was running.
    pub async fn stop_now(&self) -> Result<Option<ExitInfo>, SupervisorError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::StopNow { reply })
            .await
            .map_err(|_| SupervisorError::Gone)?;
        rx.await.map_err(|_| SupervisorError::Gone)
    }
}

/// Supervises one Envoy at a time. Build with [`Supervisor::new`], then `run()` on its own task.
pub struct Supervisor {
    settings: EnvoySettings,
    flags: Flags,
    paths: Paths,
    admin_address: Address,
    metrics: Arc<Metrics>,
    guard: Guard,
    stop_timeout: Duration,
    /// Listener stat prefixes that never count as data-plane connections (probe, stats).
    excluded: Vec<String>,
    status: watch::Sender<EnvoyStatus>,
    admin: watch::Sender<Option<admin::Client>>,
    requests: mpsc::Receiver<Request>,
    requests_open: bool,
    /// Further drain requests that arrived during a drain; they get its outcome too.
    drain_waiters: Vec<oneshot::Sender<DrainOutcome>>,
    /// `true` while a push to Envoy is outstanding (sent, not yet ACKed or NACKed).
    push_outstanding: watch::Receiver<bool>,
}

/// How one Envoy run ended.
enum Ended {
    /// Stopped on request; `run` returns.
    Stopped(Option<ExitInfo>),
    /// Died or was killed as hung; restart.
    Died {
        exit: ExitInfo,
        reason: &'static str,
    },
}

impl Supervisor {
    /// `guard` is the readiness condition "envoy live", released only while Envoy is LIVE.
    pub fn new(
        settings: &EnvoySettings,
        drain: &DrainSettings,
        paths: Paths,
        metrics: Arc<Metrics>,
        guard: Guard,
    ) -> Result<(Supervisor, Handle), SupervisorError> {
        if !matches!(settings.drain_strategy.as_str(), "immediate" | "gradual") {
            return Err(SupervisorError::Settings {
                name: "envoy.drain_strategy",
                reason: format!(
                    "{:?} is neither immediate nor gradual",
                    settings.drain_strategy
                ),
            });
        }
        if !matches!(settings.stats.as_str(), "essential" | "all") {
            return Err(SupervisorError::Settings {
                name: "envoy.stats",
                reason: format!("{:?} is neither essential nor all", settings.stats),
            });
        }
        if !matches!(settings.xds_protocol.as_str(), "delta" | "sotw") {
            return Err(SupervisorError::Settings {
                name: "envoy.xds_protocol",
                reason: format!("{:?} is neither delta nor sotw", settings.xds_protocol),
            });
        }
        let r = &settings.restart;
        if settings.health_interval_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms {
            return Err(SupervisorError::Settings {
                name: "envoy.health_interval_ms / envoy.restart",
                reason: "the health interval must be positive and the initial backoff at most \
                         the maximum"
                    .into(),
            });
        }
        let admin_address = Address::from_setting(&settings.admin, paths.admin_socket())?;
        let flags = Flags {
            bootstrap: paths.bootstrap(),
            drain_strategy: settings.drain_strategy.clone(),
            drain_time_s: process::drain_time_s(drain.deadline_ms),
            log_level: settings.log_level.clone(),
            concurrency: process::concurrency(settings.concurrency),
            admin_address_path: Some(paths.admin_address_file()),
        };
        let fixed_admin = match &admin_address {
            Address::Tcp(a) if a.port() == 0 => None,
            other => Some(admin::Client::new(other.clone())),
        };
        let (status, status_rx) = watch::channel(EnvoyStatus {
            pid: None,
            state: State::Down,
            restarts: 0,
            last_exit: None,
            version: None,
        });
        let (admin, admin_rx) = watch::channel(fixed_admin);
        let (tx, requests) = mpsc::channel(8);
        guard.block();
        metrics.envoy_state.set(State::Down.gauge());
        metrics.envoy_live.set(0);
        let sup = Supervisor {
            settings: settings.clone(),
            flags,
            paths,
            admin_address,
            metrics,
            guard,
            stop_timeout: Duration::from_millis(drain.stop_timeout_ms),
            excluded: vec![],
            status,
            admin,
            requests,
            requests_open: true,
            drain_waiters: vec![],
            push_outstanding: watch::channel(false).1,
        };
        let handle = Handle {
            status: status_rx,
            admin: admin_rx,
            requests: tx,
        };
        Ok((sup, handle))
    }

    /// Listener stat prefixes to leave out of the drain's connection count (probe, stats).
    pub fn exclude_listeners(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.excluded.extend(names);
        self
    }

    /// Where the hang detection learns whether a push is outstanding (see [`watchdog`]).
    pub fn push_outstanding(mut self, outstanding: watch::Receiver<bool>) -> Self {
        self.push_outstanding = outstanding;
        self
    }

    /// Envoy's command line flags (for logs and tests).
    pub fn flags(&self) -> &Flags {
        &self.flags
    }

    /// Runs until Envoy is stopped on request (`Ok` with its last exit) or the restart budget
    /// is spent.
    pub async fn run(mut self) -> Result<Option<ExitInfo>, SupervisorError> {
        self.prepare().await?;
        let launcher = Launcher::new().map_err(SupervisorError::Spawn)?;
        let mut deaths: VecDeque<Instant> = VecDeque::new();
        loop {
            if self.stop_requested() {
                return Ok(None);
            }
            let envoy = self.start(&launcher).await?;
            let (exit, reason) = match self.supervise(&envoy).await {
                Ended::Stopped(exit) => {
                    self.set_down(exit);
                    return Ok(exit);
                }
                Ended::Died { exit, reason } => (exit, reason),
            };
            self.set_down(Some(exit));
            let window = Duration::from_millis(self.settings.restart.window_ms);
            let now = Instant::now();
            while deaths
                .front()
                .is_some_and(|t| now.duration_since(*t) > window)
            {
                deaths.pop_front();
            }
            if deaths.len() >= self.settings.restart.budget as usize {
                tracing::error!(pid = envoy.pid(), exit = %exit, reason, "envoy died and the restart budget is spent");
                return Err(SupervisorError::BudgetExhausted {
                    deaths: deaths.len() as u32 + 1,
                    window,
                    last_exit: exit,
                });
            }
            deaths.push_back(now);
            let delay = backoff(&self.settings.restart, deaths.len() as u32);
            tracing::warn!(pid = envoy.pid(), exit = %exit, reason, ?delay, "envoy died; restarting");
            self.metrics.envoy_restarts.inc(reason);
            if self.wait_backoff(delay).await {
                return Ok(Some(exit));
            }
            self.status.send_modify(|s| s.restarts += 1);
        }
    }

    /// Writes and validates the bootstrap.
    async fn prepare(&self) -> Result<(), SupervisorError> {
        let dir = &self.paths.runtime_dir;
        std::fs::create_dir_all(dir).map_err(|source| SupervisorError::RuntimeDir {
            path: dir.clone(),
            source,
        })?;
        let mut params = bootstrap::Params::new(
            &self.settings.node_id,
            &self.settings.node_cluster,
            self.admin_address.clone(),
            self.paths.xds.clone(),
        );
        params.all_stats = self.settings.stats == "all";
        params.sotw = self.settings.xds_protocol == "sotw";
        let path = self.paths.bootstrap();
        bootstrap::write(&params, &path)?;
        bootstrap::validate(&self.paths.binary, &path).await?;
        tracing::info!(bootstrap = %path.display(), admin = %self.admin_address, xds = %self.paths.xds, "envoy bootstrap written");
        Ok(())
    }

    /// Answers a drain or stop that arrived before Envoy was started (e.g. SIGTERM while the
    /// bootstrap was being checked): no Envoy is started, there is nothing to drain.
    fn stop_requested(&mut self) -> bool {
        while let Ok(req) = self.requests.try_recv() {
            match req {
                Request::Signal(_) => {}
                Request::StopNow { reply } => {
                    let _ = reply.send(None);
                    return true;
                }
                Request::Drain { reply, .. } => {
                    tracing::info!("drain requested before envoy started; not starting it");
                    let _ = reply.send(DrainOutcome::nothing_to_drain());
                    return true;
                }
            }
        }
        false
    }

    async fn start(&self, launcher: &Launcher) -> Result<Process, SupervisorError> {
        // A stale socket or address file from the previous Envoy must not be mistaken for the
        // new one.
        for stale in [self.paths.admin_socket(), self.paths.admin_address_file()] {
            let _ = std::fs::remove_file(stale);
        }
        if matches!(&self.admin_address, Address::Tcp(a) if a.port() == 0) {
            self.admin.send_replace(None);
        }
        let cmd = process::command(&self.paths.binary, &self.flags);
        let envoy = launcher.spawn(cmd).await.map_err(SupervisorError::Spawn)?;
        tracing::info!(pid = envoy.pid(), args = ?self.flags.args(), "envoy started");
        self.status.send_modify(|s| {
            s.pid = Some(envoy.pid());
            s.state = State::Starting;
            s.version = None;
        });
        Ok(envoy)
    }

    /// Watches one Envoy until it dies, hangs or is stopped on request.
    async fn supervise(&mut self, envoy: &Process) -> Ended {
        let (obs_tx, mut observations) = mpsc::channel(1);
        let poller = AbortOnDrop(tokio::spawn(poll(
            self.admin.subscribe(),
            self.admin_address.clone(),
            self.paths.admin_address_file(),
            Duration::from_millis(self.settings.health_interval_ms),
            // A call still unanswered after half the unresponsive timeout counts as failed, so
            // the watchdog has its evidence in time.
            admin::DEFAULT_TIMEOUT.min(Duration::from_millis(
                self.settings.unresponsive_timeout_ms / 2,
            )),
            obs_tx,
            self.admin.clone(),
        )));
        let interval = Duration::from_millis(self.settings.health_interval_ms);
        let mut watchdog = Watchdog::new(
            Duration::from_millis(self.settings.unresponsive_timeout_ms),
            Duration::from_millis(self.settings.busy_limit_ms),
            Instant::now(),
        );
        let mut samples = tokio::time::interval(interval);
        samples.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut busy_logged = false;
        let ended = loop {
            tokio::select! {
                exit = envoy.wait() => {
                    let reason = if exit.signal.is_some() { "signal" } else { "exited" };
                    break Ended::Died { exit, reason };
                }
                Some(obs) = observations.recv() => match obs {
                    Ok((ready, info)) => {
                        watchdog.answered(Instant::now());
                        busy_logged = false;
                        self.observe(ready, &info);
                    }
                    Err(error) => {
                        watchdog.call_failed();
                        tracing::debug!(%error, "envoy admin did not answer");
                    }
                },
                _ = samples.tick() => {
                    let sample = Sample {
                        cpu_ticks: watchdog::main_thread_ticks(envoy.pid()),
                        push_outstanding: *self.push_outstanding.borrow(),
                        state: self.status.borrow().state,
                    };
                    match watchdog.check(Instant::now(), sample) {
                        Verdict::Answering => {}
                        Verdict::Busy => {
                            if !busy_logged {
                                busy_logged = true;
                                tracing::warn!(
                                    pid = envoy.pid(),
                                    silent = ?watchdog.silent_since().elapsed(),
                                    push_outstanding = sample.push_outstanding,
                                    state = ?sample.state,
                                    "envoy admin silent but envoy is busy (cpu advancing); not restarting it"
                                );
                            }
                        }
                        Verdict::Hung(why) => {
                            let silent = watchdog.silent_since().elapsed();
                            break Ended::Died { exit: self.kill_hung(envoy, silent, why).await, reason: "unresponsive" };
                        }
                    }
                }
                req = self.requests.recv(), if self.requests_open => match req {
                    None => self.requests_open = false,
                    Some(Request::Signal(sig)) => envoy.signal(sig),
                    Some(Request::StopNow { reply }) => {
                        let exit = self.stop(envoy, false).await;
                        let _ = reply.send(Some(exit));
                        break Ended::Stopped(Some(exit));
                    }
                    Some(Request::Drain { settings, deadline, reply }) => {
                        drop(poller);
                        let outcome = self.drain(envoy, &settings, deadline).await;
                        let exit = outcome.envoy_exit;
                        for waiter in self.drain_waiters.drain(..) {
                            let _ = waiter.send(outcome.clone());
                        }
                        let _ = reply.send(outcome);
                        return Ended::Stopped(exit);
                    }
                },
            }
        };
        drop(poller);
        ended
    }

    /// Applies one admin answer to the status, the readiness guard and the metrics.
    fn observe(&self, ready: bool, info: &ServerInfo) {
        let live = ready && info.state == State::Live;
        self.guard.satisfied(live);
        self.metrics.envoy_live.set(live as i64);
        self.metrics.envoy_state.set(info.state.gauge());
        self.status.send_if_modified(|s| {
            let changed = s.state != info.state || s.version.as_ref() != Some(&info.version);
            if s.state != info.state {
                tracing::info!(pid = s.pid, from = ?s.state, to = ?info.state, "envoy state");
            }
            s.state = info.state;
            s.version = Some(info.version.clone());
            changed
        });
    }

    /// Envoy is hung (see [`watchdog`]): SIGABRT for a backtrace, then SIGKILL.
    async fn kill_hung(&self, envoy: &Process, silent: Duration, why: &str) -> ExitInfo {
        tracing::error!(
            pid = envoy.pid(),
            ?silent,
            why,
            "envoy hung; aborting envoy"
        );
        self.guard.block();
        envoy.signal(Signal::SIGABRT);
        if let Some(exit) = envoy.wait_timeout(ABORT_GRACE).await {
            return exit;
        }
        envoy.signal(Signal::SIGKILL);
        envoy.wait().await
    }

    /// Stops Envoy and reaps it: `/quitquitquit` first when `graceful`, then SIGTERM, then
    /// SIGKILL after the stop timeout.
    async fn stop(&self, envoy: &Process, graceful: bool) -> ExitInfo {
        self.guard.block();
        let client = self.admin.borrow().clone();
        if let (true, Some(client)) = (graceful, client) {
            if let Err(error) = client.quitquitquit().await {
                tracing::debug!(%error, "envoy quitquitquit failed");
            }
            if let Some(exit) = envoy.wait_timeout(Duration::from_secs(1)).await {
                return exit;
            }
        }
        envoy.signal(Signal::SIGTERM);
        if let Some(exit) = envoy.wait_timeout(self.stop_timeout).await {
            return exit;
        }
        tracing::warn!(pid = envoy.pid(), timeout = ?self.stop_timeout, "envoy ignored SIGTERM; killing it");
        envoy.signal(Signal::SIGKILL);
        envoy.wait().await
    }

    fn set_down(&self, exit: Option<ExitInfo>) {
        self.guard.block();
        self.metrics.envoy_live.set(0);
        self.metrics.envoy_state.set(State::Down.gauge());
        self.status.send_modify(|s| {
            s.pid = None;
            s.state = State::Down;
            if exit.is_some() {
                s.last_exit = exit;
            }
        });
    }

    /// Sleeps the restart backoff while still answering requests. Returns `true` when a drain
    /// or stop arrived (there is no Envoy to drain: nothing left to do).
    async fn wait_backoff(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return false,
                req = self.requests.recv(), if self.requests_open => match req {
                    None => self.requests_open = false,
                    Some(Request::Signal(_)) => {}
                    Some(Request::StopNow { reply }) => {
                        let _ = reply.send(None);
                        return true;
                    }
                    Some(Request::Drain { reply, .. }) => {
                        let _ = reply.send(DrainOutcome::nothing_to_drain());
                        return true;
                    }
                },
            }
        }
    }
}

/// Exponential backoff for the `attempt`-th restart in the window (1-based), with equal jitter:
/// half the step fixed, half random.
pub fn backoff(r: &RestartSettings, attempt: u32) -> Duration {
    let step = r
        .initial_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(r.max_backoff_ms);
    let half = step / 2;
    Duration::from_millis(half + fastrand::u64(0..=step - half))
}

type Observation = Result<(bool, ServerInfo), AdminError>;

/// Polls `/ready` and `/server_info` every `interval` once Envoy is LIVE, and every
/// [`FAST_POLL`] until then, so a starting (or restarted) Envoy is seen LIVE within tens of
/// milliseconds instead of up to a whole interval later. Reports each answer (or error).
/// For a TCP admin on port 0 it first reads the address Envoy wrote to `address_file`.
async fn poll(
    current: watch::Receiver<Option<admin::Client>>,
    configured: Address,
    address_file: PathBuf,
    interval: Duration,
    call_timeout: Duration,
    tx: mpsc::Sender<Observation>,
    publish: watch::Sender<Option<admin::Client>>,
) {
    let mut live = false;
    loop {
        let client = current.borrow().clone();
        let client = match client {
            Some(c) => Some(c),
            None => read_admin_address(&address_file, &configured).inspect(|c| {
                tracing::debug!(admin = %c.target(), "envoy admin address known");
                publish.send_replace(Some(c.clone()));
            }),
        };
        if let Some(client) = client.map(|c| c.with_timeout(call_timeout)) {
            let obs = async { Ok((client.ready().await?, client.server_info().await?)) }.await;
            live = matches!(&obs, Ok((true, info)) if info.state == State::Live);
            if tx.send(obs).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(if live {
            interval
        } else {
            interval.min(FAST_POLL)
        })
        .await;
    }
}

/// Poll period while Envoy is not (yet) LIVE.
const FAST_POLL: Duration = Duration::from_millis(20);

fn read_admin_address(file: &std::path::Path, configured: &Address) -> Option<admin::Client> {
    let text = std::fs::read_to_string(file).ok()?;
    let addr: std::net::SocketAddr = text.trim().parse().ok()?;
    match configured {
        Address::Tcp(_) => Some(admin::Client::new(Address::Tcp(addr))),
        Address::Unix(_) => None,
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::Ready;

    fn info(state: State) -> ServerInfo {
        ServerInfo {
            state,
            version: "test/1.40.0".into(),
            uptime: Duration::from_secs(1),
            concurrency: Some(1),
            drain_time: None,
            drain_strategy: None,
        }
    }

    #[test]
    fn guard_is_released_only_while_live() {
        let ready = Ready::new();
        let metrics = Arc::new(Metrics::default());
        let paths = Paths {
            binary: "/nonexistent/envoy".into(),
            runtime_dir: "/nonexistent/run".into(),
            xds: Address::Unix("/nonexistent/xds.sock".into()),
        };
        let (sup, handle) = Supervisor::new(
            &EnvoySettings::default(),
            &DrainSettings::default(),
            paths,
            metrics.clone(),
            ready.guard("envoy live"),
        )
        .unwrap();
        assert!(!ready.is_ready());
        sup.observe(false, &info(State::PreInitializing));
        assert!(!ready.is_ready());
        assert_eq!(metrics.envoy_state.get(), 2);
        sup.observe(true, &info(State::Live));
        assert!(ready.is_ready());
        assert_eq!(metrics.envoy_live.get(), 1);
        assert_eq!(handle.status().borrow().state, State::Live);
        // `/ready` 503 wins over a LIVE server_info read a moment earlier.
        sup.observe(false, &info(State::Live));
        assert!(!ready.is_ready());
        sup.observe(true, &info(State::Live));
        sup.set_down(None);
        assert_eq!(ready.pending(), vec!["envoy live"]);
        assert_eq!(metrics.envoy_state.get(), -1);
        assert_eq!(handle.pid(), None);
    }

    #[test]
    fn bad_settings_are_named() {
        let settings = EnvoySettings {
            drain_strategy: "slow".into(),
            ..EnvoySettings::default()
        };
        let paths = Paths {
            binary: "/x".into(),
            runtime_dir: "/x".into(),
            xds: Address::Unix("/x/xds.sock".into()),
        };
        let err = Supervisor::new(
            &settings,
            &DrainSettings::default(),
            paths,
            Arc::new(Metrics::default()),
            Ready::new().guard("envoy live"),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("envoy.drain_strategy"), "{err}");
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let r = RestartSettings {
            initial_backoff_ms: 250,
            max_backoff_ms: 10_000,
            budget: 5,
            window_ms: 600_000,
        };
        for _ in 0..100 {
            let first = backoff(&r, 1).as_millis();
            assert!((125..=250).contains(&first), "{first}");
            let third = backoff(&r, 3).as_millis();
            assert!((500..=1000).contains(&third), "{third}");
            let capped = backoff(&r, 40).as_millis();
            assert!((5000..=10_000).contains(&capped), "{capped}");
        }
    }
}
