//! How errors are shown to a person: the whole chain, once.
//!
//! The convention (issue 9, item 3): an error's own message says what failed, its cause goes in
//! `#[source]` and is never repeated in the message; wherever an error leaves the program (the
//! exit message, a log line) it is printed with [`Chain`], which appends every cause:
//! "probe listener: cannot bind 0.0.0.0:8877: Address already in use (os error 98)".

use std::fmt;

/// Displays an error followed by each of its sources, separated by `: `.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot bind {0}")]
    struct Bind(&'static str, #[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("probe listener")]
    struct Start(#[source] Bind);

    #[test]
    fn every_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let e = Start(Bind("0.0.0.0:8877", io));
        assert_eq!(
            Chain(&e).to_string(),
            "probe listener: cannot bind 0.0.0.0:8877: address in use"
        );
    }
}
