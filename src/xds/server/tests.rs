//! Scripted in-process ADS clients against the real server over real sockets, plus one test
//! with the real Envoy.

mod build;
mod client;
mod delta;
mod envoy;
mod sotw;
