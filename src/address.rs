//! Where Envoy's admin and legate's ADS server listen: a unix socket or a loopback TCP address.
//!
//! One type and one parser for both settings (`envoy.admin`, `xds.address`) and for the
//! settings check. Both endpoints carry full control over Envoy and have no authentication,
//! so nothing else is accepted.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A unix socket path or a loopback `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` is neither `unix` nor a loopback ip:port such as 127.0.0.1:0")]
    Invalid(String),
    #[error(
        "`{0}` is not a loopback address; Envoy's admin and the ADS server stay off the network"
    )]
    NotLoopback(String),
}

impl Address {
    /// Parses a setting: `unix` means the socket `unix_path`, anything else must be a loopback
    /// `ip:port` (port 0 lets the listener pick one).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_or_loopback_only() {
        let unix = PathBuf::from("/run/x.sock");
        let parse = |v: &str| Address::from_setting(v, unix.clone());
        assert_eq!(parse("unix").unwrap(), Address::Unix(unix.clone()));
        assert!(matches!(parse("127.0.0.1:0"), Ok(Address::Tcp(_))));
        assert!(matches!(parse("[::1]:9901"), Ok(Address::Tcp(_))));
        for bad in ["0.0.0.0:18000", "10.1.2.3:1", "[::]:1"] {
            assert!(
                matches!(parse(bad), Err(AddressError::NotLoopback(_))),
                "{bad}"
            );
        }
        // Neither a path form nor host names: `unix` and ip:port are the whole syntax.
        for bad in ["nonsense", "unix:/a/b", "localhost:0", "127.0.0.1"] {
            assert!(matches!(parse(bad), Err(AddressError::Invalid(_))), "{bad}");
        }
        assert_eq!(parse("unix").unwrap().to_string(), "unix:/run/x.sock");
    }
}
