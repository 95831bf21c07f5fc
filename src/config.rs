//! Settings: defaults < optional file < `LEGATE_*` environment < CLI flags.
//!
//! `Config` is `Serialize` so the effective settings are logged at start and shown on the admin
//! endpoint. Durations are plain milliseconds so that every layer (TOML/YAML file, env, flags)
//! spells them the same way.
//!
//! This file holds the shape and defaults; [`load`] merges the layers and `validate` checks
//! the result. Every environment read goes through an [`Env`] snapshot.

mod env;
mod load;
mod validate;

pub use env::Env;
pub use load::{ConfigError, load};

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub envoy: EnvoySettings,
    pub xds: XdsSettings,
    pub probe: ProbeSettings,
    pub admin: AdminSettings,
    pub drain: DrainSettings,
    pub source: SourceSettings,
    pub log: LogSettings,
    /// Directory for the generated bootstrap and unix sockets. Default: a new
    /// `$TMPDIR/legate-<random>` (see `runtime_dir`); a configured one must not exist yet or be
    /// a directory of legate's user that nobody else can write to.
    pub runtime_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvoySettings {
    /// Envoy binary; default: `$LEGATE_ENVOY_BIN`, then `envoy` on `PATH`, then
    /// `.envoy/bin/envoy` (where `scripts/install-envoy` puts it).
    pub binary: Option<PathBuf>,
    /// Envoy admin: `unix` (a 0600 socket in the runtime dir, the default) or a loopback
    /// `host:port` (port 0 picks a free one).
    pub admin: String,
    /// Node id and cluster Envoy reports over xDS.
    pub node_id: String,
    pub node_cluster: String,
    /// Worker threads; `None` lets Envoy 1.40 derive it from the cgroup CPU quota.
    pub concurrency: Option<u32>,
    /// `immediate` or `gradual`.
    pub drain_strategy: String,
    /// Envoy's own log level.
    pub log_level: String,
    /// Which stats Envoy keeps: `essential` (default: per-cluster request counts by class,
    /// latency, active connections and membership, plus every `http.`, `listener.`,
    /// `server.`, `cluster_manager.` … stat) or `all` (Envoy's default, ~150 stats a cluster).
    pub stats: String,
    /// How Envoy subscribes to legate's ADS server: `delta` (default: only changed resources
    /// are sent) or `sotw` (state of the world: every resource of a changed type).
    pub xds_protocol: String,
    /// How often the supervisor polls Envoy's admin `/ready` and `/server_info`.
    pub health_interval_ms: u64,
    /// Restart Envoy when its admin has not answered for this long *and* its main thread
    /// made no CPU progress for this long (a busy Envoy applying a large config is left alone).
    pub unresponsive_timeout_ms: u64,
    /// A main thread that keeps burning CPU with a silent admin while no push is outstanding
    /// and Envoy is LIVE (a livelock) is restarted after this long (at least
    /// `unresponsive_timeout_ms`).
    pub busy_limit_ms: u64,
    pub restart: RestartSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartSettings {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// At most this many restarts within `window_ms`; one more exits legate non-zero.
    pub budget: u32,
    pub window_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XdsSettings {
    /// ADS server: `unix` (a socket in the runtime dir) or a loopback `host:port`.
    pub address: String,
    /// gRPC message-size limit, both directions.
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeSettings {
    /// `/ready` and `/live`; nothing else is served here.
    pub address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// legate's own admin (settings, IR, xDS state, metrics, drain). Loopback unless
    /// `allow_non_loopback` is set.
    pub address: SocketAddr,
    pub allow_non_loopback: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainSettings {
    /// Stay ready this long after the drain starts, so load balancers deregister first.
    pub delay_ms: u64,
    /// Always drain at least this long.
    pub min_ms: u64,
    /// Give up waiting for connections to close after this long (from the drain's start,
    /// including the delay). Fits Kubernetes' 30 s `terminationGracePeriodSeconds`.
    pub deadline_ms: u64,
    /// Poll Envoy's active downstream connections this often.
    pub poll_ms: u64,
    /// Time for Envoy to exit after `/quitquitquit` / SIGTERM before SIGKILL.
    pub stop_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    /// Directory of getambassador.io YAML (the file source).
    pub config_dir: Option<PathBuf>,
    /// Used as `config_dir` when that is unset, legate is not in a Kubernetes cluster, and
    /// this directory exists. The image sets it to `/config`, so the image chooses its source
    /// by itself: in-cluster service account → Kubernetes; a directory mounted at `/config` →
    /// files; neither → exit 2 saying so.
    pub default_config_dir: Option<PathBuf>,
    /// Coalesce bursts of changes within this window before republishing.
    pub debounce_ms: u64,
    /// `AMBASSADOR_ID`.
    pub ambassador_id: String,
    /// Kubeconfig to read the cluster from (`--kubeconfig`); when unset, `KUBECONFIG` or the
    /// in-cluster service account is used if present.
    pub kubeconfig: Option<PathBuf>,
    /// `AMBASSADOR_NAMESPACE`: legate's own namespace, the one watched when
    /// `single_namespace` is set. Default (`None`): `default`.
    pub namespace: Option<String>,
    /// `AMBASSADOR_SINGLE_NAMESPACE`: watch only `namespace` instead of all namespaces.
    pub single_namespace: bool,
    /// `AMBASSADOR_LABEL_SELECTOR`: only getambassador.io resources matching this Kubernetes
    /// label selector are read (Services, EndpointSlices and Secrets are not filtered).
    pub label_selector: Option<String>,
    /// Route Mappings whose `service` names a Kubernetes Service through its EndpointSlices
    /// (EDS: ready endpoints only, scaling without touching clusters or routes) instead of
    /// DNS. Emissary's default is DNS (`kubernetes-service` resolver); a Mapping or Module
    /// `resolver: kubernetes-endpoint` selects EDS regardless of this setting.
    pub endpoint_routing: bool,
    /// Keep each Mapping's plan between source states and reuse it while the Mapping and what
    /// it depends on are unchanged (`translate::translate_with`): a change is translated with
    /// fewer instructions, at the cost of memory (about 2 KB per Mapping). Off by default
    /// (BENCHMARKS.md, issue 10: the memory targets come first).
    pub translation_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `legate=debug`.
    pub level: String,
}

impl Default for EnvoySettings {
    fn default() -> Self {
        EnvoySettings {
            binary: None,
            admin: "unix".into(),
            node_id: "legate".into(),
            node_cluster: "legate".into(),
            concurrency: None,
            drain_strategy: "immediate".into(),
            log_level: "warning".into(),
            stats: "essential".into(),
            xds_protocol: "delta".into(),
            health_interval_ms: 1000,
            unresponsive_timeout_ms: 10_000,
            busy_limit_ms: 300_000,
            restart: RestartSettings::default(),
        }
    }
}

impl Default for RestartSettings {
    fn default() -> Self {
        RestartSettings {
            initial_backoff_ms: 250,
            max_backoff_ms: 10_000,
            budget: 5,
            window_ms: 600_000,
        }
    }
}

impl Default for XdsSettings {
    fn default() -> Self {
        XdsSettings {
            address: "unix".into(),
            max_message_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            address: SocketAddr::from(([0, 0, 0, 0], 8877)),
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            address: SocketAddr::from(([127, 0, 0, 1], 8878)),
            allow_non_loopback: false,
        }
    }
}

impl Default for DrainSettings {
    fn default() -> Self {
        DrainSettings {
            delay_ms: 0,
            min_ms: 5_000,
            deadline_ms: 25_000,
            poll_ms: 1_000,
            stop_timeout_ms: 2_000,
        }
    }
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings {
            config_dir: None,
            default_config_dir: None,
            debounce_ms: 75,
            ambassador_id: "default".into(),
            kubeconfig: None,
            namespace: None,
            single_namespace: false,
            label_selector: None,
            endpoint_routing: false,
            translation_cache: false,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[cfg(test)]
mod tests;
