//! Tests of the test harness itself, no Envoy needed: the port allocator hands out exclusive
//! ports outside the ephemeral range, and the load generator behind every zero-failure check
//! sees each kind of failure (a wrong status, a refused connection, a reset, a timeout, a
//! keep-alive connection the server closes) against servers that misbehave on purpose, and
//! none against one that behaves.

#[path = "common/backend.rs"]
mod backend;
#[path = "common/http.rs"]
mod http;
#[path = "common/ports.rs"]
mod ports;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use backend::Backend;
use http::{Failure, LoadSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---- ports ----

#[test]
fn ports_are_distinct_outside_the_ephemeral_range_and_locked() {
    let (low, high) = ports::ephemeral_range();
    let taken: Vec<u16> = (0..20).map(|_| ports::port()).collect();
    let mut unique = taken.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        taken.len(),
        "a port handed out twice: {taken:?}"
    );
    for p in &taken {
        assert!(!(low..=high).contains(p), "{p} is in the ephemeral range");
        assert!(
            ports::try_lock(Path::new(ports::LOCK_DIR), *p).is_none(),
            "{p} can be locked again: it is not reserved"
        );
        // Free for the process it is handed to.
        std::net::TcpListener::bind(("0.0.0.0", *p))
            .unwrap_or_else(|e| panic!("port {p} cannot be bound: {e}"));
    }
}

#[test]
fn another_process_cannot_take_an_allocated_port() {
    let port = ports::port();
    let lock = Path::new(ports::LOCK_DIR).join(format!("{port}.lock"));
    // util-linux `flock` in another process: the lock is held, so it fails at once.
    let out = std::process::Command::new("flock")
        .arg("--nonblock")
        .arg(&lock)
        .arg("true")
        .output()
        .unwrap_or_else(|e| panic!("this test needs util-linux `flock`: {e}"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "another process could lock {}: {out:?}",
        lock.display()
    );
}

#[test]
fn the_range_is_parsed_and_the_allocatable_part_avoids_it() {
    assert_eq!(ports::parse_range("32768\t60999\n"), Some((32_768, 60_999)));
    assert_eq!(ports::parse_range("60999 32768"), None);
    assert_eq!(ports::parse_range(""), None);
    assert_eq!(ports::allocatable((32_768, 60_999)), (ports::FLOOR, 32_767));
    assert_eq!(ports::allocatable((1_024, 40_000)), (40_001, u16::MAX));
}

// ---- the load generator ----
//
// Each run waits for events (so many answers, so many failures), never for a time.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_server_gives_a_clean_report() {
    let b = Backend::start("b").await;
    let load = LoadSpec::new(b.addr, "/ok").connections(2).start();
    load.until_answered(20).await;
    let report = load.finish().await;
    report.assert_clean("a healthy backend", 20);
    assert_eq!(
        report.connections, 2,
        "keep-alive: one connection each: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_status_is_a_failure() {
    let b = Backend::start("b").await;
    let load = LoadSpec::new(b.addr, "/status/503").connections(1).start();
    load.until_failed(3).await;
    let report = load.finish().await;
    assert_eq!(report.ok, 0, "{report}");
    assert_eq!(report.count(Failure::Status), report.failures(), "{report}");
    assert!(report.samples[0].contains("status: 503"), "{report}");
    // ... unless it is the status the test expects.
    let load = LoadSpec::new(b.addr, "/status/503")
        .connections(1)
        .expect_status(503)
        .start();
    load.until_answered(3).await;
    load.finish().await.assert_clean("an expected 503", 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_backend_is_seen_closed_then_refused() {
    // On an allocated port: once stopped, nothing else can start listening there.
    let addr = SocketAddr::from(([127, 0, 0, 1], ports::port()));
    let b = Backend::start_on("b", addr).await.expect("bind");
    let load = LoadSpec::new(addr, "/").connections(2).start();
    load.until_answered(10).await;
    b.stop().await;
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    // Each open keep-alive connection is closed under the client once (closed, or reset when
    // a request was on the wire); after that every reconnect is refused.
    load.until_failed(4).await;
    let report = load.finish().await;
    assert!(report.ok >= 10, "{report}");
    let closed = report.count(Failure::Closed) + report.count(Failure::Reset);
    assert!((1..=2).contains(&closed), "{report}");
    assert!(report.count(Failure::Connect) >= 2, "{report}");
    assert!(report.to_string().contains("connect"), "{report}");
}

/// A raw TCP server on loopback handing each connection to `conn` on a task of its own.
async fn server<F, Fut>(conn: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(conn(s));
        }
    });
    addr
}

