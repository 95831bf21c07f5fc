//! `legate translate DIR [--output ir|envoy] [--format json|yaml]`: prints what legate would
//! serve for a config directory.
//!
//! Exit codes: 0 when the document was printed, even if some resources had errors (they are
//! left out of the output, exactly as `legate run` leaves them out, and every problem is
//! printed on stderr, one per line); 1 when the directory cannot be read or the output cannot
//! be produced or written. `legate check` is the command that fails on resource errors.

use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use super::{Format, Output, load, print_problems};
use crate::source::LoadOptions;
use crate::translate::Options;
use crate::xds::{Snapshot, resources};

/// Printed, then exit code 0.
pub const EXIT_OK: u8 = 0;
/// The directory cannot be read, or the output cannot be produced or written.
pub const EXIT_FAILED: u8 = 1;

/// Boot id of the one-shot snapshot: versions are not part of the printed resources.
const BOOT_ID: &str = "translate";

/// Runs `legate translate`: the document goes to `out`, problems to `err`. Returns the exit
/// code.
pub fn translate(
    dir: &Path,
    output: Output,
    format: Format,
    options: &Options,
    load_options: &LoadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    run(dir, output, format, options, load_options, out, err, drop)
}

/// [`translate`] for a process that exits right after (the `legate translate` command): what
/// is still allocated once the document is printed (Envoy resources, problems) is not freed
/// but left to the process exit: freeing tens of thousands of small allocations one by one
/// is slower than the operating system reclaiming the whole heap at once. (The objects read
/// and the IR are freed as soon as they are no longer needed, so later phases reuse their
/// memory.)
pub fn translate_once(
    dir: &Path,
    output: Output,
    format: Format,
    options: &Options,
    load_options: &LoadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    run(
        dir,
        output,
        format,
        options,
        load_options,
        out,
        err,
        std::mem::forget,
    )
}

/// What becomes of the command's data once printed: dropped, or forgotten.
type Dispose = fn(Box<dyn std::any::Any>);

#[allow(clippy::too_many_arguments)]
fn run(
    dir: &Path,
    output: Output,
    format: Format,
    options: &Options,
    load_options: &LoadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    dispose: Dispose,
) -> u8 {
    let mut loaded = match load(dir, options, load_options) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(err, "legate translate: {}", crate::error::Chain(&e));
            return EXIT_FAILED;
        }
    };
    // Problems first: they explain what is missing from the document that follows.
    let _ = print_problems(&loaded.problems, err);
    let printed = match output {
        Output::Ir => print(&loaded.translation.ir, format, out),
        Output::Envoy => {
            let snapshot = resources::snapshot(&loaded.translation.ir, 1, BOOT_ID);
            // The IR is freed once the resources are built (not left to the exit): rendering
            // reuses its memory, which keeps the peak RSS down.
            drop(std::mem::take(&mut loaded.translation.ir));
            match snapshot {
                Ok(snapshot) => {
                    let printed = print_envoy(&snapshot, format, out);
                    dispose(Box::new(snapshot));
                    printed
                }
                Err(e) => Err(format!("cannot build the Envoy resources: {e}")),
            }
        }
    };
    dispose(Box::new(loaded));
    match printed {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "legate translate: {e}");
            EXIT_FAILED
        }
    }
}

/// The Envoy resources: JSON is streamed resource by resource (no whole-document tree); YAML
/// goes through the JSON tree, as [`print`] does.
fn print_envoy(snapshot: &Snapshot, format: Format, out: &mut dyn Write) -> Result<(), String> {
    match format {
        Format::Json => {
            let mut buf = BufWriter::with_capacity(1 << 16, out);
            resources::write_json(snapshot, &mut buf).map_err(|e| match e {
                resources::Error::Write(e) => format!("cannot write the output: {e}"),
                e => format!("cannot build the Envoy resources: {e}"),
            })?;
            buf.write_all(b"\n")
                .and_then(|()| buf.flush())
                .map_err(|e| format!("cannot write the output: {e}"))
        }
        Format::Yaml => {
            let json = resources::to_json(snapshot)
                .map_err(|e| format!("cannot build the Envoy resources: {e}"))?;
            print(&json, format, out)
        }
    }
}

/// Serializes `value` to `out` through one buffer (stdout is line-buffered: a pretty document
/// of 5,000 routes would otherwise be a write per line).
fn print(value: &impl Serialize, format: Format, out: &mut dyn Write) -> Result<(), String> {
    let mut buf = BufWriter::with_capacity(1 << 16, out);
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut buf, value).map_err(|e| e.to_string())?;
            buf.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        Format::Yaml => {
            // Through JSON's data model, so the YAML is the same document as the JSON: serde_yaml
            // would write enum variants as YAML tags (`!Route`), which other tools cannot read.
            let value = serde_json::to_value(value).map_err(|e| e.to_string())?;
            serde_yaml::to_writer(&mut buf, &value).map_err(|e| e.to_string())?
        }
    }
    buf.flush()
        .map_err(|e| format!("cannot write the output: {e}"))
}
