//! Test harness: a real server on a real socket, scripted SotW and delta clients, and
//! hand-built snapshots of small but valid Envoy resources.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::Address as PbAddress;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, Node, SocketAddress, address,
    config_source, data_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost, route, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    GenericSecret, Secret, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use envoy_types::util::pack_any;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use crate::config::XdsSettings;
use crate::metrics::Metrics;
use crate::xds::server::{Address, Clients, Server, ServerError};
use crate::xds::snapshot::{Resource, Snapshot, TypeKind, TypeSnapshot};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a test watches for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------- snapshots

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

fn socket(port: u32) -> PbAddress {
    PbAddress {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// An EDS cluster; `timeout` distinguishes versions of "the same" cluster.
pub fn eds_cluster(name: &str, timeout: i64) -> Resource {
    let c = Cluster {
        name: name.into(),
        connect_timeout: Some(PbDuration {
            seconds: timeout,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        ..Default::default()
    };
    res(name, &format!("{name}-t{timeout}"), pack_any(c))
}

pub fn cla(name: &str, port: u32) -> Resource {
    let c = ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket(port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    res(name, &format!("{name}-p{port}"), pack_any(c))
}

/// An HTTP listener on 127.0.0.1:`port` whose routes come from RDS `route`.
pub fn listener(name: &str, port: u32, route: &str) -> Resource {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route.into(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let l = Listener {
        name: name.into(),
        address: Some(socket(port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    res(name, &format!("{name}-{port}-{route}"), pack_any(l))
}

/// A route configuration answering every request with `status` and `body`.
pub fn direct_route(name: &str, status: u32, body: &str) -> Resource {
    let r = RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status,
                    body: Some(DataSource {
                        specifier: Some(data_source::Specifier::InlineString(body.into())),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    res(name, &format!("{name}-{status}-{body}"), pack_any(r))
}

pub fn secret(name: &str, value: &str) -> Resource {
    let s = Secret {
        name: name.into(),
        r#type: Some(secret::Type::GenericSecret(GenericSecret {
            secret: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(value.into())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    };
    res(name, &format!("{name}-{value}"), pack_any(s))
}

fn res(name: &str, version: &str, body: envoy_types::pb::google::protobuf::Any) -> Resource {
    Resource {
        name: name.into(),
        version: version.into(),
        body,
    }
}

/// Builds a snapshot type by type; each type's version is given explicitly.
#[derive(Default)]
pub struct Snap(Snapshot);

impl Snap {
    pub fn new() -> Self {
        Snap::default()
    }
    pub fn with(mut self, kind: TypeKind, version: &str, resources: Vec<Resource>) -> Self {
        let resources = resources.into_iter().map(|r| (r.name.clone(), r)).collect();
        self.0.types.insert(
            kind,
            TypeSnapshot {
                version: version.into(),
                resources,
            },
        );
        self
    }
    pub fn build(self) -> Arc<Snapshot> {
        Arc::new(self.0)
    }
}

/// One EDS cluster `c1` with endpoints, a listener `l1` using route `r1`, and secret `s1`;
/// every type at version `v`.
pub fn basic(v: &str) -> Snap {
    Snap::new()
        .with(TypeKind::Secret, v, vec![secret("s1", "a")])
        .with(TypeKind::Cluster, v, vec![eds_cluster("c1", 1)])
        .with(TypeKind::Endpoint, v, vec![cla("c1", 9001)])
        .with(TypeKind::Listener, v, vec![listener("l1", 10001, "r1")])
        .with(TypeKind::Route, v, vec![direct_route("r1", 200, "hi")])
}

pub fn versions(v: &str) -> BTreeMap<TypeKind, String> {
    TypeKind::ORDER
        .into_iter()
        .map(|k| (k, v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- server

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
