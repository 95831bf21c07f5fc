//! PID-1 duties: reaping every zombie, including orphans re-parented to legate, without
//! stealing an exit status from the code that waits for its own child (Envoy).
//!
//! Design (docs/design.md#reaping): children legate spawns on purpose are *owned*.
//! They are spawned through [`spawn_owned`], which registers the pid while holding the registry
//! lock, and their owner waits for them (`tokio::process::Child::wait`). The reaper task only
//! *peeks* at zombies with `waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT)` under the same lock and
//! reaps a pid only when it is not owned. Nothing in legate calls `waitpid(-1)` without
//! `WNOWAIT`, so an owned status can never be consumed by the reaper: not even for a child that
//! exits before `spawn` returns, because the reaper cannot sweep until the pid is registered.
//!
//! The peek returns one zombie at a time. While that is an owned zombie the sweep stops and
//! retries shortly (its owner reaps it within milliseconds); otherwise it runs on every SIGCHLD
//! and once a second as a safety net.
//!
//! Every other piece of legate that spawns a child process must go through [`spawn_owned`] (or
//! [`output`]) while the reaper runs, or it may see `ECHILD` instead of the status.

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

/// Pids whose exit status belongs to someone else. A `BTreeSet` because it has a `const` new.
static OWNED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// How long to wait before sweeping again when an owned zombie hides the others.
const BLOCKED_RETRY: Duration = Duration::from_millis(20);
/// Sweep at least this often even without SIGCHLD (signals coalesce; owners may reap late).
const SAFETY_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("cannot mark legate as child subreaper")]
    Subreaper(#[source] nix::Error),
    #[error("cannot listen for SIGCHLD")]
    Signal(#[source] io::Error),
}

/// Marks this process as a child subreaper, so orphans of its descendants are re-parented to it
/// even when it is not PID 1 (`shareProcessNamespace`, `docker run --init`). Harmless as PID 1.
pub fn set_subreaper() -> Result<(), ReaperError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(ReaperError::Subreaper)
}

/// A registered owned pid. Keep it until the owner has waited for the child, then drop it.
#[derive(Debug)]
pub struct Owned {
    pid: i32,
}

impl Owned {
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        lock().remove(&self.pid);
    }
}

/// Whether `pid` is currently registered as owned.
pub fn is_owned(pid: u32) -> bool {
    lock().contains(&(pid as i32))
}

/// Spawns a child with `spawn` (which returns the child and its pid) while holding the registry
/// lock, and registers the pid as owned. The returned [`Owned`] must outlive the owner's wait.
pub fn spawn_owned<T>(spawn: impl FnOnce() -> io::Result<(T, u32)>) -> io::Result<(T, Owned)> {
    let mut owned = lock();
    let (child, pid) = spawn()?;
    let pid = pid as i32;
    owned.insert(pid);
    Ok((child, Owned { pid }))
}

/// Runs a command to completion as an owned child and collects its output (e.g. `envoy --mode
/// validate`). `kill_on_drop` is set so a cancelled caller leaves nothing behind.
pub async fn output(mut cmd: tokio::process::Command) -> io::Result<std::process::Output> {
    cmd.kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (child, owned) = spawn_owned(|| {
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child has no pid"))?;
        Ok((child, pid))
    })?;
    let out = child.wait_with_output().await;
    drop(owned);
    out
}

fn lock() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running reaper task. Dropping it stops the task.
#[derive(Debug)]
pub struct Reaper {
    reaped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Reaper {
    /// Marks legate as subreaper and starts the reaper task on the current runtime.
    pub fn spawn() -> Result<Reaper, ReaperError> {
        set_subreaper()?;
        let mut sigchld = signal(SignalKind::child()).map_err(ReaperError::Signal)?;
        let reaped = Arc::new(AtomicU64::new(0));
        let counter = reaped.clone();
        let span = tracing::info_span!("reaper");
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                loop {
                    let sweep = sweep();
                    counter.fetch_add(sweep.reaped, Ordering::Relaxed);
                    let wait = if sweep.blocked {
                        BLOCKED_RETRY
                    } else {
                        SAFETY_INTERVAL
                    };
                    tokio::select! {
                        _ = sigchld.recv() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            },
            span,
        ));
        tracing::debug!("zombie reaper started");
        Ok(Reaper { reaped, task })
    }

    /// Resolves when the reaper task ends: it loops forever, so only a panic ends it.
    pub async fn ended(&mut self) -> Result<(), tokio::task::JoinError> {
        (&mut self.task).await
    }

    /// Orphans reaped so far (owned children are not counted: their owners reap them).
    pub fn reaped(&self) -> u64 {
        self.reaped.load(Ordering::Relaxed)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Result of one sweep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Zombies reaped.
    pub reaped: u64,
    /// Stopped at an owned zombie (its owner has not waited yet).
    pub blocked: bool,
}

/// Reaps every zombie child that is not owned, until none is left or an owned one is next.
pub fn sweep() -> Sweep {
    let mut out = Sweep::default();
    loop {
        let owned = lock();
        let pid = match peek() {
            Ok(Some(pid)) => pid,
            Ok(None) => return out,
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return out,
            Err(e) => {
                tracing::warn!(error = %e, "reaper cannot peek at children");
                return out;
            }
        };
        if owned.contains(&pid) {
            out.blocked = true;
            return out;
        }
        match reap(pid) {
            Ok(status) => {
                out.reaped += 1;
                tracing::debug!(pid, status = %status, "reaped orphan");
            }
            Err(e) => {
                tracing::warn!(pid, error = %e, "reaper cannot reap a zombie");
                return out;
            }
        }
    }
}

/// The pid of some zombie child, without reaping it.
fn peek() -> io::Result<Option<i32>> {
    // SAFETY: `info` is a plain C struct that waitid fills; zeroed memory is a valid value and
    // si_pid stays 0 when no child is waitable (WNOHANG). libc is used rather than nix because
    // nix fails to decode a child killed by a real-time signal, which would wedge the reaper.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let pid = info.si_pid();
        Ok((pid != 0).then_some(pid))
    }
}

/// Reaps one specific zombie and describes its status.
fn reap(pid: i32) -> io::Result<String> {
    let mut status = 0;
    // SAFETY: waitpid on a specific pid with a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("raw {status}")
    })
}
