//! Issue 11, item 5: replicas behind a load balancer lose no request through 50 config changes,
//! a rolling restart and scaling 3 → 5 → 3, and serve identical IR afterwards.
//! `scripts/bench-replicas` builds the topology (3 hardened legate replicas sharing a
//! read-only config dir, Envoy from legate's image as the balancer with active /ready checks,
//! 2 upstreams) and drives a strict load generator that counts every failure; it exits 1 when a
//! zero-failure scenario lost a request or the IR hashes differ. Its figures go to
//! BENCHMARKS.md; here only the outcome is asserted.

#[path = "common/docker.rs"]
mod docker;

use std::process::Command;

#[test]
fn replicas_roll_scale_and_reconfigure_without_a_failed_request() {
    let Some(_scope) = docker::require() else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-replicas");
    let out = Command::new(script)
        .args(["--rate", "200", "--threads", "8"])
        .output()
        .expect("scripts/bench-replicas runs (python3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for scenario in [
        "50 config changes",
        "rolling restart of 3",
        "scale 3 → 5 → 3",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("no {scenario:?} line: {stdout}"));
        assert!(
            line.contains(", 0 failed") && line.ends_with("OK"),
            "{line}"
        );
    }
    assert!(stdout.contains("(identical)"), "{stdout}");
}
