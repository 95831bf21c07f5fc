//! Process-level lifecycle of the built binary with the real Envoy 1.40: the drain on SIGTERM,
//! a second signal, Envoy crashes and the restart budget, PID 1 in a new PID namespace, and
//! SIGTERM before Envoy is ready. Each test starts its own `legate run` (see `common/process.rs`)
//! against a test backend; no Envoy or legate outlives its test.

#[path = "common/backend.rs"]
mod backend;
#[path = "common/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "common/process.rs"]
mod legate;
#[path = "common/ports.rs"]
mod ports;

use std::time::{Duration, Instant};

use backend::Backend;
use legate::{Legate, Spec, WAIT, ns_pids, parent, running, state, zombie_children};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn envoy() -> Option<std::path::PathBuf> {
    ::legate::envoy::locate::for_tests()
}

/// No Envoy of this legate is left running, neither the one seen on admin nor any other.
fn assert_no_envoy(legate: &Legate, seen: &[i32]) {
    for &pid in seen {
        assert!(!running(pid), "envoy {pid} still runs after legate exited");
    }
    assert_eq!(legate.envoys(), Vec::<i32>::new(), "envoys left behind");
}

/// Writes an executable `/bin/sh` script (an Envoy wrapper).
fn write_script(path: &std::path::Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// SIGTERM during an in-flight request: readiness flips at once, new connections are still
/// served (with `Connection: close`), the request completes (the backend holds it until the
/// test has seen all that), legate stops Envoy and exits 0.
///
/// Envoy 1.40 with `drain_listeners?graceful&skip_exit` keeps accepting for as long as it runs
/// and puts `Connection: close` on every HTTP/1 response; it never stops on its own. legate stops
/// it once no data-plane connection is left (after `drain.min_ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let Some(envoy) = envoy() else { return };
    let backend = Backend::start("drain").await;
    let mut legate = Legate::start(
        Spec::new(envoy, backend.port())
            .args(&["--drain-min-ms", "500", "--drain-deadline-ms", "15000"])
            .env("LEGATE_DRAIN__POLL_MS", "50"),
    );
    legate.wait_ready().await;
    let reply = legate.wait_traffic("drain").await;
    assert!(
        reply.headers.get("connection").is_none(),
        "no Connection: close before the drain: {:?}",
        reply.headers
    );
    let envoy_pid = legate.envoy_pid().await;

    let before = backend.hits.load(std::sync::atomic::Ordering::SeqCst);
    let listener = legate.listener;
    let slow = tokio::spawn(async move { http::get(listener, "/held").await });
    http::eventually(WAIT, "the slow request reaches the backend", || async {
        (backend.hits.load(std::sync::atomic::Ordering::SeqCst) > before).then_some(())
    })
    .await;

    legate.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    let pending = legate.wait_not_ready().await;
    assert!(
        !slow.is_finished(),
        "/ready flipped only after the in-flight request finished"
    );
    assert!(pending.contains("not draining"), "/ready body: {pending}");

    // New connections during the drain: accepted, answered, and told to close.
    let mut told_to_close = false;
    for _ in 0..100 {
        let reply = http::get(legate.listener, "/")
            .await
            .expect("a new connection during the drain is served");
        assert_eq!(reply.status, 200, "during the drain: {}", reply.body);
        assert_eq!(reply.backend().as_deref(), Some("drain"));
        if reply
            .headers
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            told_to_close = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        told_to_close,
        "no response carried Connection: close while Envoy drained"
    );
    // Still draining (the held request keeps a connection open): still not ready.
    let ready = legate.ready().await;
    assert!(
        matches!(ready, Some((503, _))),
        "during the drain: {ready:?}"
    );
    assert!(!slow.is_finished(), "the held request finished early");
    backend.release_held();

    let slow = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_eq!(slow.backend().as_deref(), Some("drain"));
    assert_eq!(slow.json()["path"], "/held");

    let status = legate.wait_exit(WAIT).await;
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after a clean drain ({took:?})"
    );
    assert!(legate.logged("\"drained\""), "no `drained` log line");
    assert_no_envoy(&legate, &[envoy_pid]);
}

