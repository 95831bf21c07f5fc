//! Loading the settings: defaults < optional file < environment < flags, then validation.
//!
//! The file (TOML or YAML, by extension) and the environment are merged by the `config` crate.
//! Environment variables are `LEGATE_<SECTION>__<KEY>` (a double underscore between levels,
//! e.g. `LEGATE_DRAIN__DEADLINE_MS`). A few Emissary-compatible and shorthand variables sit just
//! below them: `AMBASSADOR_ID` (source.ambassador_id), `AMBASSADOR_NAMESPACE` (source.namespace),
//! `AMBASSADOR_SINGLE_NAMESPACE` (source.single_namespace), `AMBASSADOR_LABEL_SELECTOR` and `LEGATE_ENVOY_BIN` (envoy.binary). Flags are
//! applied last, on the typed struct.
//!
//! Kubernetes injects "service link" variables for every Service in the pod's namespace
//! (`<NAME>_SERVICE_HOST`, `<NAME>_PORT=tcp://…`, …); for our own Services `legate` and
//! `legate-admin` they start with `LEGATE_`. Those are recognised by their shape and ignored
//! (see [`is_service_link`]). Every other unknown `LEGATE_*` variable is an invalid setting
//! (exit 2): a misspelt setting must not be silently dropped.
//!
//! The rest of a pod's default environment does not reach this loader: `KUBERNETES_SERVICE_*`
//! and `KUBERNETES_PORT*` (the API server's own service links), `HOSTNAME`, `PATH`, `HOME`, and
//! Emissary's chart variables (`AMBASSADOR_*` other than the aliases below, `HOST_IP`,
//! `STATSD_*`) do not start with `LEGATE_`. Service links of any Service whose name starts with
//! `legate` (`legate-config` → `LEGATE_CONFIG_SERVICE_HOST`, …) have the service-link shape,
//! never the exact names `LEGATE_CONFIG` or `LEGATE_ENVOY_BIN` read below.

use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Value, ValueKind};

use super::{Config, Env, validate};
use crate::cli::RunArgs;

/// `LEGATE_*` variables that are not settings, so not "unknown settings" either.
const NOT_SETTINGS: &[&str] = &[
    "LEGATE_CONFIG",
    "LEGATE_ENVOY_BIN",
    "LEGATE_SKIP_ENVOY_TESTS",
    "LEGATE_SKIP_DOCKER_TESTS",
    "LEGATE_IMAGE",
];
/// The `config` crate's origin for values from the environment.
const ENV_ORIGIN: &str = "the environment";

/// A setting that cannot be used. Each names the setting path and the bad value; `main` prints
/// it as `legate: <error>` and exits with `exit::INVALID_SETTINGS`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting {path}: {reason}, got {value}{}", origin_suffix(.origin))]
    Invalid {
        /// Dotted path, e.g. `drain.min_ms`.
        path: String,
        value: String,
        reason: String,
        /// Where the value came from (file path or environment variable), when known.
        origin: Option<String>,
    },
    #[error("invalid settings file {}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: config::ConfigError,
    },
}

impl ConfigError {
    /// The setting path the error is about (`config` for the settings file itself).
    pub fn path(&self) -> &str {
        match self {
            ConfigError::Invalid { path, .. } => path,
            ConfigError::File { .. } => "config",
        }
    }

    pub(super) fn invalid(path: &str, value: impl ToString, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.to_string(),
            value: value.to_string(),
            reason: reason.into(),
            origin: None,
        }
    }
}

fn origin_suffix(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|o| format!(" (from {o})"))
        .unwrap_or_default()
}

/// Loads and validates the effective settings.
pub fn load(args: &RunArgs, env: &Env) -> Result<Config, ConfigError> {
    let mut builder = config::Config::builder();
    let file = args
        .config
        .clone()
        .or_else(|| env.non_empty("LEGATE_CONFIG").map(PathBuf::from));
    if let Some(path) = &file {
        builder = builder.add_source(File::from(path.as_path()).format(file_format(path)?));
    }
    let merged = builder
        .add_source(
            Environment::with_prefix("LEGATE")
                .prefix_separator("_")
                .separator("__")
                .source(Some(setting_vars(env))),
        )
        .build()
        .map_err(|source| match &file {
            Some(path) => ConfigError::File {
                path: path.clone(),
                source,
            },
            None => ConfigError::invalid("settings", "", source.to_string()),
        })?;
    let known = serde_json::to_value(Config::default()).unwrap_or_default();
    let sources = Sources {
        file: file.as_deref(),
    };
    sources.check_known(&merged.cache, &known, "")?;
    let mut cfg: Config = merged
        .clone()
        .try_deserialize()
        .map_err(|e| sources.type_error(e, &merged.cache))?;
    apply_flags(&mut cfg, args);
    validate::validate(&cfg)?;
    Ok(cfg)
}

