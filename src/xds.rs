//! Envoy configuration over ADS: IR → Envoy resources (`resources`), versioned immutable
//! snapshots (`snapshot`), and the gRPC ADS server, SotW and delta (`server`).

pub mod resources;
pub mod server;
pub mod snapshot;

pub use snapshot::{Piece, Resource, Snapshot, TypeKind, TypeSnapshot};