/// A second SIGTERM during a long drain stops Envoy at once and exits 4 (FORCED), well before
/// the minimum drain time and without the signal thread's 10 s safety net.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigterm_exits_4_at_once() {
    let Some(envoy) = envoy() else { return };
    let backend = Backend::start("fast").await;
    let mut legate = Legate::start(Spec::new(envoy, backend.port()).args(&[
        "--drain-min-ms",
        "60000",
        "--drain-deadline-ms",
        "90000",
    ]));
    legate.wait_ready().await;
    legate.wait_traffic("fast").await;
    let envoy_pid = legate.envoy_pid().await;

    legate.signal(Signal::SIGTERM);
    legate.wait_not_ready().await;
    http::eventually(WAIT, "envoy draining", || async {
        (legate.envoy_status().await["state"] == "DRAINING").then_some(())
    })
    .await;
    legate.signal(Signal::SIGTERM);
    // The drain minimum is 60 s. The signal thread's safety net would exit 4 too, but it logs
    // "fast exit took too long" first: that line, not a wall-clock bound, tells them apart.
    let status = legate.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(4), "second signal = forced exit");
    assert!(legate.logged("fast exit requested"));
    assert!(!legate.logged("fast exit took too long"));
    assert_no_envoy(&legate, &[envoy_pid]);
}

/// SIGKILLed Envoy: `/ready` goes 503, a new Envoy (new pid) becomes ready and serves traffic,
/// and the old one was reaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_envoy_is_restarted() {
    let Some(envoy) = envoy() else { return };
    let backend = Backend::start("crash").await;
    let mut legate = Legate::start(Spec::new(envoy, backend.port()).args(&["--drain-min-ms", "0"]));
    legate.wait_ready().await;
    legate.wait_traffic("crash").await;
    let first = legate.envoy_pid().await;

    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let pending = legate.wait_not_ready().await;
    // Whichever legate notices first: the process exit or the closed ADS stream.
    assert!(
        pending.contains("envoy live") || pending.contains("envoy acked config"),
        "/ready body: {pending}"
    );
    legate.wait_ready().await;
    let status = legate.envoy_status().await;
    let second = status["pid"].as_i64().expect("a pid once ready") as i32;
    assert_ne!(second, first, "a new envoy");
    assert_eq!(status["restarts"], 1);
    assert_eq!(status["state"], "LIVE");
    assert_eq!(
        status["last_exit"]["signal"], 9,
        "last exit recorded: {status}"
    );
    legate.wait_traffic("crash").await;
    assert_eq!(state(first), None, "the killed envoy was reaped");

    legate.signal(Signal::SIGTERM);
    assert_eq!(legate.wait_exit(WAIT).await.code(), Some(0));
    assert_no_envoy(&legate, &[first, second]);
}

/// Budget 1: the first death is restarted, the second ends legate with exit 3 (RESTART_BUDGET).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_restart_budget_exits_3() {
    let Some(envoy) = envoy() else { return };
    let backend = Backend::start("budget").await;
    let mut legate = Legate::start(
        Spec::new(envoy, backend.port())
            .env("LEGATE_ENVOY__RESTART__BUDGET", "1")
            .env("LEGATE_ENVOY__RESTART__INITIAL_BACKOFF_MS", "10")
            .env("LEGATE_ENVOY__RESTART__MAX_BACKOFF_MS", "50"),
    );
    legate.wait_ready().await;
    let mut killed = vec![];
    let start = Instant::now();
    let status = loop {
        if let Some(status) = legate.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < WAIT, "legate kept running");
        let pid = http::get(legate.admin, "/envoy")
            .await
            .ok()
            .and_then(|r| r.json()["pid"].as_i64());
        if let Some(pid) = pid.map(|p| p as i32)
            && !killed.contains(&pid)
        {
            kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
            killed.push(pid);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    legate.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(3), "exit code for a spent budget");
    assert_eq!(
        killed.len(),
        2,
        "one restart allowed, then exit: {killed:?}"
    );
    assert!(
        legate.logged("restart budget"),
        "stderr names the restart budget"
    );
    assert_no_envoy(&legate, &killed);
}

