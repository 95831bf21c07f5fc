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

use crate::cli::{CheckArgs, RunArgs, TranslateArgs};
pub use crate::cli::{Format, Output};
use crate::config::{self, Env};

use crate::api::ResourceError;
use crate::source::{LoadOptions, SourceError, load_dir};
use crate::translate::{Options, Translation};

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

/// What both commands translate with: `legate run`'s settings (defaults < `--config` file or
/// `$LEGATE_CONFIG` < environment < `--ambassador-id`), through the same functions `run`
/// uses, so the output is what `run` would serve (endpoint routing and the probe address
/// included). Invalid settings are printed on stderr.
fn options(
    config_file: Option<&Path>,
    ambassador_id: Option<&str>,
    env: &Env,
) -> Option<(Options, LoadOptions)> {
    let args = RunArgs {
        config: config_file.map(Path::to_path_buf),
        ambassador_id: ambassador_id.map(str::to_string),
        ..RunArgs::default()
    };
    let config = match config::load(&args, env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("legate: {}", crate::error::Chain(&e));
            return None;
        }
    };
    let options = crate::pipeline::translate_options(&config, config.probe.address);
    let load = LoadOptions::from_env(env, config.source.namespace.as_deref());
    Some((options, load))
}

/// `legate translate DIR`, wired to stdout/stderr. Returns the exit code.
pub fn run_translate(args: TranslateArgs, env: &Env) -> u8 {
    let settings = options(args.config.as_deref(), args.ambassador_id.as_deref(), env);
    let Some((options, load)) = settings else {
        return crate::exit::INVALID_SETTINGS;
    };
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
    let settings = options(args.config.as_deref(), args.ambassador_id.as_deref(), env);
    let Some((options, load)) = settings else {
        return crate::exit::INVALID_SETTINGS;
    };
    check::check(
        &args.dir,
        &options,
        &load,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}
