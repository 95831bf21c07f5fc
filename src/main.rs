//! The `legate` binary: parse the command line, then hand over to the library.
//!
//! For `run`: signal handlers first (a SIGTERM during start-up must not be lost), then the
//! settings (invalid → exit 2), logging, the effective settings as one log line, a tokio
//! runtime, and `app::run`, whose return value is the exit code.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use legate::cli::{Cli, Command, RunArgs};
use legate::config::{self, Env};
use legate::error::Chain;
use legate::{app, cmd, drain, exit, signal, telemetry};

/// After a fast-exit request the app has this long to stop Envoy before the signal thread
/// exits the process itself.
const FAST_EXIT_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    ExitCode::from(match command {
        Command::Run(args) => run(args),
        Command::Translate(args) => cmd::run_translate(args, &Env::from_process()),
        Command::Check(args) => cmd::run_check(args, &Env::from_process()),
        Command::Crds => print_stdout(&legate::api::crd::crds_yaml()),
        Command::Probe(args) => cmd::probe::run(&args, &Env::from_process()),
    })
}

fn run(args: RunArgs) -> u8 {
    // 1. signals before anything slow
    let (trigger, _watch) = drain::channel();
    let envoy_pid = signal::EnvoyPid::default();
    if let Err(error) = signal::register(trigger.clone(), envoy_pid.clone(), Some(FAST_EXIT_GRACE))
    {
        eprintln!("legate: {}", Chain(&error));
        return exit::FATAL;
    }

    // 2. settings: the one environment snapshot, then defaults < file < env < flags
    let env = Env::from_process();
    let config = match config::load(&args, &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("legate: {}", Chain(&error));
            return exit::INVALID_SETTINGS;
        }
    };

    // 3. logging, and the effective settings as one structured line
    if let Err(error) = telemetry::init(&config.log, &env) {
        eprintln!("legate: {}", Chain(&error));
        return exit::INVALID_SETTINGS;
    }
    let settings = serde_json::to_string(&config).unwrap_or_default();
    tracing::info!(%settings, version = env!("CARGO_PKG_VERSION"), "effective settings");

    // 4. the runtime and the app
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("legate")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %Chain(&error), "cannot build the tokio runtime");
            return exit::FATAL;
        }
    };
    let code = runtime.block_on(app::run(config, env, app::Signals { trigger, envoy_pid }));
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Writes to stdout; a closed pipe (`legate crds | head`) is not an error worth a panic.
fn print_stdout(text: &str) -> u8 {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => exit::CLEAN,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::CLEAN,
        Err(e) => {
            eprintln!("legate: cannot write to stdout: {e}");
            exit::FATAL
        }
    }
}
