//! Configuration sources: each one watches where resources live (a directory, the Kubernetes
//! API) and publishes complete, consistent sets of [`RawObject`]s for the translation.
//!
//! A source never publishes a half-read input: every [`SourceState`] is a whole view.

use crate::api::{RawObject, ResourceError};

pub mod kubernetes;

/// One complete view of a source's input, published through a
/// `tokio::sync::watch::Receiver<Arc<SourceState>>`. `generation` increases with every
/// publication; generation 0 is the initial value, before the first sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceState {
    pub generation: u64,
    pub objects: Vec<RawObject>,
    pub errors: Vec<ResourceError>,
}
