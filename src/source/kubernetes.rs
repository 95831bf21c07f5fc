//! The Kubernetes source: watches the getambassador.io resources, Services, EndpointSlices and
//! TLS Secrets through the API server and publishes them as [`SourceState`]s.
//!
//! One kube-runtime `watcher` per resource ([`WATCHED`]) runs on its own task (`watch_task`). Each
//! keeps its objects keyed by namespace/name, buffers a (re)list until it is complete and sends
//! changes to one publisher task (`publish`), which coalesces bursts within
//! `source.debounce_ms` and publishes only once every watch has finished its initial list.
//!
//! Faults (issue 4):
//! - A getambassador.io CRD that is not installed (404 on list) is logged once, counts as synced
//!   and empty, and is listed again every `crd_retry` until it appears.
//! - RBAC refusal (403) is an error naming the verb and resource. A watch that has never synced
//!   keeps readiness pending: legate must not take traffic with a config missing, say, every
//!   TLS Secret. The error is logged on each change of state and shown in [`WatchStatus`]; once
//!   the initial sync is done, a later 403 keeps the last state, like an unreachable API server.
//! - Watch errors, dropped connections and 410 Gone are retried with exponential backoff; the
//!   watcher resumes from its last resourceVersion or relists. A relist replaces the resource's
//!   objects atomically when it completes, so nothing half-listed is ever published.
//! - Losing the API server keeps the last published state.
//!
//! Fields legate never reads (`managedFields`, the last-applied annotation, `status`, a
//! Secret's other fields, an endpoint's `targetRef`...) are dropped as objects are read
//! (`strip`).
//!
//! `ambassador_id` filtering is the translation's job, as for the file source.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::core::ApiResource;
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::SourceSettings;
use crate::readiness;
use crate::source::SourceState;

mod detect;
mod publish;
mod strip;
mod watch_task;

pub use detect::{Environment, detect};

/// Errors setting up the Kubernetes source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot read the in-cluster configuration")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("cannot build the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// One watched resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural resource name, as in URLs and RBAC rules.
    pub plural: &'static str,
    /// A getambassador.io custom resource: may be absent (CRD not installed) and is filtered by
    /// the label selector.
    pub custom: bool,
    /// Field selector always applied (TLS Secrets only).
    pub field_selector: Option<&'static str>,
}

impl Watched {
    /// `apiVersion` of the objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `mappings.getambassador.io`, `services`: the name RBAC and error messages use.
    pub fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }
}

const fn custom(kind: &'static str, plural: &'static str) -> Watched {
    Watched {
        group: "getambassador.io",
        version: "v3alpha1",
        kind,
        plural,
        custom: true,
        field_selector: None,
    }
}

/// Everything the source watches. The ClusterRole in `image/kubernetes/` grants get/list/watch
/// on exactly these (checked by `tests/manifests.rs`).
pub const WATCHED: &[Watched] = &[
    custom("Mapping", "mappings"),
    custom("Host", "hosts"),
    custom("Listener", "listeners"),
    custom("TLSContext", "tlscontexts"),
    custom("Module", "modules"),
    custom("TCPMapping", "tcpmappings"),
    // AuthService and RateLimitService
    custom("AuthService", "authservices"),
    custom("RateLimitService", "ratelimitservices"),
    // LogService / TracingService.
    custom("LogService", "logservices"),
    custom("TracingService", "tracingservices"),
    Watched {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        custom: false,
        field_selector: None,
    },
    Watched {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        custom: false,
        field_selector: None,
    },
    Watched {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        custom: false,
        field_selector: Some("type=kubernetes.io/tls"),
    },
];

/// Which namespaces are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Namespace(String),
}

impl Scope {
    /// `AMBASSADOR_SINGLE_NAMESPACE` restricts to `AMBASSADOR_NAMESPACE` (default `default`).
    pub fn from_settings(settings: &SourceSettings) -> Self {
        if settings.single_namespace {
            Scope::Namespace(
                settings
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
            )
        } else {
            Scope::All
        }
    }

