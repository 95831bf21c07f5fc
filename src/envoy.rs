//! Everything about the Envoy child process: finding the binary (`locate`), the bootstrap
//! (`bootstrap`), the admin client (`admin`), spawning it (`process`) and keeping it healthy,
//! restarting and draining it (`supervisor`).

pub mod admin;
pub mod bootstrap;
pub mod locate;
pub mod process;
pub mod supervisor;

pub use crate::address::{Address, AddressError};
pub use locate::{LocateError, locate};
pub use supervisor::{EnvoyStatus, Handle, Supervisor, SupervisorError};

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
