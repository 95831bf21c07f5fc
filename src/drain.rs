//! The shutdown trigger shared by every task.
//!
//! `Trigger::start` begins a graceful drain (first SIGTERM/SIGINT or the admin POST); a second
//! request escalates to `Fast` (exit now). Tasks hold a [`Watch`] and wait on `started()` or
//! `phase()`. Shutdown flows one way: signal → not ready → Envoy drains → Envoy stopped →
//! tasks stop.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    /// Graceful drain requested.
    Draining,
    /// Exit as soon as possible (second signal, SIGQUIT).
    Fast,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    tx: std::sync::Arc<watch::Sender<(Phase, &'static str)>>,
}

#[derive(Debug, Clone)]
pub struct Watch {
    rx: watch::Receiver<(Phase, &'static str)>,
}

pub fn channel() -> (Trigger, Watch) {
    let (tx, rx) = watch::channel((Phase::Running, ""));
    (
        Trigger {
            tx: std::sync::Arc::new(tx),
        },
        Watch { rx },
    )
}

impl Trigger {
    /// Requests a graceful drain; a second request (while draining) escalates to `Fast`.
    /// Returns the phase now in force.
    pub fn start(&self, reason: &'static str) -> Phase {
        let mut now = Phase::Running;
        self.tx.send_modify(|(phase, why)| {
            *phase = match *phase {
                Phase::Running => Phase::Draining,
                _ => Phase::Fast,
            };
            *why = reason;
            now = *phase;
        });
        now
    }

    /// Requests an immediate exit.
    pub fn fast(&self, reason: &'static str) {
        self.tx.send_replace((Phase::Fast, reason));
    }

    pub fn watch(&self) -> Watch {
        Watch {
            rx: self.tx.subscribe(),
        }
    }
}

impl Watch {
    pub fn phase(&self) -> Phase {
        self.rx.borrow().0
    }

    pub fn reason(&self) -> &'static str {
        self.rx.borrow().1
    }

    /// Resolves once the phase is at least `phase`.
    pub async fn reached(&mut self, phase: Phase) {
        let _ = self.rx.wait_for(|(p, _)| *p >= phase).await;
    }

    /// Resolves once any drain (graceful or fast) has been requested.
    pub async fn started(&mut self) {
        self.reached(Phase::Draining).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_request_escalates_to_fast() {
        let (trigger, mut watch) = channel();
        assert_eq!(watch.phase(), Phase::Running);
        assert_eq!(trigger.start("SIGTERM"), Phase::Draining);
        watch.started().await;
        assert_eq!(watch.reason(), "SIGTERM");
        assert_eq!(trigger.start("SIGTERM"), Phase::Fast);
        watch.reached(Phase::Fast).await;
        assert_eq!(watch.phase(), Phase::Fast);
    }
}
