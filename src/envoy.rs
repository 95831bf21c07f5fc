//! Everything about the Envoy child process: finding the binary (`locate`), the bootstrap
//! (`bootstrap`), the admin client (`admin`), spawning it (`process`) and keeping it healthy,
//! restarting and draining it (`supervisor`).

pub mod admin;
pub mod bootstrap;
pub mod locate;
pub mod process;
pub mod supervisor;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use locate::{LocateError, locate};
pub use supervisor::{EnvoyStatus, Handle, Supervisor, SupervisorError};

/// Where Envoy's admin or legate's ADS server listens: a unix socket or a loopback TCP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` is neither `unix` nor a host:port address")]
    Invalid(String),
    #[error("`{0}` is not a loopback address; Envoy admin and ADS stay off the network")]
    NotLoopback(String),
}

impl Address {
    /// Parses a setting: `unix` means the socket `unix_path`, anything else must be a loopback
    /// `host:port` (port 0 lets the listener pick one).
    pub fn from_setting(value: &str, unix_path: PathBuf) -> Result<Address, AddressError> {
        if value == "unix" {
            return Ok(Address::Unix(unix_path));
        }
        let addr: SocketAddr = value
            .parse()
            .map_err(|_| AddressError::Invalid(value.to_string()))?;
        if !addr.ip().is_loopback() {
            return Err(AddressError::NotLoopback(value.to_string()));
        }
        Ok(Address::Tcp(addr))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Envoy's state as the supervisor sees it. The middle four are Envoy's own server states
/// (`/server_info` `state`); `Down` and `Starting` are the supervisor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// No Envoy process (before the first start, between restarts, after the stop).
    Down,
    /// The process runs but its admin has not answered yet.
    Starting,
    PreInitializing,
    Initializing,
    Live,
    Draining,
}

impl State {
    /// Parses Envoy's `/server_info` state name.
    pub fn from_envoy(s: &str) -> Option<State> {
        Some(match s {
            "LIVE" => State::Live,
            "DRAINING" => State::Draining,
            "PRE_INITIALIZING" => State::PreInitializing,
            "INITIALIZING" => State::Initializing,
            _ => return None,
        })
    }

    /// The `legate_envoy_state` gauge value: Envoy's `server.state` numbering, -1 when there is
    /// no answering Envoy.
    pub fn gauge(self) -> i64 {
        match self {
            State::Live => 0,
            State::Draining => 1,
            State::PreInitializing => 2,
            State::Initializing => 3,
            State::Down | State::Starting => -1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_settings() {
        let sock = PathBuf::from("/run/legate/admin.sock");
        assert_eq!(
            Address::from_setting("unix", sock.clone()).unwrap(),
            Address::Unix(sock.clone())
        );
        assert_eq!(
            Address::from_setting("127.0.0.1:0", sock.clone()).unwrap(),
            Address::Tcp("127.0.0.1:0".parse().unwrap())
        );
        assert!(matches!(
            Address::from_setting("0.0.0.0:9901", sock.clone()),
            Err(AddressError::NotLoopback(_))
        ));
        assert!(matches!(
            Address::from_setting("nope", sock),
            Err(AddressError::Invalid(_))
        ));
    }
}
