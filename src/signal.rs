//! Signal handling: a dedicated thread turns signals into drain requests (docs/design.md#signals).
//!
//! | signal            | action                                                          |
//! |-------------------|-----------------------------------------------------------------|
//! | SIGTERM, SIGINT   | first: graceful drain; second: fast exit (`drain::Trigger::start`) |
//! | SIGQUIT           | fast exit                                                       |
//! | SIGUSR1           | handed to Envoy's supervisor, which signals Envoy (reopens logs) |
//! | SIGHUP            | logged and ignored (never forwarded; Envoy ignores it anyway)   |
//! | SIGTTIN, SIGTTOU  | ignored (PID 1 must not be stopped by terminal I/O)             |
//!
//! Register first thing in `main`, before anything slow, so that a SIGTERM arriving during
//! start-up is not lost (PID 1 has no default handlers: an unhandled SIGTERM does nothing).
//! The app turns a `Fast` phase into exit code 4; as a safety net, when `fast_exit_after` is
//! set, this thread exits the process itself if the app has not done so in time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1};
use signal_hook::iterator::Signals;

use crate::drain::{Phase, Trigger};
use crate::exit;

/// The signals legate handles.
pub const HANDLED: &[i32] = &[SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGTTIN, SIGTTOU];

/// Where signals meant for Envoy go: a forwarder installed by Envoy's owner (the app installs
/// the Envoy supervisor's handle once it runs, and removes it when it stops). The signal
/// thread never signals a pid itself: only the supervisor, which reaps Envoy, knows that a pid
/// is still its Envoy.
#[derive(Default)]
pub struct EnvoyForward(Mutex<Option<Forwarder>>);

type Forwarder = Box<dyn Fn(Signal) -> bool + Send>;

impl EnvoyForward {
    /// Installs the owner's forwarder; it returns whether the signal was handed on.
    pub fn set(&self, forward: impl Fn(Signal) -> bool + Send + 'static) {
        *self.lock() = Some(Box::new(forward));
    }

    /// Removes the forwarder: signals for Envoy are dropped (logged) from now on.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    fn forward(&self, signal: Signal) -> Option<bool> {
        self.lock().as_ref().map(|f| f(signal))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Forwarder>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for EnvoyForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.lock().is_some() {
            "EnvoyForward(set)"
        } else {
            "EnvoyForward(unset)"
        })
    }
}

/// The forwarder shared by the signal thread and the app. (The name is historical: it used to
/// hold Envoy's pid.)
pub type EnvoyPid = Arc<EnvoyForward>;

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot register signal handlers")]
    Register(#[source] std::io::Error),
    #[error("cannot start the signal thread")]
    Thread(#[source] std::io::Error),
}

/// What one signal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The drain phase now in force.
    Drain(Phase),
    /// Forwarded to Envoy (`false` when no Envoy was running or the kill failed).
    Forwarded(bool),
    Ignored,
}

/// The running signal thread. Dropping it leaves the handlers in place (they live as long as
/// the process); [`Registered::close`] stops the thread, for tests.
#[derive(Debug)]
pub struct Registered {
    handle: signal_hook::iterator::Handle,
}

impl Registered {
    pub fn close(&self) {
        self.handle.close();
    }
}

/// Registers the handlers and starts the signal thread.
pub fn register(
    trigger: Trigger,
    envoy: EnvoyPid,
    fast_exit_after: Option<Duration>,
) -> Result<Registered, SignalError> {
    let mut signals = Signals::new(HANDLED).map_err(SignalError::Register)?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut armed = false;
            for sig in signals.forever() {
                let action = handle_signal(sig, &trigger, &envoy);
                if action == Action::Drain(Phase::Fast) && !armed {
                    armed = true;
                    if let Some(after) = fast_exit_after {
                        watchdog(after);
                    }
                }
            }
        })
        .map_err(SignalError::Thread)?;
    Ok(Registered { handle })
}

