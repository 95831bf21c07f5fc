//! Spawning Envoy: the command line, a hardened child (own process group, parent-death signal,
//! clean signal mask and dispositions), the owner task that waits for it, and its output
//! re-emitted as `tracing` events with target `envoy`.
//!
//! Children are forked by a [`Launcher`]: one dedicated, long-lived thread. `PR_SET_PDEATHSIG`
//! fires when the *thread* that forked the child exits, not the process (prctl(2)); a tokio
//! blocking-pool thread exits after 10 s idle and would take Envoy with it
//! (docs/design.md#spawning-envoy).
//! The launcher thread lives as long as the `Launcher`, so dropping
//! the supervisor also kills its Envoy.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::reaper;

/// Added to the drain deadline for `--drain-time-s`, so Envoy's own drain never ends before
/// legate's (legate stops Envoy explicitly at its deadline).
pub const DRAIN_TIME_MARGIN_S: u64 = 5;

/// Envoy's log lines: level, logger and source location before the message; newlines in
/// messages escaped (`--log-format-escaped`) so one record is one line.
pub const LOG_FORMAT: &str = "[%l][%n][%g:%#] %v";

/// Envoy's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    pub bootstrap: PathBuf,
    /// `immediate` or `gradual`.
    pub drain_strategy: String,
    pub drain_time_s: u64,
    pub log_level: String,
    /// `--concurrency`, only when set explicitly or by a cgroup CPU quota (see [`concurrency`]).
    pub concurrency: Option<u32>,
    /// `--admin-address-path`: Envoy writes its admin address there (needed for TCP port 0).
    pub admin_address_path: Option<PathBuf>,
}

impl Flags {
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-c".into(),
            self.bootstrap.clone().into(),
            "--disable-hot-restart".into(),
            "--drain-strategy".into(),
            self.drain_strategy.clone().into(),
            "--drain-time-s".into(),
            self.drain_time_s.to_string().into(),
            "-l".into(),
            self.log_level.clone().into(),
            "--log-format".into(),
            LOG_FORMAT.into(),
            "--log-format-escaped".into(),
            // Every xDS update is otherwise walked field by field, by reflection, to count
            // unknown and deprecated fields: at 50,000 routes that walk is about a third of the
            // time from a push to the new routes served (BENCHMARKS.md, "Envoy's field walk").
            // The fields are legate's own, checked in CI instead: a rich IR and every golden
            // output with real certificates pass `envoy --mode validate` with no unknown field
            // and nothing deprecated (src/xds/resources/tests/validate.rs, tests/cli.rs). Envoy still checks
            // each update's constraints (a bad value is still NACKed). Envoy's command line
            // options:
            // https://www.envoyproxy.io/docs/envoy/v1.40.0/operations/cli#cmdoption-ignore-unknown-dynamic-fields
            "--ignore-unknown-dynamic-fields".into(),
        ];
        if let Some(n) = self.concurrency {
            args.extend(["--concurrency".into(), n.to_string().into()]);
        }
        if let Some(p) = &self.admin_address_path {
            args.extend(["--admin-address-path".into(), p.clone().into()]);
        }
        args
    }
}

/// `--drain-time-s` for a drain deadline: the deadline rounded up, plus a margin.
pub fn drain_time_s(deadline_ms: u64) -> u64 {
    deadline_ms.div_ceil(1000) + DRAIN_TIME_MARGIN_S
}

/// Worker threads to ask for: the explicit setting, else the cgroup CPU quota (rounded down,
/// at least 1), else none (Envoy uses the hardware threads).
pub fn concurrency(explicit: Option<u32>) -> Option<u32> {
    explicit.or_else(cgroup_cpu_limit)
}

/// The CPU quota of this process's cgroup, in whole CPUs (v2 `cpu.max`, v1 `cpu.cfs_*`).
pub fn cgroup_cpu_limit() -> Option<u32> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    cpu_limit_under(Path::new("/sys/fs/cgroup"), &own)
}

/// [`cgroup_cpu_limit`] against a cgroup mount `root` and `/proc/self/cgroup` content `own`.
/// The own cgroup's directory is tried first, then the mount root (a container's cgroup
/// namespace makes its cgroup the root).
pub fn cpu_limit_under(root: &Path, own: &str) -> Option<u32> {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let mut v2_dirs = vec![];
    let mut v1_dirs = vec![];
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            v2_dirs.push(root.join(rel));
        } else if controllers.split(',').any(|c| c == "cpu") {
            v1_dirs.push(root.join(controllers).join(rel));
        }
    }
    v2_dirs.push(root.to_path_buf());
    for dir in &v2_dirs {
        if let Some(s) = read(dir.join("cpu.max")) {
            return parse_cpu_max(&s);
        }
    }
    for name in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
        v1_dirs.push(root.join(name));
    }
    for dir in &v1_dirs {
        if let (Some(q), Some(p)) = (
            read(dir.join("cpu.cfs_quota_us")),
            read(dir.join("cpu.cfs_period_us")),
        ) {
            return parse_cfs(&q, &p);
        }
    }
    None
}

