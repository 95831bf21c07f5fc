//! Real signals raised at this test process. Signals are process-wide, so this binary holds a
//! single test that walks through every case in order.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use legate::drain::{self, Phase};
use legate::signal;
use nix::sys::signal::{Signal, raise};

/// Kills the child when the test ends, pass or fail.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn signals_drive_the_drain_and_reach_envoy() {
    let (trigger, watch) = drain::channel();
    let envoy = Arc::new(signal::EnvoyForward::default());
    let registered = signal::register(trigger, envoy.clone(), None).unwrap();

    // SIGUSR1 goes through the forwarder Envoy's owner installed (here the test owns a shell
    // standing in for Envoy)
    let mut child = Reap(
        Command::new("sh")
            .args([
                "-c",
                "trap 'exit 7' USR1; echo armed; while :; do sleep 0.05; done",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "armed\n");
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    envoy.set(move |sig| nix::sys::signal::kill(pid, sig).is_ok());
    raise(Signal::SIGUSR1).unwrap();
    let mut status = None;
    eventually("envoy stand-in gets SIGUSR1", || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(7));

    // SIGHUP, SIGTTIN and SIGTTOU are ignored: no drain, and this process is neither killed
    // nor stopped by them
    raise(Signal::SIGHUP).unwrap();
    raise(Signal::SIGTTIN).unwrap();
    raise(Signal::SIGTTOU).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(watch.phase(), Phase::Running);

    // first SIGTERM: graceful drain; second: fast
    raise(Signal::SIGTERM).unwrap();
    eventually("drain starts", || watch.phase() == Phase::Draining);
    assert_eq!(watch.reason(), "SIGTERM");
    raise(Signal::SIGINT).unwrap();
    eventually("second signal escalates", || watch.phase() == Phase::Fast);
    assert_eq!(watch.reason(), "SIGINT");
    registered.close();
}
