//! Everything about the Envoy child process: finding the binary (`locate`), the bootstrap,
//! the admin client and the supervised process.

pub mod locate;

pub use locate::{LocateError, locate};
