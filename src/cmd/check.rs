//! `legate check DIR`: validates a config directory for users' CI pipelines.
//!
//! Every problem is printed on stdout, one per line, in `ResourceError`'s one-line form
//! (`file#doc: [warning: ]Kind namespace/name: field: message`), sorted by file and document; a
//! one-line summary goes to stderr. The check covers everything `legate run` would do short of
//! starting Envoy: reading, translation, and building the Envoy resources.
//!
//! Exit codes: 0 when every resource is valid (warnings allowed), 1 when at least one error
//! left a resource out, 2 when the directory is missing or cannot be read.

use std::io::Write;
use std::path::Path;

use super::{load, print_problems};
use crate::api::{Origin, ResourceError};
use crate::source::LoadOptions;
use crate::translate::Options;
use crate::xds::resources;

/// Every resource is valid (there may be warnings).
pub const EXIT_VALID: u8 = 0;
/// At least one resource has an error.
pub const EXIT_INVALID: u8 = 1;
/// The directory is missing or cannot be read.
pub const EXIT_UNUSABLE: u8 = 2;

/// Runs `legate check`: problems to `out`, the summary to `err`. Returns the exit code.
pub fn check(
    dir: &Path,
    options: &Options,
    load_options: &LoadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut loaded = match load(dir, options, load_options) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(err, "legate check: {}", crate::error::Chain(&e));
            return EXIT_UNUSABLE;
        }
    };
    // The translation guarantees a consistent IR; should it ever not, Envoy would never see
    // this configuration, and CI must hear about it.
    if let Err(e) = resources::snapshot(&loaded.translation.ir, 1, "check") {
        loaded.problems.push(ResourceError {
            origin: Origin::Builtin,
            kind: String::new(),
            name: String::new(),
            field: None,
            message: format!("configuration cannot be served: {e}"),
            warning: false,
        });
    }
    let errors = loaded.problems.iter().filter(|p| !p.warning).count();
    let warnings = loaded.problems.len() - errors;
    if let Err(e) = print_problems(&loaded.problems, out).and_then(|()| out.flush()) {
        let _ = writeln!(err, "legate check: cannot write the report: {e}");
    }
    let _ = writeln!(
        err,
        "legate check: {}: {errors} error(s), {warnings} warning(s)",
        dir.display()
    );
    if errors == 0 {
        EXIT_VALID
    } else {
        EXIT_INVALID
    }
}
