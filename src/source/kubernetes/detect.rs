//! Source selection: is there a Kubernetes cluster to read from?
//!
//! Kubernetes is used when given a kubeconfig (`source.kubeconfig`, i.e. `--kubeconfig`, then
//! `KUBECONFIG`) or when running in a cluster (`KUBERNETES_SERVICE_HOST` and a service-account
//! token). Otherwise [`detect`] answers `None` and the app uses the config directory. Unlike
//! `kube::Config::infer`, `~/.kube/config` alone does not switch legate to Kubernetes: a
//! developer's laptop running `legate run --config-dir` must not start watching their cluster.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Error;
use crate::config::SourceSettings;

/// Where the in-cluster service-account token lives.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// What detection reads from the process environment, as data so tests need no `set_var`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// `KUBECONFIG`: one path or a list, like `PATH`.
    pub kubeconfig: Option<OsString>,
    /// `KUBERNETES_SERVICE_HOST`.
    pub service_host: Option<String>,
    /// The service-account token file.
    pub token_file: PathBuf,
}

impl Environment {
    /// Reads the process environment snapshot (`config::Env`, the one place env is read).
    pub fn from_env(env: &crate::config::Env) -> Self {
        Environment {
            kubeconfig: env.non_empty("KUBECONFIG").map(OsString::from),
            service_host: env.non_empty("KUBERNETES_SERVICE_HOST").map(str::to_string),
            token_file: PathBuf::from(SERVICE_ACCOUNT_TOKEN),
        }
    }

    /// An environment with nothing Kubernetes in it.
    pub fn empty() -> Self {
        Environment {
            kubeconfig: None,
            service_host: None,
            token_file: PathBuf::from(SERVICE_ACCOUNT_TOKEN),
        }
    }

    fn in_cluster(&self) -> bool {
        self.service_host.is_some() && self.token_file.is_file()
    }
}

/// A client for the cluster legate should read, or `None` to use the config directory.
/// Errors mean Kubernetes was asked for (a kubeconfig was named, or we are in a cluster) but
/// cannot be used.
pub async fn detect(
    settings: &SourceSettings,
    env: &Environment,
) -> Result<Option<kube::Client>, Error> {
    let config = if let Some(path) = &settings.kubeconfig {
        from_kubeconfig(std::slice::from_ref(path)).await?
    } else if let Some(list) = &env.kubeconfig {
        let paths: Vec<PathBuf> = std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if paths.is_empty() {
            return Ok(None);
        }
        from_kubeconfig(&paths).await?
    } else if env.in_cluster() {
        kube::Config::incluster().map_err(Error::InCluster)?
    } else {
        return Ok(None);
    };
    tracing::info!(server = %config.cluster_url, "using kubernetes");
    kube::Client::try_from(config)
        .map(Some)
        .map_err(Error::Client)
}

/// Reads and merges kubeconfig files the way kubectl merges `KUBECONFIG`.
async fn from_kubeconfig(paths: &[PathBuf]) -> Result<kube::Config, Error> {
    let mut merged = Kubeconfig::default();
    for path in paths {
        let next = Kubeconfig::read_from(path).map_err(|source| kubeconfig_error(path, source))?;
        merged = merged
            .merge(next)
            .map_err(|source| kubeconfig_error(path, source))?;
    }
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    kube::Config::from_custom_kubeconfig(merged, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::Kubeconfig {
            path: shown,
            source,
        })
}

fn kubeconfig_error(path: &Path, source: kube::config::KubeconfigError) -> Error {
    Error::Kubeconfig {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_kubernetes_means_the_config_directory() {
        let settings = SourceSettings::default();
        let client = detect(&settings, &Environment::empty()).await.unwrap();
        assert!(client.is_none());
    }

    #[tokio::test]
    async fn a_service_host_without_a_token_is_not_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment {
            kubeconfig: None,
            service_host: Some("10.0.0.1".into()),
            token_file: dir.path().join("token"),
        };
        let client = detect(&SourceSettings::default(), &env).await.unwrap();
        assert!(client.is_none());
    }

    #[tokio::test]
    async fn a_named_kubeconfig_that_does_not_exist_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SourceSettings {
            kubeconfig: Some(dir.path().join("missing")),
            ..SourceSettings::default()
        };
        let Err(error) = detect(&settings, &Environment::empty()).await else {
            panic!("a missing kubeconfig must be an error");
        };
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[tokio::test]
    async fn kubeconfig_env_selects_kubernetes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user: {}\ncurrent-context: c\n",
        )
        .unwrap();
        let env = Environment {
            kubeconfig: Some(path.into_os_string()),
            ..Environment::empty()
        };
        let client = detect(&SourceSettings::default(), &env).await.unwrap();
        assert!(client.is_some());
    }
}
