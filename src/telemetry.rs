//! Process-wide logging: a `tracing` subscriber writing text or JSON lines to stderr.
//!
//! The filter comes from `log.level`, unless `RUST_LOG` is set (read through [`Env`], like
//! every environment variable). stderr keeps stdout free for the one-shot commands' output
//! (`legate translate` prints resources there).

use tracing_subscriber::EnvFilter;

use crate::config::{Env, LogSettings};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid setting {from}: not a log filter, got {filter}")]
    Filter {
        filter: String,
        from: &'static str,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// The effective filter: `RUST_LOG` when set and non-empty, else `log.level`.
pub fn filter(log: &LogSettings, env: &Env) -> Result<EnvFilter, TelemetryError> {
    let (filter, from) = match env.non_empty("RUST_LOG") {
        Some(f) => (f, "RUST_LOG"),
        None => (log.level.as_str(), "log.level"),
    };
    EnvFilter::try_new(filter).map_err(|source| TelemetryError::Filter {
        filter: filter.to_string(),
        from,
        source,
    })
}

/// Installs the global subscriber. Call once, after the settings are loaded.
pub fn init(log: &LogSettings, env: &Env) -> Result<(), TelemetryError> {
    let filter = filter(log, env)?;
    // Colour only on a terminal: container logs must not carry escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = if log.format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
    installed.map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_overrides_the_setting() {
        let log = LogSettings {
            format: "text".into(),
            level: "warn".into(),
        };
        let env: Env = [("RUST_LOG", "legate=trace")].into_iter().collect();
        assert_eq!(filter(&log, &env).unwrap().to_string(), "legate=trace");
        assert_eq!(filter(&log, &Env::default()).unwrap().to_string(), "warn");
        let bad: Env = [("RUST_LOG", "legate=[")].into_iter().collect();
        let err = filter(&log, &bad).unwrap_err().to_string();
        assert!(err.contains("RUST_LOG"), "{err}");
    }
}
