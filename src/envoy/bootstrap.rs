//! Envoy's bootstrap: rendered from the `bootstrap/envoy.yaml` template (embedded in the binary)
//! with the node identity, the admin address and the address of legate's ADS server, then
//! written to the runtime dir and checked with `envoy --mode validate`.
//!
//! Placeholders are replaced by JSON values, which are valid YAML flow syntax: every string is
//! escaped and no indentation has to be tracked.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::Address;

/// The template, embedded at build time.
pub const TEMPLATE: &str = include_str!("../../bootstrap/envoy.yaml");

/// Default global cap on downstream connections (overload manager resource monitor).
pub const MAX_DOWNSTREAM_CONNECTIONS: u64 = 50_000;

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_UNIX_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("unix socket path {0} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    #[error("unix socket path {0} is longer than {MAX_UNIX_PATH} bytes; use a shorter runtime dir")]
    PathTooLong(PathBuf),
    #[error("template placeholder {0} was left unrendered")]
    Unrendered(String),
    #[error("cannot write the bootstrap to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run `envoy --mode validate`")]
    RunValidate(#[source] std::io::Error),
    #[error("envoy rejects the bootstrap {path}: {output}")]
    Invalid { path: PathBuf, output: String },
}

/// Everything the template needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub node_id: String,
    pub node_cluster: String,
    /// Envoy's admin listener; a unix socket is created with mode 0600.
    pub admin: Address,
    /// legate's ADS server, as bound.
    pub xds: Address,
    pub max_downstream_connections: u64,
    /// Keep every Envoy stat (`envoy.stats: all`) instead of [`ESSENTIAL_STATS`].
    pub all_stats: bool,
    /// Subscribe with state-of-the-world ADS (`envoy.xds_protocol: sotw`) instead of delta.
    pub sotw: bool,
}

/// Stats every cluster keeps by default (as suffixes of `cluster.<name>.`): request counts by
/// response class and in total, latency, timeouts, active and failed connections, membership.
/// These are what dashboards built on Envoy's Prometheus output use; the other ~140 stats a
/// cluster allocates (circuit breaker gauges, per-code and per-protocol counters, LB and
/// health-check detail) cost about 40 % of Envoy's memory and most of its time to apply CDS
/// at thousands of clusters (issue 10, BENCHMARKS.md). `envoy.stats: all` keeps everything.
pub const ESSENTIAL_CLUSTER_STATS: &[&str] = &[
    "upstream_rq_2xx",
    "upstream_rq_3xx",
    "upstream_rq_4xx",
    "upstream_rq_5xx",
    "upstream_rq_total",
    "upstream_rq_completed",
    "upstream_rq_time",
    "upstream_rq_timeout",
    "upstream_cx_active",
    "upstream_cx_connect_fail",
    "membership_healthy",
    "membership_total",
];

/// Stat name prefixes kept whole by default: the HTTP connection managers (`http.`), the
/// listeners (`listener.`: legate's drain sums `listener.<name>.downstream_cx_active`), TCP
/// proxies, the server, cluster manager, listener manager, control-plane connection, runtime
/// and overload manager, and legate's own ADS cluster.
pub const ESSENTIAL_STATS: &[&str] = &[
    "http.",
    "listener.",
    "tcp.",
    "server.",
    "cluster_manager.",
    "listener_manager.",
    "control_plane.",
    "runtime.",
    "overload.",
    "cluster.xds_cluster.",
];

/// The bootstrap's `stats_config`: Envoy's default when `all`, else an inclusion list of
/// [`ESSENTIAL_STATS`] (prefixes) and [`ESSENTIAL_CLUSTER_STATS`] (suffixes). See
/// <https://www.envoyproxy.io/docs/envoy/v1.40.0/api-v3/config/metrics/v3/stats.proto>.
pub fn stats_config(all: bool) -> serde_json::Value {
    if all {
        return json!({});
    }
    let prefixes = ESSENTIAL_STATS.iter().map(|p| json!({ "prefix": p }));
    let suffixes = ESSENTIAL_CLUSTER_STATS
        .iter()
        .map(|s| json!({ "suffix": format!(".{s}") }));
    json!({
        "stats_matcher": {
            "inclusion_list": { "patterns": prefixes.chain(suffixes).collect::<Vec<_>>() }
        }
    })
}

impl Params {
    pub fn new(node_id: &str, node_cluster: &str, admin: Address, xds: Address) -> Params {
        Params {
            node_id: node_id.to_string(),
            node_cluster: node_cluster.to_string(),
            admin,
            xds,
            max_downstream_connections: MAX_DOWNSTREAM_CONNECTIONS,
            all_stats: false,
            sotw: false,
        }
    }
}

/// Renders the bootstrap YAML.
pub fn render(p: &Params) -> Result<String, BootstrapError> {
    let values = [
        ("node_id", json!(p.node_id)),
        ("node_cluster", json!(p.node_cluster)),
        ("admin_address", address_json(&p.admin, Some(0o600))?),
        ("xds_address", address_json(&p.xds, None)?),
        (
            "max_downstream_connections",
            json!(p.max_downstream_connections),
        ),
        ("stats_config", stats_config(p.all_stats)),
        (
            "ads_api_type",
            json!(if p.sotw { "GRPC" } else { "DELTA_GRPC" }),
        ),
    ];
    let mut out = TEMPLATE.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), &value.to_string());
    }
    if let Some(start) = out.find("{{") {
        let end = out[start..].find("}}").map_or(out.len(), |e| start + e + 2);
        return Err(BootstrapError::Unrendered(out[start..end].to_string()));
    }
    Ok(out)
}

