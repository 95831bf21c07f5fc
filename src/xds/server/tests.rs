//! Scripted in-process ADS clients against the real server over real sockets, plus one test
//! with the real Envoy.

mod build;
// The test port allocator shared with tests/ (one copy of the code).
mod client;
mod delta;
mod envoy;
#[path = "../../../tests/common/ports.rs"]
mod ports;
mod sotw;
