//! The ADS gRPC server: State-of-the-World and delta on one tonic server, bound to loopback or
//! a unix socket only, fed by the snapshot `watch`.
//!
//! Every stream runs as its own task (`stream::drive`) with a protocol state machine
//! (`sotw`, `delta`); the shared [`Clients`] registry holds what outlives a stream (the last
//! accepted content per type, rejected versions) and what readiness and the admin endpoint
//! read.

mod clients;
mod delta;
mod sotw;
mod stream;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

pub use crate::address::{Address, AddressError};
pub use clients::{ClientState, Clients, Nack, Protocol, TypeState};

use crate::config::XdsSettings;
use crate::metrics::Metrics;
use crate::xds::snapshot::Snapshot;
use stream::{Ctx, Handler};

/// Responses buffered per stream before the stream task waits for the client to read.
const STREAM_BUFFER: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid xds.address")]
    Address(#[source] AddressError),
    #[error("cannot bind the xds server to {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the xds server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// The ADS server, before binding.
pub struct Server {
    settings: XdsSettings,
    ctx: Ctx,
    stop: watch::Sender<bool>,
}

impl Server {
    pub fn new(
        settings: &XdsSettings,
        snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        Server {
            settings: settings.clone(),
            ctx: Ctx {
                clients: Clients::new(),
                snapshots,
                metrics,
                stop: stop_rx,
            },
            stop,
        }
    }

    /// The registry of connected clients (for readiness, metrics and admin).
    pub fn clients(&self) -> Clients {
        self.ctx.clients.clone()
    }

    /// Binds `settings.address`; `unix_path` is the socket used for `unix`. A unix socket is
    /// created mode 0600 (a stale one is replaced).
    pub async fn bind(self, unix_path: &Path) -> Result<Bound, ServerError> {
        let address = Address::from_setting(&self.settings.address, unix_path.to_path_buf())
            .map_err(ServerError::Address)?;
        let bind_err = |source| ServerError::Bind {
            addr: address.to_string(),
            source,
        };
        let (listener, address) = match &address {
            Address::Tcp(a) => {
                let l = TcpListener::bind(a).await.map_err(bind_err)?;
                let local = l.local_addr().map_err(bind_err)?;
                (Listener::Tcp(l), Address::Tcp(local))
            }
            Address::Unix(p) => {
                remove_stale_socket(p).map_err(bind_err)?;
                let l = UnixListener::bind(p).map_err(bind_err)?;
                set_owner_only(p).map_err(bind_err)?;
                (Listener::Unix(l), address.clone())
            }
        };
        tracing::info!(address = %address, "xds server bound");
        Ok(Bound {
            server: self,
            listener,
            address,
        })
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A bound ADS server, ready to serve.
pub struct Bound {
    server: Server,
    listener: Listener,
    address: Address,
}

impl Bound {
    /// The address actually bound (the real port when 0 was asked for).
    pub fn address(&self) -> &Address {
        &self.address
    }

    pub fn clients(&self) -> Clients {
        self.server.clients()
    }

    /// Serves SotW and delta ADS until `shutdown` completes; then every stream is ended (a
    /// long-lived stream would otherwise hold a graceful shutdown forever) and the unix socket
    /// is removed.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let Bound {
            server,
            listener,
            address,
        } = self;
        let limit = server.settings.max_message_bytes;
        let svc = AggregatedDiscoveryServiceServer::new(Ads { ctx: server.ctx })
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let stop = server.stop;
        let signal = async move {
            shutdown.await;
            tracing::info!("xds server stopping");
            let _ = stop.send(true);
        };
        let router = tonic::transport::Server::builder().add_service(svc);
        let result = match listener {
            Listener::Tcp(l) => {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(l), signal)
                    .await
            }
            Listener::Unix(l) => {
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(l), signal)
                    .await
            }
        };
        if let Address::Unix(p) = &address {
            let _ = std::fs::remove_file(p);
        }
        tracing::info!("xds server stopped");
        result.map_err(ServerError::Serve)
    }
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

struct Ads {
    ctx: Ctx,
}

impl Ads {
    fn spawn<H: Handler>(
        &self,
        requests: Streaming<H::Req>,
        make: impl FnOnce(u64, Clients, Arc<Metrics>) -> H,
    ) -> ReceiverStream<Result<H::Resp, Status>> {
        let (id, replaced) = self.ctx.clients.register(H::PROTOCOL);
        let handler = make(id, self.ctx.clients.clone(), self.ctx.metrics.clone());
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(
            stream::drive(self.ctx.clone(), handler, requests, tx, id, replaced)
                .instrument(tracing::info_span!("ads_stream", stream = id)),
        );
        ReceiverStream::new(rx)
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(
            self.spawn(request.into_inner(), sotw::Sotw::new),
        ))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(
            self.spawn(request.into_inner(), delta::Delta::new),
        ))
    }
}