fn file_format(path: &Path) -> Result<FileFormat, ConfigError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Ok(FileFormat::Toml),
        Some("yaml" | "yml") => Ok(FileFormat::Yaml),
        _ => Err(ConfigError::invalid(
            "config",
            path.display(),
            "the settings file must end in .toml, .yaml or .yml",
        )),
    }
}

/// The `LEGATE_*` setting variables, with the compatible aliases folded in below them.
fn setting_vars(env: &Env) -> config::Map<String, String> {
    let mut vars: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| {
            k.starts_with("LEGATE_") && !NOT_SETTINGS.contains(k) && !is_service_link(k)
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut alias = |var: &str, value: Option<&str>| {
        if let Some(v) = value {
            vars.entry(var.to_string()).or_insert_with(|| v.to_string());
        }
    };
    alias(
        "LEGATE_SOURCE__AMBASSADOR_ID",
        env.non_empty("AMBASSADOR_ID"),
    );
    alias("LEGATE_ENVOY__BINARY", env.non_empty("LEGATE_ENVOY_BIN"));
    // Emissary: AMBASSADOR_NAMESPACE is legate's own namespace (default `default`);
    // AMBASSADOR_SINGLE_NAMESPACE (any non-empty value) restricts watches to it.
    alias(
        "LEGATE_SOURCE__NAMESPACE",
        env.non_empty("AMBASSADOR_NAMESPACE"),
    );
    if env.non_empty("AMBASSADOR_SINGLE_NAMESPACE").is_some() {
        alias("LEGATE_SOURCE__SINGLE_NAMESPACE", Some("true"));
    }
    alias(
        "LEGATE_SOURCE__LABEL_SELECTOR",
        env.non_empty("AMBASSADOR_LABEL_SELECTOR"),
    );
    vars
}

/// Whether `name` has the shape of a Kubernetes service-link variable, which the kubelet
/// injects for each Service in the namespace (unless the pod sets `enableServiceLinks: false`).
/// For a Service `my-svc` with a port named `http` on 8080/TCP they are `MY_SVC_SERVICE_HOST`,
/// `MY_SVC_SERVICE_PORT`, `MY_SVC_SERVICE_PORT_HTTP`, `MY_SVC_PORT` (`tcp://ip:port`),
/// `MY_SVC_PORT_8080_TCP`, and `MY_SVC_PORT_8080_TCP_{PROTO,PORT,ADDR}`; see
/// <https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables>.
/// No legate setting has such a name: settings nest with a double underscore.
pub(super) fn is_service_link(name: &str) -> bool {
    let words: Vec<&str> = name.split('_').collect();
    // The Service name may itself contain `_` (from `-`): find the marker word from the right
    // of the Service-name part, i.e. the first `SERVICE` or `PORT` after at least one word.
    (1..words.len()).any(|i| match words[i] {
        "SERVICE" => matches!(&words[i + 1..], ["HOST"] | ["PORT"] | ["PORT", _, ..]),
        "PORT" => match &words[i + 1..] {
            [] => true,
            [port, proto, rest @ ..] => {
                is_port(port)
                    && matches!(*proto, "TCP" | "UDP" | "SCTP")
                    && matches!(rest, [] | ["PROTO"] | ["PORT"] | ["ADDR"])
            }
            _ => false,
        },
        _ => false,
    }) && words.iter().all(|w| !w.is_empty())
}

fn is_port(word: &str) -> bool {
    !word.is_empty() && word.len() <= 5 && word.bytes().all(|b| b.is_ascii_digit())
}

/// Where merged values came from, to name it in errors.
struct Sources<'a> {
    file: Option<&'a Path>,
}

