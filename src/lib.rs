//! legate: PID 1 for an Envoy edge container, and its ADS control plane.

pub mod address;
pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod drain;
pub mod envoy;
pub mod error;
pub mod exit;
pub mod http;
pub mod ir;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod probe;
pub mod readiness;
pub mod reaper;
pub mod runtime_dir;
pub mod signal;
pub mod source;
pub mod telemetry;
pub mod translate;
pub mod xds;