/// legate as PID 1 of a new PID namespace reaps orphaned grandchildren (a `sleep` left behind
/// by each run of the Envoy wrapper script, running until the test kills it, however long
/// Envoy takes to start), leaves no zombie, and still drains and exits 0 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid1_reaps_orphans() {
    let Some(envoy) = envoy() else { return };
    let backend = Backend::start("pid1").await;
    let dir = tempfile::tempdir().unwrap();
    let orphans = dir.path().join("orphans");
    let wrapper = dir.path().join("envoy-wrapper");
    write_script(
        &wrapper,
        &format!(
            // The orphan must not hold the wrapper's output pipes: legate reads them to the end.
            "( sleep 600 </dev/null >/dev/null 2>&1 & echo $! >> '{}' )\nexec '{}' \"$@\"\n",
            orphans.display(),
            envoy.display()
        ),
    );
    let unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .unwrap_or_else(|e| panic!("this test needs util-linux `unshare` (as root): {e}"));
    assert!(
        unshare.status.success(),
        "`unshare --pid --fork --mount-proc` is not permitted here (tests must run as root \
         with CAP_SYS_ADMIN): {}",
        String::from_utf8_lossy(&unshare.stderr)
    );

    let mut spec = Spec::new(wrapper, backend.port()).args(&["--drain-min-ms", "0"]);
    spec.pid1 = true;
    let mut legate = Legate::start_in(spec, dir);
    legate.wait_ready().await;
    legate.wait_traffic("pid1").await;

    // legate is the unshare process's child, and PID 1 inside.
    let outer = legate.pid().as_raw();
    let pid1 = legate::pids()
        .into_iter()
        .find(|&p| parent(p) == Some(outer))
        .expect("legate under unshare");
    assert_eq!(ns_pids(pid1).last(), Some(&1), "legate is PID 1 inside");

    // Every orphan (one per wrapper run: the bootstrap check and Envoy) was re-parented to
    // legate and still runs.
    let inner: Vec<i32> = std::fs::read_to_string(&orphans)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(!inner.is_empty());
    let host_pid = |inner_pid: i32| {
        legate::pids().into_iter().find(|&p| {
            let ns = ns_pids(p);
            ns.len() >= 2 && ns.last() == Some(&inner_pid) && parent(p) == Some(pid1)
        })
    };
    let orphans: Vec<i32> = inner
        .iter()
        .map(|&p| host_pid(p).unwrap_or_else(|| panic!("orphan {p} is not legate's child")))
        .collect();
    for &orphan in &orphans {
        assert!(running(orphan), "orphan {orphan} is still sleeping");
    }

    // Once they exit they are reaped: gone from /proc, not zombies.
    for &orphan in &orphans {
        kill(Pid::from_raw(orphan), Signal::SIGKILL).unwrap();
    }
    http::eventually(WAIT, "the orphans exit and are reaped", || async {
        orphans.iter().all(|&o| state(o).is_none()).then_some(())
    })
    .await;
    for p in &inner {
        assert_eq!(host_pid(*p), None, "orphan {p} left behind");
    }
    assert_eq!(zombie_children(pid1), Vec::<i32>::new(), "zombies left");

    kill(Pid::from_raw(pid1), Signal::SIGTERM).unwrap();
    let status = legate.wait_exit(WAIT).await;
    assert_eq!(
        status.code(),
        Some(0),
        "unshare passes on legate's exit code"
    );
    assert_no_envoy(&legate, &[]);
}

/// SIGTERM right after start, while the bootstrap is still being checked: a clean exit (0),
/// no Envoy started or left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_startup_exits_0() {
    let Some(envoy) = envoy() else { return };
    let backend = Backend::start("early").await;
    let mut legate = Legate::start(Spec::new(envoy, backend.port()));
    legate.signal(Signal::SIGTERM);
    let status = legate.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0));
    assert_no_envoy(&legate, &[]);
}

/// SIGTERM once Envoy runs but before it is ready: a clean exit (0), Envoy stopped and reaped.
/// Envoy is started through a wrapper that holds it until the test has seen it not ready, then
/// execs the real Envoy just before the SIGTERM, so the signal meets an Envoy starting up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_envoy_starts_exits_0() {
    let Some(envoy) = envoy() else { return };
    let backend = Backend::start("starting").await;
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let wrapper = dir.path().join("envoy-wrapper");
    // The bootstrap check (`--mode validate`) runs at once; Envoy itself waits for `release`.
    write_script(
        &wrapper,
        &format!(
            "case \"$*\" in *validate*) ;; *) while [ ! -e '{}' ]; do sleep 0.02; done ;; esac\n\
             exec '{}' \"$@\"\n",
            release.display(),
            envoy.display()
        ),
    );
    let mut legate = Legate::start_in(Spec::new(wrapper, backend.port()), dir);
    let pid = http::eventually(WAIT, "an envoy process", || async {
        let status = legate.envoy_status().await;
        status["pid"].as_i64().map(|p| p as i32)
    })
    .await;
    let ready = legate.ready().await;
    assert!(
        matches!(ready, Some((503, _))),
        "ready before Envoy ran: {ready:?}"
    );
    std::fs::write(&release, "").unwrap();
    legate.signal(Signal::SIGTERM);
    let status = legate.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0));
    assert_no_envoy(&legate, &[pid]);
}