impl Sources<'_> {
    /// Rejects keys the settings do not have, naming where they came from. `known` is the
    /// default settings as JSON: every field, `null` for unset options.
    fn check_known(
        &self,
        value: &Value,
        known: &serde_json::Value,
        path: &str,
    ) -> Result<(), ConfigError> {
        let (ValueKind::Table(table), serde_json::Value::Object(known)) = (&value.kind, known)
        else {
            return Ok(()); // a leaf, or a table where a leaf belongs: deserialization says so
        };
        let mut keys: Vec<&String> = table.keys().collect();
        keys.sort();
        for key in keys {
            let child = join(path, key);
            let v = &table[key];
            match known.get(key.as_str()) {
                Some(k) => self.check_known(v, k, &child)?,
                None => {
                    let mut reason = "unknown setting".to_string();
                    if v.origin() == Some(ENV_ORIGIN) {
                        reason.push_str(
                            " (nested settings take a double underscore, e.g. \
                             LEGATE_DRAIN__DEADLINE_MS)",
                        );
                    }
                    return Err(ConfigError::Invalid {
                        reason,
                        value: v.to_string(),
                        origin: self.origin(v, &child),
                        path: child,
                    });
                }
            }
        }
        Ok(())
    }

    /// Maps a deserialization error to the setting it is about.
    fn type_error(&self, err: config::ConfigError, cache: &Value) -> ConfigError {
        let (path, value, reason) = match err {
            config::ConfigError::Type {
                unexpected,
                expected,
                key,
                ..
            } => (
                key,
                Some(unexpected.to_string()),
                format!("expected {expected}"),
            ),
            config::ConfigError::At { error, key, .. } => (key, None, error.to_string()),
            other => (None, None, other.to_string()),
        };
        let path = path.unwrap_or_else(|| "settings".into());
        let found = lookup(cache, &path);
        ConfigError::Invalid {
            value: value
                .or_else(|| found.map(|v| v.to_string()))
                .unwrap_or_default(),
            reason,
            origin: found.and_then(|v| self.origin(v, &path)),
            path,
        }
    }

    /// The environment variable that spells `path`, or the settings file.
    fn origin(&self, v: &Value, path: &str) -> Option<String> {
        match v.origin()? {
            ENV_ORIGIN => Some(format!("${}", env_var(path))),
            other => Some(
                self.file
                    .map_or_else(|| other.to_string(), |f| f.display().to_string()),
            ),
        }
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match &v.kind {
        ValueKind::Table(t) => t.get(key),
        _ => None,
    })
}

fn env_var(path: &str) -> String {
    format!("LEGATE_{}", path.to_uppercase().replace('.', "__"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Flags are the last layer: each one given replaces whatever the layers below set.
fn apply_flags(cfg: &mut Config, a: &RunArgs) {
    fn set<T: Clone>(slot: &mut T, flag: &Option<T>) {
        if let Some(v) = flag {
            *slot = v.clone();
        }
    }
    fn set_some<T: Clone>(slot: &mut Option<T>, flag: &Option<T>) {
        if flag.is_some() {
            slot.clone_from(flag);
        }
    }
    set_some(&mut cfg.source.config_dir, &a.config_dir);
    if a.namespace.is_some() {
        set_some(&mut cfg.source.namespace, &a.namespace);
        cfg.source.single_namespace = true;
    }
    set_some(&mut cfg.source.kubeconfig, &a.kubeconfig);
    set(&mut cfg.source.ambassador_id, &a.ambassador_id);
    set_some(&mut cfg.envoy.binary, &a.envoy_binary);
    set(&mut cfg.envoy.admin, &a.envoy_admin);
    set_some(&mut cfg.envoy.concurrency, &a.concurrency);
    set(&mut cfg.envoy.drain_strategy, &a.drain_strategy);
    set(&mut cfg.envoy.log_level, &a.envoy_log_level);
    set(&mut cfg.probe.address, &a.probe_address);
    set(&mut cfg.admin.address, &a.admin_address);
    cfg.admin.allow_non_loopback |= a.admin_allow_non_loopback;
    set(&mut cfg.xds.address, &a.xds_address);
    set_some(&mut cfg.runtime_dir, &a.runtime_dir);
    set(&mut cfg.drain.delay_ms, &a.drain_delay_ms);
    set(&mut cfg.drain.min_ms, &a.drain_min_ms);
    set(&mut cfg.drain.deadline_ms, &a.drain_deadline_ms);
    set(&mut cfg.log.format, &a.log_format);
    set(&mut cfg.log.level, &a.log_level);
}
