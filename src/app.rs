//! The one wiring function: settings in, exit code out.
//!
//! PLACEHOLDER BODY (runtime task): it starts the heartbeat, the probe and the admin
//! listeners, waits for a drain request and exits. The lead replaces the body with the full
//! wiring (sources → translate → xds → Envoy supervisor, drain sequence); the signature is what
//! `main` calls.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::{Config, Env};
use crate::drain::{Phase, Trigger};
use crate::metrics::Metrics;
use crate::readiness::Ready;
use crate::{admin, exit, probe, signal};

/// What `main` set up before the settings were loaded: the signal thread feeds `trigger`, and
/// forwards SIGUSR1 to the pid stored in `envoy_pid` (0 = no Envoy).
#[derive(Debug, Clone)]
pub struct Signals {
    pub trigger: Trigger,
    pub envoy_pid: signal::EnvoyPid,
}

/// Runs legate until it drains or fails; returns the process exit code (see [`crate::exit`]).
pub async fn run(config: Config, env: Env, signals: Signals) -> u8 {
    let _ = env; // the full wiring passes it to the sources and the Envoy locator
    let ready = Ready::new();
    let metrics = Arc::new(Metrics::default());

    // 1. liveness: the heartbeat proves the event loop runs
    let heartbeat = probe::Heartbeat::default();
    let beat = heartbeat.spawn();

    // 2. probe and admin listeners
    let probe = match probe::Server::bind(config.probe.address, ready.clone(), heartbeat).await {
        Ok(p) => p,
        Err(error) => {
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "cannot start");
            return exit::FATAL;
        }
    };
    let settings = serde_json::to_value(&config).unwrap_or_default();
    let mut views = admin::Views::new(settings);
    let pid = signals.envoy_pid.clone();
    views.envoy_pid = Arc::new(move || Some(pid.load(Ordering::Acquire)).filter(|p| *p != 0));
    let admin = match admin::Server::bind(&config.admin, views, metrics, signals.trigger.clone())
        .await
    {
        Ok(a) => a,
        Err(error) => {
            tracing::error!(error = %error, source = ?std::error::Error::source(&error), "cannot start");
            return exit::FATAL;
        }
    };
    tracing::info!(probe = %probe.local_addr(), admin = %admin.local_addr(), "listening");
    let tasks = [probe.spawn(), admin.spawn(), beat];

    // 3. wait for a drain request; readiness goes false at once
    let draining = ready.guard("not draining");
    draining.release();
    let mut watch = signals.trigger.watch();
    watch.started().await;
    draining.block();
    let code = match watch.phase() {
        Phase::Fast => exit::FORCED,
        _ => exit::CLEAN,
    };
    tracing::info!(reason = watch.reason(), code, "exiting");
    for task in tasks {
        task.abort();
    }
    code
}
