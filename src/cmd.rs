//! The one-shot commands `legate translate DIR` and `legate check DIR`: read a config directory
//! once with the file source, translate it, and print the result or the problems.
//!
//! The logic lives in [`translate`] and [`check`] as plain functions over writers, so tests
//! run them in-process; the CLI only parses flags and passes `stdout`/`stderr`. Both commands
//! see exactly what `legate run --config-dir DIR` would serve: the same reader
//! ([`load_dir`]), the same translation, the same snapshot builder.

pub mod check;
pub mod probe;
pub mod translate;

use std::path::Path;

use crate::cli::{CheckArgs, TranslateArgs};
use crate::config::Env;

use crate::api::ResourceError;
use crate::source::{LoadOptions, SourceError, load_dir};
use crate::translate::{Options, Translation};

/// What `legate translate` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The IR (legate's semantic model), as JSON/YAML of [`crate::ir::Ir`].
    #[default]
    Ir,
    /// Envoy's resources in Envoy's JSON form: `{listeners, route_configurations, clusters,
    /// endpoints, secrets}`, private keys redacted.
    Envoy,
}

/// How `legate translate` prints it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Json,
    Yaml,
}

/// A directory read and translated, with every problem found on the way.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub translation: Translation,
    /// Problems of the reader and of the translation (warnings included), sorted by origin.
    pub problems: Vec<ResourceError>,
}

/// Reads `dir` once and translates it, as the `run` pipeline does for every source state.
pub(crate) fn load(
    dir: &Path,
    options: &Options,
    load: &LoadOptions,
) -> Result<Loaded, SourceError> {
    // The objects read are freed on return: the translation no longer needs them, and later
    // phases reuse their memory.
    let state = load_dir(dir, load)?;
    let translation = crate::translate::translate(&state.objects, options);
    let mut problems = state.errors;
    problems.extend(translation.errors.iter().cloned());
    problems.sort();
    problems.dedup();
    Ok(Loaded {
        translation,
        problems,
    })
}

/// Prints each problem on its own line (`ResourceError`'s one-line form). Write errors are
/// returned so a closed pipe ends the command.
pub(crate) fn print_problems(
    problems: &[ResourceError],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    for p in problems {
        writeln!(out, "{p}")?;
    }
    Ok(())
}

/// What both commands need from the environment (read once, through [`Env`]): the Ambassador
/// ID (flag, else `AMBASSADOR_ID`, else `default`) and the namespace given to documents without
/// one (`AMBASSADOR_NAMESPACE`).
fn options(ambassador_id: Option<&str>, env: &Env) -> (Options, LoadOptions) {
    let mut options = Options::from_env(|k| env.non_empty(k).map(str::to_string));
    if let Some(id) = ambassador_id {
        options.ambassador_id = id.to_string();
    }
    let load = LoadOptions::from_env(env, Some(&options.ambassador_namespace));
    (options, load)
}

/// `legate translate DIR`, wired to stdout/stderr. Returns the exit code.
pub fn run_translate(args: TranslateArgs, env: &Env) -> u8 {
    let (options, load) = options(args.ambassador_id.as_deref(), env);
    translate::translate_once(
        &args.dir,
        args.output,
        args.format,
        &options,
        &load,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// `legate check DIR`, wired to stdout/stderr. Returns the exit code.
pub fn run_check(args: CheckArgs, env: &Env) -> u8 {
    let (options, load) = options(args.ambassador_id.as_deref(), env);
    check::check(
        &args.dir,
        &options,
        &load,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}
