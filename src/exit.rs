//! legate's process exit codes: the one place they are defined.
//!
//! Every way the process ends maps to one of these codes, so an orchestrator (or a person
//! reading `kubectl describe pod`) can tell a clean drain from a forced one, bad settings from a
//! crashing Envoy. The README's exit-code table is this one:
//!
//! | code | constant            | meaning                                                                 |
//! |------|---------------------|-------------------------------------------------------------------------|
//! | 0    | [`CLEAN`]           | drained within the deadline, or a one-shot command succeeded             |
//! | 1    | [`FATAL`]           | fatal internal error (e.g. a port cannot be bound)                       |
//! | 2    | [`INVALID_SETTINGS`]| invalid settings or command-line usage                                   |
//! | 3    | [`RESTART_BUDGET`]  | Envoy kept dying: its restart budget is spent                            |
//! | 4    | [`FORCED`]          | forced exit: drain deadline passed with connections left, second signal or SIGQUIT |
//! | 5    | [`ENVOY_NOT_FOUND`] | the Envoy binary is missing or not executable                            |
//!
//! `legate check DIR` is a one-shot command: it exits [`CLEAN`] when every resource is valid and
//! [`FATAL`] (1) when it found invalid resources — the usual linter convention — and
//! [`INVALID_SETTINGS`] when it was called wrongly.

/// Drained within the deadline, or a one-shot command succeeded.
pub const CLEAN: u8 = 0;
/// A fatal internal error, e.g. a port that cannot be bound. `legate check` also uses 1 for
/// "invalid resources found".
pub const FATAL: u8 = 1;
/// Invalid settings (file, `LEGATE_*` environment, flags) or command-line usage. clap's own
/// usage errors exit 2 as well.
pub const INVALID_SETTINGS: u8 = 2;
/// Envoy was restarted as many times as its budget allows within the window and died again.
pub const RESTART_BUDGET: u8 = 3;
/// The drain deadline passed with connections still open, or a second SIGTERM/SIGINT, or
/// SIGQUIT, asked for an immediate exit.
pub const FORCED: u8 = 4;
/// The Envoy binary could not be found or is not executable.
pub const ENVOY_NOT_FOUND: u8 = 5;

/// Every code with its meaning, for `--help` text and documentation tests.
pub const TABLE: &[(u8, &str)] = &[
    (
        CLEAN,
        "drained within the deadline, or a one-shot command succeeded",
    ),
    (
        FATAL,
        "fatal internal error (e.g. a port cannot be bound); `check`: invalid resources found",
    ),
    (INVALID_SETTINGS, "invalid settings or command-line usage"),
    (RESTART_BUDGET, "Envoy restart budget spent"),
    (
        FORCED,
        "forced exit: drain deadline passed with connections left, second signal or SIGQUIT",
    ),
    (ENVOY_NOT_FOUND, "Envoy binary not found or not executable"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        let codes: Vec<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5]);
    }
}