/// cgroup v2 `cpu.max`: `max 100000` (no quota) or `<quota> <period>`.
pub fn parse_cpu_max(s: &str) -> Option<u32> {
    let mut it = s.split_whitespace();
    let quota = it.next()?;
    if quota == "max" {
        return None;
    }
    let period = it.next().unwrap_or("100000");
    cpus(quota.parse().ok()?, period.parse().ok()?)
}

/// cgroup v1 `cpu.cfs_quota_us` (`-1` = no quota) and `cpu.cfs_period_us`.
pub fn parse_cfs(quota: &str, period: &str) -> Option<u32> {
    let quota: i64 = quota.trim().parse().ok()?;
    if quota <= 0 {
        return None;
    }
    cpus(quota as u64, period.trim().parse().ok()?)
}

fn cpus(quota: u64, period: u64) -> Option<u32> {
    if period == 0 {
        return None;
    }
    Some(u32::try_from(quota / period).unwrap_or(u32::MAX).max(1))
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    fn from_status(status: io::Result<std::process::ExitStatus>) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(s) => ExitInfo {
                code: s.code(),
                signal: s.signal(),
            },
            Err(error) => {
                tracing::error!(error = %crate::error::Chain(&error), "cannot wait for envoy");
                ExitInfo {
                    code: None,
                    signal: None,
                }
            }
        }
    }

    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn shell_code(&self) -> i32 {
        self.code.or(self.signal.map(|s| 128 + s)).unwrap_or(1)
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by {sig}"),
                Err(_) => write!(f, "killed by signal {s}"),
            },
            (None, None) => write!(f, "unknown exit"),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A dedicated thread that forks children (see the module doc for why).
#[derive(Debug)]
pub struct Launcher {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Launcher {
    /// Starts the thread; must be called inside a tokio runtime (the children are
    /// `tokio::process` children of that runtime).
    pub fn new() -> io::Result<Launcher> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("envoy-launcher".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                // Ends when the Launcher is dropped; its children then get SIGKILL.
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        Ok(Launcher { jobs })
    }

    /// Spawns `cmd` hardened (see [`harden`]) from the launcher thread, as an owned child of the
    /// reaper, with stdout/stderr re-emitted as `tracing` events.
    pub async fn spawn(&self, mut cmd: tokio::process::Command) -> io::Result<Process> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(spawn_hardened(&mut cmd));
        });
        self.jobs
            .send(job)
            .map_err(|_| io::Error::other("envoy launcher thread is gone"))?;
        let (child, owned) = rx
            .await
            .map_err(|_| io::Error::other("envoy launcher dropped the spawn"))??;
        Ok(Process::watch(child, owned))
    }
}

/// Builds the Envoy command (binary + flags); spawn it with [`Launcher::spawn`].
pub fn command(binary: &Path, flags: &Flags) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(flags.args());
    cmd
}

fn spawn_hardened(
    cmd: &mut tokio::process::Command,
) -> io::Result<(tokio::process::Child, reaper::Owned)> {
    let parent = nix::unistd::getpid();
    // SAFETY: `harden` only makes async-signal-safe syscalls and does not allocate.
    unsafe {
        cmd.pre_exec(move || harden(parent));
    }
    cmd.process_group(0)
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (mut child, owned) = reaper::spawn_owned(|| {
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child has no pid"))?;
        Ok((child, pid))
    })?;
    let pid = owned.pid();
    if let Some(out) = child.stdout.take() {
        pipe_logs(out, "stdout", pid);
    }
    if let Some(err) = child.stderr.take() {
        pipe_logs(err, "stderr", pid);
    }
    Ok((child, owned))
}