    fn describe(&self) -> String {
        match self {
            Scope::All => "in all namespaces".into(),
            Scope::Namespace(ns) => format!("in namespace {ns:?}"),
        }
    }
}

/// Retry timings. The defaults suit a cluster; tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Coalescing window (`source.debounce_ms`).
    pub debounce: Duration,
    /// First retry delay after a watch error; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How often a missing CRD is looked for again.
    pub crd_retry: Duration,
    /// A watch that failed after its initial sync counts as recovered once its resumed
    /// stream has run this long without error (kube's watcher reports no successful
    /// re-watch); longer than kube's 30 s connect timeout, so a hanging connect is not taken
    /// for a recovery.
    pub recovered_after: Duration,
}

impl Timing {
    pub fn from_settings(settings: &SourceSettings) -> Self {
        Timing {
            debounce: Duration::from_millis(settings.debounce_ms),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            crd_retry: Duration::from_secs(15),
            recovered_after: Duration::from_secs(35),
        }
    }
}

/// The state of one watch, for logs, the admin endpoint and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "message")]
pub enum WatchStatus {
    /// Initial list not complete yet.
    Pending,
    /// Listed and watching.
    Synced,
    /// The CRD is not installed; treated as empty.
    Missing,
    /// RBAC refused a request: `forbidden: cannot list mappings.getambassador.io in all namespaces`.
    Forbidden(String),
    /// Any other failure (API server unreachable, watch error); retried with backoff.
    Failing(String),
}

/// Status of every watch, keyed by [`Watched::resource_name`].
pub type Statuses = BTreeMap<String, WatchStatus>;

/// The Kubernetes source. `new`, then `status()` if wanted, then `spawn()`.
pub struct KubernetesSource {
    client: kube::Client,
    scope: Scope,
    label_selector: Option<String>,
    timing: Timing,
    guard: readiness::Guard,
    status: watch::Sender<Statuses>,
}

impl KubernetesSource {
    /// `guard` is released after the first complete sync of every watch.
    pub fn new(client: kube::Client, settings: &SourceSettings, guard: readiness::Guard) -> Self {
        let pending = WATCHED
            .iter()
            .map(|w| (w.resource_name(), WatchStatus::Pending))
            .collect();
        KubernetesSource {
            client,
            scope: Scope::from_settings(settings),
            label_selector: settings.label_selector.clone().filter(|s| !s.is_empty()),
            timing: Timing::from_settings(settings),
            guard,
            status: watch::Sender::new(pending),
        }
    }

    /// Replaces the retry timings (tests).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Per-watch status, updated as watches sync and fail.
    pub fn status(&self) -> watch::Receiver<Statuses> {
        self.status.subscribe()
    }

    /// Starts the watches and the publisher on the current runtime. They stop when every
    /// receiver of the returned channel is dropped.
    pub fn spawn(self) -> watch::Receiver<Arc<SourceState>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let mut tasks = Vec::with_capacity(WATCHED.len());
        for (slot, watched) in WATCHED.iter().enumerate() {
            let task = watch_task::WatchTask {
                slot,
                watched: *watched,
                client: self.client.clone(),
                scope: self.scope.clone(),
                label_selector: if watched.custom {
                    self.label_selector.clone()
                } else {
                    None
                },
                timing: self.timing.clone(),
                tx: tx.clone(),
            };
            let span = tracing::info_span!("kubernetes_watch", resource = %watched.resource_name());
            tasks.push(tokio::spawn(task.run().instrument(span)).abort_handle());
        }
        drop(tx);
        let (state_tx, state_rx) = watch::channel(Arc::new(SourceState::default()));
        let publisher = publish::Publisher::new(
            self.scope,
            self.timing.debounce,
            self.guard,
            self.status,
            state_tx,
            tasks,
        );
        tokio::spawn(
            publisher
                .run(rx)
                .instrument(tracing::info_span!("kubernetes_source")),
        );
        state_rx
    }
}
