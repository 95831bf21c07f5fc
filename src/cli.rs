//! The command line (clap derive): `legate [run]`, `legate translate DIR`, `legate check DIR`.
//!
//! `run` is the default: `legate --config x.toml` and `legate run --config x.toml` are the same.
//! Run flags are the last settings layer: they override the file and the environment (see
//! `config::load`). Parsing only; nothing here reads the environment — `$LEGATE_CONFIG` is
//! honoured by `config::load` through `config::Env`, so env parsing stays in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Mirrors `exit::TABLE` (a test keeps them in step).
const EXIT_CODES: &str = "Exit codes:
  0  drained within the deadline, or a one-shot command succeeded
  1  fatal internal error (e.g. a port cannot be bound); `check`: invalid resources found
  2  invalid settings or command-line usage
  3  Envoy restart budget spent
  4  forced exit: drain deadline passed with connections left, second signal or SIGQUIT
  5  Envoy binary not found or not executable";

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

/// PID 1 for an Envoy edge container, and its ADS control plane.
#[derive(Debug, Parser)]
#[command(name = "legate", version, after_help = EXIT_CODES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of the default `run` command, accepted without the word `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Supervise Envoy and serve it configuration (the default command).
    Run(RunArgs),
    /// Translate a directory of getambassador.io YAML and print the IR or the Envoy resources.
    Translate(TranslateArgs),
    /// Validate a directory of getambassador.io YAML; exits 1 when any resource is invalid.
    Check(CheckArgs),
    /// Print the getambassador.io CustomResourceDefinitions (YAML), generated from legate's
    /// resource types.
    Crds,
    /// Ask a running legate's probe listener: exit 0 when /ready (or /live) answers 200, else
    /// 1. For HEALTHCHECK and exec probes: no shell or curl needed.
    Probe(ProbeArgs),
}

impl Cli {
    /// The command to run, `run` when none was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Run(self.run))
    }
}

/// `legate run` flags. Every one is optional: unset flags leave the lower layers in force.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Settings file, TOML or YAML by extension (default: $LEGATE_CONFIG, else none).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of getambassador.io YAML to serve (source.config_dir).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Envoy binary (envoy.binary).
    #[arg(long, value_name = "PATH")]
    pub envoy_binary: Option<PathBuf>,
    /// Probe listener for /ready and /live (probe.address).
    #[arg(long, value_name = "ADDR")]
    pub probe_address: Option<SocketAddr>,
    /// legate's admin listener (admin.address).
    #[arg(long, value_name = "ADDR")]
    pub admin_address: Option<SocketAddr>,
    /// Allow the admin listener on a non-loopback address (admin.allow_non_loopback).
    #[arg(long)]
    pub admin_allow_non_loopback: bool,
    /// ADS server: `unix` or a loopback host:port (xds.address).
    #[arg(long, value_name = "ADDR")]
    pub xds_address: Option<String>,
    /// Envoy's admin: `unix` or a loopback host:port (envoy.admin).
    #[arg(long, value_name = "ADDR")]
    pub envoy_admin: Option<String>,
    /// Envoy worker threads (envoy.concurrency).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// Envoy's drain strategy: immediate or gradual (envoy.drain_strategy).
    #[arg(long, value_name = "STRATEGY")]
    pub drain_strategy: Option<String>,
    /// Envoy's own log level (envoy.log_level).
    #[arg(long, value_name = "LEVEL")]
    pub envoy_log_level: Option<String>,
    /// Directory for the bootstrap and unix sockets (runtime_dir).
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Stay ready this long after a drain starts (drain.delay_ms).
    #[arg(long, value_name = "MS")]
    pub drain_delay_ms: Option<u64>,
    /// Drain at least this long (drain.min_ms).
    #[arg(long, value_name = "MS")]
    pub drain_min_ms: Option<u64>,
    /// Stop waiting for connections after this long (drain.deadline_ms).
    #[arg(long, value_name = "MS")]
    pub drain_deadline_ms: Option<u64>,
    /// Log output: text or json (log.format).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `legate=debug` (log.level; $RUST_LOG wins).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Serve only resources for this Ambassador ID (source.ambassador_id).
    #[arg(long, value_name = "ID")]
    pub ambassador_id: Option<String>,
    /// Watch only this Kubernetes namespace (source.namespace + source.single_namespace).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Read Kubernetes through this kubeconfig (source.kubeconfig; else $KUBECONFIG or
    /// in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// `legate translate DIR`.
