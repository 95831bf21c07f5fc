//! Test harness: a real server on a real socket, and scripted SotW and delta clients.

use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use crate::config::XdsSettings;
use crate::metrics::Metrics;
use crate::xds::server::{Address, Clients, Server, ServerError};
use crate::xds::snapshot::{Snapshot, TypeKind};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a test watches for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A server on a real socket, fed by a snapshot channel the test controls.
pub struct Harness {
    pub publish: watch::Sender<Option<Arc<Snapshot>>>,
    pub clients: Clients,
    pub metrics: Arc<Metrics>,
    pub address: Address,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<Result<(), ServerError>>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// On 127.0.0.1, port 0.
    pub async fn tcp() -> Harness {
        Harness::start("127.0.0.1:0").await
    }

    pub async fn unix() -> Harness {
        Harness::start("unix").await
    }

    async fn start(address: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let settings = XdsSettings {
            address: address.into(),
            ..XdsSettings::default()
        };
        let (publish, rx) = watch::channel(None);
        let metrics = Arc::new(Metrics::default());
        let server = Server::new(&settings, rx, metrics.clone());
        let bound = server.bind(&dir.path().join("xds.sock")).await.unwrap();
        let address = bound.address().clone();
        let clients = bound.clients();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(async {
            let _ = stopped.await;
        }));
        Harness {
            publish,
            clients,
            metrics,
            address,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn set(&self, snap: Arc<Snapshot>) {
        self.publish.send_replace(Some(snap));
    }

    pub async fn channel(&self) -> Channel {
        match &self.address {
            Address::Tcp(a) => TonicEndpoint::from_shared(format!("http://{a}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
            Address::Unix(p) => {
                let p = p.clone();
                TonicEndpoint::from_static("http://localhost")
                    .connect_with_connector(tower::service_fn(move |_| {
                        let p = p.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(p).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                        }
                    }))
                    .await
                    .unwrap()
            }
        }
    }

    pub async fn sotw(&self, node: &str) -> SotwClient {
        SotwClient::connect(self.channel().await, node).await
    }

    pub async fn delta(&self, node: &str) -> DeltaClient {
        DeltaClient::connect(self.channel().await, node).await
    }

    /// Waits until `f` holds for the registry.
    pub async fn until(&self, what: &str, f: impl Fn(&Clients) -> bool) {
        let mut changes = self.clients.subscribe();
        let wait = async {
            loop {
                if f(&self.clients) {
                    return;
                }
                let _ = changes.changed().await;
            }
        };
        if tokio::time::timeout(WAIT, wait).await.is_err() {
            panic!("timed out waiting for {what}: {:#?}", self.clients.state());
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn shutdown(&mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("server stops in time")
            .unwrap()
    }
}

fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        cluster: "test".into(),
        ..Default::default()
    }
}

async fn next<T: std::fmt::Debug>(rx: &mut Streaming<T>) -> T {
    match tokio::time::timeout(WAIT, rx.message()).await {
        Ok(Ok(Some(m))) => m,
        Ok(other) => panic!("stream ended: {other:?}"),
        Err(_) => panic!("no response within {WAIT:?}"),
    }
}

/// Asserts nothing arrives for [`QUIET`]; returns the stream's end if it ended.
async fn silent<T: std::fmt::Debug>(rx: &mut Streaming<T>) {
    if let Ok(m) = tokio::time::timeout(QUIET, rx.message()).await {
        panic!("expected silence, got {m:?}");
    }
}

// ---------------------------------------------------------------- SotW client

pub struct SotwClient {
    tx: mpsc::Sender<DiscoveryRequest>,
    pub rx: Streaming<DiscoveryResponse>,
    node: Node,
}

impl SotwClient {
    async fn connect(channel: Channel, id: &str) -> SotwClient {
        let (tx, rx) = mpsc::channel(64);
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let resp = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap();
        SotwClient {
            tx,
            rx: resp.into_inner(),
            node: node(id),
        }
    }

    /// Sends one request; `error` makes it a NACK.
    pub async fn send(
        &self,
        kind: TypeKind,
        names: &[&str],
        version: &str,
        nonce: &str,
        error: Option<&str>,
    ) {
        self.send_raw(DiscoveryRequest {
            version_info: version.into(),
            node: Some(self.node.clone()),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            type_url: kind.type_url().into(),
            response_nonce: nonce.into(),
            error_detail: error.map(|m| RpcStatus {
                code: 3,
                message: m.into(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    }

    pub async fn send_raw(&self, req: DiscoveryRequest) {
        self.tx.send(req).await.unwrap();
    }

    /// A first request (empty version and nonce).
    pub async fn subscribe(&self, kind: TypeKind, names: &[&str]) {
        self.send(kind, names, "", "", None).await;
    }

    pub async fn ack(&self, resp: &DiscoveryResponse, names: &[&str]) {
        let kind = TypeKind::from_type_url(&resp.type_url).unwrap();
        self.send(kind, names, &resp.version_info, &resp.nonce, None)
            .await;
    }

    pub async fn nack(&self, resp: &DiscoveryResponse, names: &[&str], kept: &str, message: &str) {
        let kind = TypeKind::from_type_url(&resp.type_url).unwrap();
        self.send(kind, names, kept, &resp.nonce, Some(message))
            .await;
    }

    pub async fn recv(&mut self) -> DiscoveryResponse {
        next(&mut self.rx).await
    }

    /// Receives one response and checks its type.
    pub async fn recv_type(&mut self, kind: TypeKind) -> DiscoveryResponse {
        let r = self.recv().await;
        assert_eq!(r.type_url, kind.type_url(), "unexpected response {r:?}");
        r
    }

    pub async fn silent(&mut self) {
        silent(&mut self.rx).await
    }
}

/// Resource names in a SotW response, decoded from the packed bodies via the snapshot types'
/// shared `name` field (field 1 in every type legate serves).
pub fn names(resp: &DiscoveryResponse) -> Vec<String> {
    resp.resources.iter().map(|a| any_name(&a.value)).collect()
}

fn any_name(bytes: &[u8]) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Named {
        #[prost(string, tag = "1")]
        name: String,
    }
    <Named as prost::Message>::decode(bytes).unwrap().name
}

// ---------------------------------------------------------------- delta client

pub struct DeltaClient {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    pub rx: Streaming<DeltaDiscoveryResponse>,
    node: Node,
}

impl DeltaClient {
    async fn connect(channel: Channel, id: &str) -> DeltaClient {
        let (tx, rx) = mpsc::channel(64);
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let resp = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap();
        DeltaClient {
            tx,
            rx: resp.into_inner(),
            node: node(id),
        }
    }

    pub async fn send(&self, mut req: DeltaDiscoveryRequest) {
        req.node = Some(self.node.clone());
        self.tx.send(req).await.unwrap();
    }

    pub async fn subscribe(&self, kind: TypeKind, names: &[&str], initial: &[(&str, &str)]) {
        self.send(DeltaDiscoveryRequest {
            type_url: kind.type_url().into(),
            resource_names_subscribe: names.iter().map(|s| s.to_string()).collect(),
            initial_resource_versions: initial
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
        .await;
    }

    pub async fn change(&self, kind: TypeKind, add: &[&str], remove: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: kind.type_url().into(),
            resource_names_subscribe: add.iter().map(|s| s.to_string()).collect(),
            resource_names_unsubscribe: remove.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await;
    }

    pub async fn ack(&self, resp: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    pub async fn nack(&self, resp: &DeltaDiscoveryResponse, message: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: message.into(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    }

    pub async fn recv_type(&mut self, kind: TypeKind) -> DeltaDiscoveryResponse {
        let r = next(&mut self.rx).await;
        assert_eq!(r.type_url, kind.type_url(), "unexpected response {r:?}");
        r
    }

    pub async fn silent(&mut self) {
        silent(&mut self.rx).await
    }
}

/// `(name, version)` of every resource in a delta response.
pub fn delta_names(resp: &DeltaDiscoveryResponse) -> Vec<(String, String)> {
    resp.resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}