/// Renders the bootstrap and writes it to `path`.
pub fn write(p: &Params, path: &Path) -> Result<(), BootstrapError> {
    let yaml = render(p)?;
    std::fs::write(path, yaml).map_err(|source| BootstrapError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `envoy --mode validate` on a bootstrap file (about 50 ms). It checks the bootstrap and
/// static resources only, never xDS content.
pub async fn validate(binary: &Path, path: &Path) -> Result<(), BootstrapError> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(path)
        .arg("--disable-hot-restart")
        .args(["-l", "error"]);
    let out = crate::reaper::output(cmd)
        .await
        .map_err(BootstrapError::RunValidate)?;
    if out.status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(BootstrapError::Invalid {
        path: path.to_path_buf(),
        output: format!("{} ({})", output.trim(), out.status),
    })
}

/// An Envoy `core.v3.Address` as JSON.
fn address_json(a: &Address, mode: Option<u32>) -> Result<serde_json::Value, BootstrapError> {
    Ok(match a {
        Address::Unix(path) => {
            let s = path
                .to_str()
                .ok_or_else(|| BootstrapError::NonUtf8Path(path.clone()))?;
            if s.len() > MAX_UNIX_PATH {
                return Err(BootstrapError::PathTooLong(path.clone()));
            }
            match mode {
                Some(mode) => json!({"pipe": {"path": s, "mode": mode}}),
                None => json!({"pipe": {"path": s}}),
            }
        }
        Address::Tcp(addr) => json!({"socket_address": {
            "address": addr.ip().to_string(),
            "port_value": addr.port(),
        }}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn params(dir: &Path) -> Params {
        Params::new(
            "node \"1\"",
            "edge",
            Address::Unix(dir.join("admin.sock")),
            Address::Tcp(SocketAddr::from(([127, 0, 0, 1], 18000))),
        )
    }

    #[test]
    fn renders_valid_yaml_with_every_setting() {
        let dir = Path::new("/run/legate");
        let yaml = render(&params(dir)).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(v["node"]["id"].as_str(), Some("node \"1\""));
        assert_eq!(v["node"]["cluster"].as_str(), Some("edge"));
        let pipe = &v["admin"]["address"]["pipe"];
        assert_eq!(pipe["path"].as_str(), Some("/run/legate/admin.sock"));
        assert_eq!(pipe["mode"].as_u64(), Some(384));
        let xds = &v["static_resources"]["clusters"][0];
        assert_eq!(xds["name"].as_str(), Some("xds_cluster"));
        let sock = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(sock["address"].as_str(), Some("127.0.0.1"));
        assert_eq!(sock["port_value"].as_u64(), Some(18000));
        let ads = &v["dynamic_resources"]["ads_config"];
        assert_eq!(ads["api_type"].as_str(), Some("DELTA_GRPC"));
        let deferred = &v["cluster_manager"]["enable_deferred_cluster_creation"];
        assert_eq!(deferred.as_bool(), Some(true));
        let lazy = &v["deferred_stat_options"]["enable_deferred_creation_stats"];
        assert_eq!(lazy.as_bool(), Some(true));
        for kind in ["cds_config", "lds_config"] {
            let c = &v["dynamic_resources"][kind];
            assert_eq!(c["initial_fetch_timeout"].as_str(), Some("0s"), "{kind}");
            assert_eq!(c["resource_api_version"].as_str(), Some("V3"), "{kind}");
        }
        let monitor = &v["overload_manager"]["resource_monitors"][0]["typed_config"];
        assert_eq!(
            monitor["max_active_downstream_connections"].as_u64(),
            Some(MAX_DOWNSTREAM_CONNECTIONS)
        );
        let patterns = v["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"]
            .as_sequence()
            .unwrap();
        let has =
            |kind: &str, value: &str| patterns.iter().any(|p| p[kind].as_str() == Some(value));
        // What legate's drain reads, and what dashboards read per cluster.
        assert!(has("prefix", "listener."));
        assert!(has("suffix", ".upstream_rq_2xx"));
        assert!(has("suffix", ".upstream_rq_time"));
    }

    #[test]
    fn all_stats_and_sotw_restore_envoys_defaults() {
        let mut p = params(Path::new("/run/legate"));
        p.all_stats = true;
        p.sotw = true;
        let v: serde_yaml::Value = serde_yaml::from_str(&render(&p).unwrap()).unwrap();
        let ads = &v["dynamic_resources"]["ads_config"];
        assert_eq!(ads["api_type"].as_str(), Some("GRPC"));
        assert_eq!(
            v["stats_config"],
            serde_yaml::Value::Mapping(Default::default())
        );
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from(format!("/{}", "x".repeat(120)));
        let mut p = params(Path::new("/tmp"));
        p.xds = Address::Unix(long);
        assert!(matches!(render(&p), Err(BootstrapError::PathTooLong(_))));
    }
}