/// Answers the first request on a connection with `reply`, then closes the connection.
async fn answer_once(mut s: TcpStream, reply: &'static str) {
    if read_head(&mut s).await {
        let _ = s.write_all(reply.as_bytes()).await;
    }
}

/// A server answering every request with `Connection: close`, then closing.
async fn closing_server() -> SocketAddr {
    let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
    server(move |s| answer_once(s, reply)).await
}

/// A server that answers one request per connection as if it kept it alive, then closes it
/// while it is idle.
async fn idle_closing_server() -> SocketAddr {
    server(|s| answer_once(s, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")).await
}

/// A server that reads the request and resets the connection (SO_LINGER 0).
async fn resetting_server() -> SocketAddr {
    server(|mut s| async move {
        if read_head(&mut s).await {
            let _ = s.set_zero_linger();
        }
    })
    .await
}

/// A server that accepts and never answers (each connection is held for an hour).
async fn silent_server() -> SocketAddr {
    server(|s| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    })
    .await
}

/// Reads up to the end of a request head; false if the connection ended first.
async fn read_head(s: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_is_an_unplanned_reconnect_for_keep_alive_only() {
    let addr = closing_server().await;
    let load = LoadSpec::new(addr, "/").connections(1).start();
    load.until_answered(5).await;
    let report = load.finish().await;
    assert!(report.ok >= 5, "{report}");
    assert_eq!(report.count(Failure::Closed), report.ok, "{report}");
    assert_eq!(report.failures(), report.count(Failure::Closed), "{report}");
    assert!(report.samples[0].contains("Connection: close"), "{report}");

    // A new connection per request plans every connect: the same server is clean.
    let load = LoadSpec::new(addr, "/")
        .connections(1)
        .new_connection_per_request()
        .start();
    load.until_answered(5).await;
    let report = load.finish().await;
    report.assert_clean("one request per connection", 5);
    assert_eq!(report.connections, report.ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_closed_while_idle_is_a_failure() {
    let addr = idle_closing_server().await;
    let load = LoadSpec::new(addr, "/")
        .connections(1)
        .interval(Duration::from_millis(20))
        .start();
    load.until_answered(5).await;
    let report = load.finish().await;
    // Every connection after the first was opened because the server closed the last one;
    // each such close was counted (as closed, or as reset when it raced a request).
    assert!(report.count(Failure::Closed) > 0, "{report}");
    let closes = report.count(Failure::Closed) + report.count(Failure::Reset);
    assert!(
        closes + 1 >= report.connections && closes <= report.connections,
        "a reconnect without a counted failure: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_is_a_failure() {
    let addr = resetting_server().await;
    let load = LoadSpec::new(addr, "/").connections(1).start();
    load.until_failed(3).await;
    let report = load.finish().await;
    assert_eq!(report.ok, 0, "{report}");
    assert_eq!(report.count(Failure::Reset), report.failures(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_answer_times_out() {
    let addr = silent_server().await;
    let load = LoadSpec::new(addr, "/")
        .connections(1)
        .timeout(Duration::from_millis(50))
        .start();
    load.until_failed(2).await;
    let report = load.finish().await;
    assert_eq!(report.ok, 0, "{report}");
    assert_eq!(
        report.count(Failure::Timeout),
        report.failures(),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_refused() {
    // A port from the allocator: reserved, and nothing binds it.
    let addr = SocketAddr::from(([127, 0, 0, 1], ports::port()));
    let load = LoadSpec::new(addr, "/").connections(1).start();
    load.until_failed(2).await;
    let report = load.finish().await;
    assert_eq!(report.ok, 0, "{report}");
    assert_eq!(
        report.count(Failure::Connect),
        report.failures(),
        "{report}"
    );
    assert_eq!(report.connections, 0, "{report}");
}
