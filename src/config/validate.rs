//! Checks on the merged settings that types alone cannot express: ranges, orderings between
//! settings, allowed words, and which addresses may be exposed. Each error names the setting
//! and the value that broke the rule.

use std::fmt::Display;
use std::path::PathBuf;

use super::{Config, ConfigError};
use crate::address::Address;

const ENVOY_LOG_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];
/// Longer than this and a burst of edits would hold back changes noticeably.
const MAX_DEBOUNCE_MS: u64 = 10_000;
/// gRPC's default 4 MiB is the floor: large Emissary configs need more, never less.
const MIN_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The first rule the settings break, if any.
pub fn validate(c: &Config) -> Result<(), ConfigError> {
    drain(c)?;
    envoy(c)?;
    addresses(c)?;
    let s = &c.source;
    check(
        (1..=MAX_DEBOUNCE_MS).contains(&s.debounce_ms),
        "source.debounce_ms",
        s.debounce_ms,
        "must be between 1 and 10000",
    )?;
    check(
        !s.ambassador_id.is_empty(),
        "source.ambassador_id",
        "\"\"",
        "must not be empty",
    )?;
    if let Some(ns) = &s.namespace {
        check(
            !ns.is_empty(),
            "source.namespace",
            "\"\"",
            "must not be empty",
        )?;
    }
    one_of(&c.log.format, "log.format", &["text", "json"])?;
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
        return Err(ConfigError::invalid(
            "log.level",
            &c.log.level,
            format!("not a log filter: {e}"),
        ));
    }
    check(
        c.xds.max_message_bytes >= MIN_MESSAGE_BYTES,
        "xds.max_message_bytes",
        c.xds.max_message_bytes,
        "must be at least 4194304 (4 MiB)",
    )
}

fn drain(c: &Config) -> Result<(), ConfigError> {
    let d = &c.drain;
    check(d.deadline_ms > 0, "drain.deadline_ms", 0, "must be above 0")?;
    check(
        d.min_ms <= d.deadline_ms,
        "drain.min_ms",
        d.min_ms,
        format!("must not exceed drain.deadline_ms ({})", d.deadline_ms),
    )?;
    check(
        d.delay_ms < d.deadline_ms,
        "drain.delay_ms",
        d.delay_ms,
        format!("must be below drain.deadline_ms ({})", d.deadline_ms),
    )?;
    check(d.poll_ms > 0, "drain.poll_ms", 0, "must be above 0")?;
    check(
        d.stop_timeout_ms > 0,
        "drain.stop_timeout_ms",
        0,
        "must be above 0",
    )
}

fn envoy(c: &Config) -> Result<(), ConfigError> {
    let e = &c.envoy;
    let r = &e.restart;
    check(
        r.budget > 0 || r.window_ms > 0,
        "envoy.restart.budget",
        0,
        "a restart budget of 0 within a window of 0 ms means nothing; set either",
    )?;
    check(
        r.initial_backoff_ms > 0,
        "envoy.restart.initial_backoff_ms",
        0,
        "must be above 0",
    )?;
    check(
        r.initial_backoff_ms <= r.max_backoff_ms,
        "envoy.restart.initial_backoff_ms",
        r.initial_backoff_ms,
        format!(
            "must not exceed envoy.restart.max_backoff_ms ({})",
            r.max_backoff_ms
        ),
    )?;
    one_of(
        &e.drain_strategy,
        "envoy.drain_strategy",
        &["immediate", "gradual"],
    )?;
    one_of(&e.log_level, "envoy.log_level", ENVOY_LOG_LEVELS)?;
    one_of(&e.stats, "envoy.stats", &["essential", "all"])?;
    one_of(&e.xds_protocol, "envoy.xds_protocol", &["delta", "sotw"])?;
    check(
        e.concurrency != Some(0),
        "envoy.concurrency",
        0,
        "must be above 0 (leave it unset to follow the CPU quota)",
    )?;
    check(
        e.health_interval_ms > 0,
        "envoy.health_interval_ms",
        0,
        "must be above 0",
    )?;
    check(
        e.unresponsive_timeout_ms > e.health_interval_ms,
        "envoy.unresponsive_timeout_ms",
        e.unresponsive_timeout_ms,
        format!(
            "must exceed envoy.health_interval_ms ({})",
            e.health_interval_ms
        ),
    )?;
    check(
        !e.node_id.is_empty(),
        "envoy.node_id",
        "\"\"",
        "must not be empty",
    )?;
    check(
        !e.node_cluster.is_empty(),
        "envoy.node_cluster",
        "\"\"",
        "must not be empty",
    )
}

fn addresses(c: &Config) -> Result<(), ConfigError> {
    let admin = c.admin.address;
    check(
        admin.ip().is_loopback() || c.admin.allow_non_loopback,
        "admin.address",
        admin,
        "must be a loopback address unless admin.allow_non_loopback is true",
    )?;
    unix_or_loopback(&c.xds.address, "xds.address")?;
    unix_or_loopback(&c.envoy.admin, "envoy.admin")?;
    let probe = c.probe.address;
    check(
        probe.port() == 0 || probe.port() != admin.port(),
        "probe.address",
        probe,
        format!("must not share a port with admin.address ({admin})"),
    )
}

/// Envoy's admin and the ADS server carry full control: never on a routable address.
fn unix_or_loopback(value: &str, path: &str) -> Result<(), ConfigError> {
    check(
        Address::from_setting(value, PathBuf::new()).is_ok(),
        path,
        value,
        "must be `unix` or a loopback ip:port such as 127.0.0.1:0",
    )
}

fn one_of(value: &str, path: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    check(
        allowed.contains(&value),
        path,
        value,
        format!("must be one of {}", allowed.join(", ")),
    )
}

fn check(
    ok: bool,
    path: &str,
    value: impl Display,
    reason: impl Into<String>,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(path, value, reason))
    }
}