#[derive(Debug, Clone, Args)]
pub struct TranslateArgs {
    /// Directory of getambassador.io YAML.
    pub dir: PathBuf,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Output::Ir)]
    pub output: Output,
    /// How to print it.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Translate only resources for this Ambassador ID (default: $AMBASSADOR_ID, else
    /// `default`).
    #[arg(long, value_name = "ID")]
    pub ambassador_id: Option<String>,
    /// `legate run`'s settings file (default: $LEGATE_CONFIG, else none), so the output is
    /// what `run` would serve with it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Which probe `legate probe` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeKind {
    /// `GET /ready`.
    Ready,
    /// `GET /live`.
    Live,
}

/// `legate probe ready|live`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The probe to ask.
    #[arg(value_enum)]
    pub kind: ProbeKind,
    /// The probe listener (default: probe.address from the settings, 0.0.0.0 asked on
    /// 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub address: Option<SocketAddr>,
    /// Settings file to read probe.address from (default: $LEGATE_CONFIG, else none).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Give up after this long (connect, send, read each).
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// `legate check DIR`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Directory of getambassador.io YAML.
    pub dir: PathBuf,
    /// Check only resources for this Ambassador ID (default: $AMBASSADOR_ID, else `default`).
    #[arg(long, value_name = "ID")]
    pub ambassador_id: Option<String>,
    /// `legate run`'s settings file (default: $LEGATE_CONFIG, else none), so the check covers
    /// what `run` would serve with it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(args).map(Cli::into_command).unwrap()
    }

    #[test]
    fn no_subcommand_means_run() {
        let Command::Run(run) = parse(&["legate", "--drain-min-ms", "10", "--config", "a.toml"])
        else {
            panic!("expected run");
        };
        assert_eq!(run.drain_min_ms, Some(10));
        assert_eq!(run.config, Some(PathBuf::from("a.toml")));
        let Command::Run(run) = parse(&["legate", "run", "--probe-address", "127.0.0.1:0"]) else {
            panic!("expected run");
        };
        assert_eq!(
            run.probe_address,
            Some(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert!(matches!(parse(&["legate"]), Command::Run(_)));
    }

    #[test]
    fn translate_and_check_parse() {
        let Command::Translate(t) = parse(&["legate", "translate", "d", "--output", "envoy"])
        else {
            panic!("expected translate");
        };
        assert_eq!((t.output, t.format), (Output::Envoy, Format::Json));
        assert_eq!(t.dir, PathBuf::from("d"));
        let Command::Check(c) = parse(&["legate", "check", "d", "--ambassador-id", "x"]) else {
            panic!("expected check");
        };
        assert_eq!(c.ambassador_id.as_deref(), Some("x"));
    }

    #[test]
    fn probe_parses() {
        let Command::Probe(p) = parse(&["legate", "probe", "live", "--address", "127.0.0.1:9"])
        else {
            panic!("expected probe");
        };
        assert_eq!(p.kind, ProbeKind::Live);
        assert_eq!(p.address, Some(SocketAddr::from(([127, 0, 0, 1], 9))));
        assert!(Cli::try_parse_from(["legate", "probe", "sideways"]).is_err());
    }

    #[test]
    fn help_lists_every_exit_code() {
        for (code, meaning) in crate::exit::TABLE {
            assert!(
                EXIT_CODES.contains(&format!("  {code}  {meaning}")),
                "{code}"
            );
        }
    }

    #[test]
    fn bad_flag_values_are_usage_errors() {
        let err = Cli::try_parse_from(["legate", "--drain-min-ms", "abc"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--drain-min-ms"), "{err}");
        assert!(Cli::try_parse_from(["legate", "translate"]).is_err());
    }
}
