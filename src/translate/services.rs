//! The external-service kinds: each turns into settings of every HTTP connection manager (and
//! TCP proxy) plus an upstream cluster for its server.

// LogService and TracingService (docs/design.md#logservice, docs/design.md#tracingservice).
pub(crate) mod collector;
pub(crate) mod log;
pub(crate) mod tracing;
