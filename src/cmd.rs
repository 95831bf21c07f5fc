//! The one-shot commands `legate translate DIR` and `legate check DIR`.
//!
//! TEMPORARY PLACEHOLDER: the lead replaces both bodies once the file source and the
//! translation are merged. Until then they say so and exit 2.

use crate::cli::{CheckArgs, TranslateArgs};
use crate::exit;

/// `legate translate DIR`: prints the IR or the Envoy resources. Returns the exit code.
pub fn translate(args: TranslateArgs) -> u8 {
    eprintln!("legate: translate {}: not built yet", args.dir.display());
    exit::INVALID_SETTINGS
}

/// `legate check DIR`: 0 when every resource is valid, 1 when some are not. Returns the exit
/// code.
pub fn check(args: CheckArgs) -> u8 {
    eprintln!("legate: check {}: not built yet", args.dir.display());
    exit::INVALID_SETTINGS
}