/// Runs in the child between fork and exec: default dispositions for every signal, an empty
/// signal mask (both survive exec; docs/design.md#spawning-envoy), and SIGKILL when the launcher
/// thread dies.
fn harden(parent: Pid) -> io::Result<()> {
    // SAFETY: sigaction/sigprocmask/prctl/getppid are async-signal-safe; nothing here allocates.
    unsafe {
        // Reset before unblocking, so a pending signal never runs a handler copied from legate.
        // The raw syscall, because glibc's wrappers refuse its reserved signals (32, 33),
        // which can arrive ignored too. An all-zero kernel `struct sigaction` is SIG_DFL with
        // no flags and an empty mask; the last argument is the kernel sigset size.
        let dfl = [0u64; 4];
        for signo in 1..=64 {
            if signo != libc::SIGKILL && signo != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signo,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                );
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    // The launcher thread may have died between fork and prctl: then nobody would kill us.
    if nix::unistd::getppid() != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// A running (or exited) child: its pid, a way to signal it and its exit. Cloning shares it;
/// when every clone is dropped the child is killed.
#[derive(Debug, Clone)]
pub struct Process {
    pid: u32,
    signals: mpsc::UnboundedSender<Signal>,
    exit: watch::Receiver<Option<ExitInfo>>,
}

impl Process {
    /// Hands the child to an owner task that waits for it. Signals are sent from that same
    /// task, so a signal can never hit a recycled pid: the child is only reaped there.
    fn watch(mut child: tokio::process::Child, owned: reaper::Owned) -> Process {
        let pid = owned.pid();
        let (signals, mut rx) = mpsc::unbounded_channel::<Signal>();
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(
            async move {
                let status = loop {
                    tokio::select! {
                        status = child.wait() => break status,
                        sig = rx.recv() => {
                            // Every handle dropped: nobody will stop it later, so kill it now.
                            let sig = sig.unwrap_or(Signal::SIGKILL);
                            send(pid, sig);
                        }
                    }
                };
                drop(owned);
                let info = ExitInfo::from_status(status);
                tracing::debug!(pid, exit = %info, "child reaped");
                exit_tx.send_replace(Some(info));
            }
            .instrument(tracing::info_span!("envoy_process", pid)),
        );
        Process { pid, signals, exit }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `sig` (SIGKILL goes to the whole process group). A no-op once the child exited.
    pub fn signal(&self, sig: Signal) {
        if self.exit.borrow().is_none() {
            let _ = self.signals.send(sig);
        }
    }

    /// The exit, once the child has been reaped.
    pub fn exited(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Waits until the child has exited and been reaped.
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.exit.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or(ExitInfo {
                code: None,
                signal: None,
            }),
            // The owner task ended without a status (runtime shutting down).
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        }
    }

    /// Waits for the exit for at most `timeout`.
    pub async fn wait_timeout(&self, timeout: Duration) -> Option<ExitInfo> {
        tokio::time::timeout(timeout, self.wait()).await.ok()
    }
}

fn send(pid: u32, sig: Signal) {
    let target = Pid::from_raw(pid as i32);
    let result = if sig == Signal::SIGKILL {
        nix::sys::signal::killpg(target, sig)
    } else {
        nix::sys::signal::kill(target, sig)
    };
    match result {
        Ok(()) => tracing::debug!(pid, signal = %sig, "signalled envoy"),
        Err(error) => {
            tracing::warn!(pid, signal = %sig, error = %crate::error::Chain(&error), "cannot signal envoy")
        }
    }
}

/// Reads a child's output continuously (so it never blocks on a full pipe) and re-emits each
/// line as a `tracing` event with target `envoy`.
fn pipe_logs<R: AsyncRead + Unpin + Send + 'static>(r: R, stream: &'static str, pid: u32) {
    tokio::spawn(
        async move {
            let mut reader = BufReader::new(r);
            let mut buf = Vec::with_capacity(512);
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => emit(&String::from_utf8_lossy(&buf), stream, pid),
                }
            }
        }
        .instrument(tracing::info_span!("envoy_output", pid, stream)),
    );
}

/// One Envoy log line split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub level: Option<&'a str>,
    pub logger: Option<&'a str>,
    pub source: Option<&'a str>,
    pub message: &'a str,
}

/// Parses `[...][level][logger][file:line] message`. Bracketed groups before the level (the
/// timestamp and thread of Envoy's default format) are skipped; a line without a level is
/// returned whole as the message.
pub fn parse_line(line: &str) -> LogLine<'_> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (mut level, mut logger, mut source) = (None, None, None);
    let mut rest = line;
    for _ in 0..6 {
        // The default format has a space between logger and source: `[main] [file:1] msg`.
        let trimmed = if level.is_some() {
            rest.trim_start_matches(' ')
        } else {
            rest
        };
        let Some(inner) = trimmed.strip_prefix('[') else {
            break;
        };
        let Some(end) = inner.find(']') else { break };
        let group = &inner[..end];
        match (level, logger) {
            (None, _) => level = is_level(group).then_some(group),
            (Some(_), None) => logger = Some(group),
            (Some(_), Some(_)) => {
                if group.contains(':') {
                    source = Some(group);
                    rest = &inner[end + 1..];
                }
                break;
            }
        }
        rest = &inner[end + 1..];
    }
    if level.is_none() {
        return LogLine {
            level: None,
            logger: None,
            source: None,
            message: line,
        };
    }
    LogLine {
        level,
        logger,
        source,
        message: rest.trim_start(),
    }
}

fn is_level(s: &str) -> bool {
    matches!(
        s,
        "trace" | "debug" | "info" | "warning" | "error" | "critical"
    )
}

fn emit(line: &str, stream: &'static str, pid: u32) {
    let l = parse_line(line);
    let logger = l.logger.unwrap_or("");
    let source = l.source.unwrap_or("");
    let msg = l.message;
    macro_rules! ev {
        ($lvl:expr) => {
            tracing::event!(target: "envoy", $lvl, pid, stream, logger, source, "{msg}")
        };
    }
    match l.level {
        Some("critical" | "error") => ev!(tracing::Level::ERROR),
        Some("warning") => ev!(tracing::Level::WARN),
        Some("debug") => ev!(tracing::Level::DEBUG),
        Some("trace") => ev!(tracing::Level::TRACE),
        _ => ev!(tracing::Level::INFO),
    }
}

#[cfg(test)]
#[path = "process/tests.rs"]
mod tests;
