//! Drain steps 3–5 of ARCHITECTURE.md#drain-sequence (rules: docs/design.md#drain), run by the
//! supervisor task once the app
//! has flipped readiness: `drain_listeners?graceful&skip_exit`, a minimum wait, polling the
//! data-plane connection count until zero or the deadline, then stopping and reaping Envoy.
//!
//! In Envoy 1.40 `graceful&skip_exit` keeps the listeners accepting (so load balancers that
//! are slow to deregister lose nothing) while every HTTP response carries `Connection: close`.
//! At the deadline a plain `drain_listeners` stops accepting (a second `?graceful` would be a
//! no-op), then `/quitquitquit`, SIGTERM and SIGKILL follow. If Envoy dies meanwhile, or a
//! `stop_now` arrives (second signal), the drain ends at once.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::{Process, Request, State, Supervisor};
use crate::config::DrainSettings;
use crate::envoy::admin::AdminError;
use crate::envoy::process::ExitInfo;

/// Admin POSTs are retried this many times, this far apart (Contour does 4 × 200 ms).
const POST_ATTEMPTS: u32 = 4;
const POST_RETRY: Duration = Duration::from_millis(200);

/// What a drain achieved; `completed` decides between a clean and a forced exit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DrainOutcome {
    /// No data-plane connection was left before the deadline (or there was no Envoy).
    pub completed: bool,
    /// The last data-plane connection count read, if any.
    pub active_connections: Option<u64>,
    /// Envoy died on its own during the drain (it was not stopped by legate).
    pub envoy_died: bool,
    /// Envoy's exit, if an Envoy was running.
    pub envoy_exit: Option<ExitInfo>,
}

impl DrainOutcome {
    pub(super) fn nothing_to_drain() -> DrainOutcome {
        DrainOutcome {
            completed: true,
            active_connections: None,
            envoy_died: false,
            envoy_exit: None,
        }
    }

    fn cut_short(exit: ExitInfo, active: Option<u64>) -> DrainOutcome {
        DrainOutcome {
            completed: false,
            active_connections: active,
            envoy_died: false,
            envoy_exit: Some(exit),
        }
    }

    fn died(exit: ExitInfo, active: Option<u64>) -> DrainOutcome {
        tracing::error!(exit = %exit, "envoy died during the drain");
        DrainOutcome {
            completed: false,
            active_connections: active,
            envoy_died: true,
            envoy_exit: Some(exit),
        }
    }
}

impl Supervisor {
    pub(super) async fn drain(
        &mut self,
        envoy: &Process,
        d: &DrainSettings,
        deadline: Instant,
    ) -> DrainOutcome {
        let started = Instant::now();
        self.guard.block();
        self.metrics.envoy_live.set(0);
        self.metrics.envoy_state.set(State::Draining.gauge());
        self.status.send_modify(|s| s.state = State::Draining);
        let remaining = deadline.saturating_duration_since(started);
        tracing::info!(pid = envoy.pid(), ?remaining, "draining envoy");
        let Some(client) = self.admin.borrow().clone() else {
            // The admin address never became known: Envoy never served anything.
            let exit = self.stop(envoy, false).await;
            return DrainOutcome {
                envoy_exit: Some(exit),
                ..DrainOutcome::nothing_to_drain()
            };
        };

        // Step 3: ask for Connection: close / GOAWAY while still accepting.
        if let Err(error) = retry(|| client.drain_listeners(true, true)).await {
            tracing::warn!(%error, "envoy drain_listeners failed; waiting for connections anyway");
        }

        // Step 4: at least the minimum, then until no data-plane connection is left.
        let min_until = (started + Duration::from_millis(d.min_ms)).min(deadline);
        match self.pause(envoy, min_until).await {
            Pause::Elapsed => {}
            Pause::Died(exit) => return DrainOutcome::died(exit, None),
            Pause::Stopped(exit) => return DrainOutcome::cut_short(exit, None),
        }
        let poll = Duration::from_millis(d.poll_ms.max(10));
        let mut active = None;
        let completed = loop {
            match client.downstream_cx_active(&self.excluded).await {
                Ok(0) => {
                    active = Some(0);
                    break true;
                }
                Ok(n) => active = Some(n),
                Err(error) => tracing::warn!(%error, "cannot count envoy connections"),
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            tracing::debug!(active, "envoy still has connections");
            match self.pause(envoy, (now + poll).min(deadline)).await {
                Pause::Elapsed => {}
                Pause::Died(exit) => return DrainOutcome::died(exit, active),
                Pause::Stopped(exit) => return DrainOutcome::cut_short(exit, active),
            }
        };

        // Step 5: stop accepting if connections are left, then stop Envoy and reap it.
        if completed {
            tracing::info!(elapsed = ?started.elapsed(), "envoy drained");
        } else {
            tracing::warn!(active, "drain deadline reached with connections open");
            if let Err(error) = client.drain_listeners(false, false).await {
                tracing::debug!(%error, "envoy drain_listeners (stop) failed");
            }
        }
        let exit = self.stop(envoy, true).await;
        tracing::info!(exit = %exit, "envoy stopped");
        DrainOutcome {
            completed,
            active_connections: active,
            envoy_died: false,
            envoy_exit: Some(exit),
        }
    }
}

/// How a wait inside the drain ended.
enum Pause {
    Elapsed,
    /// Envoy died on its own.
    Died(ExitInfo),
    /// A `stop_now` arrived (second signal): Envoy was stopped at once.
    Stopped(ExitInfo),
}

impl Supervisor {
    /// Waits until `until` unless Envoy dies or a `stop_now` arrives first; forwards signals.
    async fn pause(&mut self, envoy: &Process, until: Instant) -> Pause {
        loop {
            tokio::select! {
                exit = envoy.wait() => return Pause::Died(exit),
                _ = tokio::time::sleep_until(until) => return Pause::Elapsed,
                req = self.requests.recv(), if self.requests_open => match req {
                    None => self.requests_open = false,
                    Some(Request::Signal(sig)) => envoy.signal(sig),
                    Some(Request::StopNow { reply }) => {
                        tracing::warn!("stop requested during the drain; stopping envoy now");
                        let exit = self.stop(envoy, false).await;
                        let _ = reply.send(Some(exit));
                        return Pause::Stopped(exit);
                    }
                    // Already draining: that caller gets this drain's outcome too.
                    Some(Request::Drain { reply, .. }) => self.drain_waiters.push(reply),
                },
            }
        }
    }
}

async fn retry<F, Fut>(f: F) -> Result<(), AdminError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), AdminError>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= POST_ATTEMPTS => return Err(e),
            Err(error) => {
                tracing::debug!(%error, attempt, "envoy admin call failed; retrying");
                attempt += 1;
                tokio::time::sleep(POST_RETRY).await;
            }
        }
    }
}
