//! legate: PID 1 for an Envoy edge container, and its ADS control plane.

pub mod api;
pub mod cmd;
pub mod config;
pub mod drain;
pub mod envoy;
pub mod ir;
pub mod metrics;
pub mod pipeline;
pub mod readiness;
pub mod reaper;
pub mod source;
pub mod translate;
pub mod xds;