/// Acts on one signal. Separate from the thread so tests can inject signal numbers.
pub fn handle_signal(sig: i32, trigger: &Trigger, envoy: &EnvoyForward) -> Action {
    let name = signal_name(sig);
    match sig {
        SIGTERM | SIGINT => {
            let phase = trigger.start(name);
            match phase {
                Phase::Fast => tracing::warn!(signal = name, "second signal: exiting now"),
                _ => tracing::info!(signal = name, "drain requested"),
            }
            Action::Drain(phase)
        }
        SIGQUIT => {
            tracing::warn!(signal = name, "exiting now");
            trigger.fast(name);
            Action::Drain(Phase::Fast)
        }
        SIGUSR1 => Action::Forwarded(forward(Signal::SIGUSR1, envoy)),
        SIGHUP => {
            tracing::info!(signal = name, "ignored");
            Action::Ignored
        }
        _ => Action::Ignored,
    }
}

fn forward(signal: Signal, envoy: &EnvoyForward) -> bool {
    match envoy.forward(signal) {
        None => {
            tracing::info!(%signal, "no envoy running: signal not forwarded");
            false
        }
        Some(true) => {
            tracing::info!(%signal, "forwarded to envoy's supervisor");
            true
        }
        Some(false) => {
            tracing::warn!(%signal, "envoy's supervisor cannot take the signal");
            false
        }
    }
}

/// Exits with [`exit::FORCED`] unless the app exits first.
fn watchdog(after: Duration) {
    let spawned = std::thread::Builder::new()
        .name("fast-exit".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::error!(
                after_ms = after.as_millis() as u64,
                "fast exit took too long: exiting"
            );
            std::process::exit(i32::from(exit::FORCED));
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the fast-exit watchdog");
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGUSR1 => "SIGUSR1",
        SIGHUP => "SIGHUP",
        SIGTTIN => "SIGTTIN",
        SIGTTOU => "SIGTTOU",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain;

    #[test]
    fn first_term_drains_second_is_fast() {
        let (trigger, watch) = drain::channel();
        let pid = EnvoyForward::default();
        assert_eq!(handle_signal(SIGHUP, &trigger, &pid), Action::Ignored);
        assert_eq!(handle_signal(SIGTTIN, &trigger, &pid), Action::Ignored);
        assert_eq!(watch.phase(), Phase::Running);
        assert_eq!(
            handle_signal(SIGTERM, &trigger, &pid),
            Action::Drain(Phase::Draining)
        );
        assert_eq!(watch.reason(), "SIGTERM");
        assert_eq!(
            handle_signal(SIGINT, &trigger, &pid),
            Action::Drain(Phase::Fast)
        );
        assert_eq!(watch.phase(), Phase::Fast);
    }

    #[test]
    fn quit_is_fast_at_once() {
        let (trigger, watch) = drain::channel();
        let pid = EnvoyForward::default();
        handle_signal(SIGQUIT, &trigger, &pid);
        assert_eq!((watch.phase(), watch.reason()), (Phase::Fast, "SIGQUIT"));
    }

    #[test]
    fn usr1_goes_to_the_owner_of_envoy() {
        let (trigger, _watch) = drain::channel();
        let envoy = EnvoyForward::default();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        envoy.set(move |sig| {
            seen.lock().unwrap().push(sig);
            true
        });
        assert_eq!(
            handle_signal(SIGUSR1, &trigger, &envoy),
            Action::Forwarded(true)
        );
        assert_eq!(*got.lock().unwrap(), [Signal::SIGUSR1]);
        envoy.clear();
        assert_eq!(
            handle_signal(SIGUSR1, &trigger, &envoy),
            Action::Forwarded(false)
        );
    }

    #[test]
    fn usr1_without_envoy_is_not_forwarded() {
        let (trigger, watch) = drain::channel();
        let pid = EnvoyForward::default();
        assert_eq!(
            handle_signal(SIGUSR1, &trigger, &pid),
            Action::Forwarded(false)
        );
        assert_eq!(watch.phase(), Phase::Running);
    }
}
