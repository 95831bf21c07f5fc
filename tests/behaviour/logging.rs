//! LogService through the real Envoy (docs/design.md#logservice): entries reach a real gRPC
//! access-log collector with their `log_name` and the extra headers asked for; the `tcp`
//! driver also logs TCPMapping connections; a collector that is down leaves traffic alone.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::{Backend, TcpEcho};
use crate::collectors::AlsCollector;
use crate::harness::{CHANGE, Legate, free_port, local, yaml};
use crate::http::{self, Failure, LoadSpec};
use crate::{routed, seen};

pub(crate) fn log_service(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: LogService\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{{spec}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_reach_the_collector() {
    let a = Backend::start("a").await;
    let echo = TcpEcho::start().await;
    let als = AlsCollector::start().await;
    let (port, tcp_port) = (free_port(), free_port());
    let collector = format!("'127.0.0.1:{}'", als.addr.port());
    let config = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "logged",
            &format!(
                "hostname: '*', prefix: /logged/, rewrite: '', service: '127.0.0.1:{}'",
                a.port()
            ),
        ),
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: TCPMapping\nmetadata: {{name: echo, namespace: default}}\n\
             spec: {{port: {tcp_port}, service: '127.0.0.1:{}'}}\n",
            echo.port()
        ),
        // Two LogServices: both apply, each with its own logger (no `grpc: true` needed).
        log_service(
            "http-logs",
            &format!(
                "service: {collector}, driver: http, log_name: edge-http, flush_interval_time: 1, \
                 driver_config: {{additional_log_headers: [{{header_name: x-tenant, during_response: false, during_trailer: false}}, \
                 {{header_name: x-backend, during_request: false}}]}}"
            ),
        ),
        log_service("tcp-logs", &format!("service: {collector}, driver: tcp")),
    ]);
    let Some(lg) = Legate::start(&[("logging.yaml", &config)]).await else {
        return;
    };
    let r = routed(port, "GET", "/logged/warm", &[]).await;
    seen(&r, "a");
    let r = http::request(local(port), "GET", "/logged/one", &[("x-tenant", "blue")])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    // One TCP connection through the TCPMapping.
    let mut s = http::eventually(CHANGE, "the TCPMapping listener", || async {
        let mut s = TcpStream::connect(local(tcp_port)).await.ok()?;
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        (&buf == b"ping").then_some(s)
    })
    .await;
    s.shutdown().await.unwrap();
    drop(s);

    let entries = http::eventually(CHANGE, "the HTTP entry of /logged/one", || async {
        let e = als.entries();
        e.iter()
            .any(|e| e.kind == "http" && e.path == "/logged/one")
            .then_some(e)
    })
    .await;
    let one = entries
        .iter()
        .find(|e| e.kind == "http" && e.path == "/logged/one")
        .unwrap();
    assert_eq!(one.log_name, "edge-http");
    assert_eq!(one.status, Some(200));
    assert_eq!(
        one.request_headers,
        vec![("x-tenant".to_string(), "blue".to_string())],
        "only the headers asked for, from the request"
    );
    assert_eq!(
        one.response_headers,
        vec![("x-backend".to_string(), "a".to_string())]
    );
    // The tcp driver logs every HTTP request (in TCP form) and the TCPMapping's connection.
    let tcp = http::eventually(
        CHANGE,
        "tcp entries for both requests and the connection",
        || async {
            let n = als
                .entries()
                .iter()
                .filter(|e| e.kind == "tcp" && e.log_name == "logservice")
                .count();
            (n >= 3).then_some(n)
        },
    )
    .await;
    assert!(tcp >= 3, "{tcp}");
    assert!(
        als.entries()
            .iter()
            .all(|e| e.kind != "http" || e.log_name == "edge-http"),
        "HTTP entries only come from the http driver"
    );
    assert_eq!(lg.errors().await, Vec::<String>::new());
}

/// A LogService and a TracingService whose collectors do not exist: every request is still
/// answered, on keep-alive connections that are never closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collectors_down_leave_traffic_alone() {
    let a = Backend::start("a").await;
    // Held by this test process and never bound: nothing listens there.
    let (port, dead_als, dead_zipkin) = (free_port(), free_port(), free_port());
    let config = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "app",
            &format!(
                "hostname: '*', prefix: /app/, service: '127.0.0.1:{}'",
                a.port()
            ),
        ),
        log_service(
            "down",
            &format!("service: '127.0.0.1:{dead_als}', driver: http, flush_interval_byte_size: 1"),
        ),
        crate::tracing::tracing_service(
            "down",
            &format!("service: '127.0.0.1:{dead_zipkin}', driver: zipkin"),
        ),
    ]);
    let Some(lg) = Legate::start(&[("down.yaml", &config)]).await else {
        return;
    };
    routed(port, "GET", "/app/warm", &[]).await;
    let load = LoadSpec::new(local(port), "/app/x")
        .connections(4)
        .interval(Duration::from_millis(5))
        .start();
    load.until_answered(400).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.finish().await;
    report.assert_clean("LogService and TracingService collectors down", 400);
    assert_eq!(lg.errors().await, Vec::<String>::new());
}

/// Adding, changing and removing a LogService and a TracingService under steady keep-alive
/// load. Both live in the HTTP connection manager, so each change is a listener update and
/// Envoy drains the old filter chains: a drained HTTP/1 connection gets `Connection: close` on
/// its next answer. The run counts every failure by kind (docs/design.md#logservice records
/// the figures): no request fails, refused or reset; keep-alive connections are closed by the
/// server (counted as `closed by server`), at most once per connection per change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_under_load_only_close_keep_alive_connections() {
    let a = Backend::start("a").await;
    let als = AlsCollector::start().await;
    let zipkin = crate::collectors::ZipkinReceiver::start().await;
    let port = free_port();
    let base = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "app",
            &format!(
                "hostname: '*', prefix: /app/, rewrite: '', service: '127.0.0.1:{}'",
                a.port()
            ),
        ),
    ]);
    let Some(lg) = Legate::start(&[("base.yaml", &base)]).await else {
        return;
    };
    routed(port, "GET", "/app/warm", &[]).await;
    const CONNECTIONS: usize = 4;
    let load = LoadSpec::new(local(port), "/app/load")
        .connections(CONNECTIONS)
        .interval(Duration::from_millis(10))
        .start();
    load.until_answered(200).await;
    let collector = format!("'127.0.0.1:{}'", als.addr.port());
    let logged = |name: &'static str| {
        let als = &als;
        async move {
            http::eventually(CHANGE, &format!("entries named {name}"), || async {
                als.entries()
                    .iter()
                    .any(|e| e.log_name == name && e.path == "/app/load")
                    .then_some(())
            })
            .await
        }
    };
    // 1. Add a LogService.
    lg.write(
        "log.yaml",
        &log_service(
            "als",
            &format!("service: {collector}, driver: http, log_name: first"),
        ),
    );
    logged("first").await;
    load.until_answered(200).await;
    // 2. Change it.
    lg.write(
        "log.yaml",
        &log_service(
            "als",
            &format!("service: {collector}, driver: http, log_name: second"),
        ),
    );
    logged("second").await;
    load.until_answered(200).await;
    // 3. Add a TracingService.
    lg.write(
        "tracing.yaml",
        &crate::tracing::tracing_service(
            "zipkin",
            &format!(
                "service: '127.0.0.1:{}', driver: zipkin",
                zipkin.addr.port()
            ),
        ),
    );
    http::eventually(CHANGE, "spans of the load", || async {
        (!zipkin.spans().is_empty()).then_some(())
    })
    .await;
    load.until_answered(200).await;
    // 4. Remove both.
    lg.remove("log.yaml");
    lg.remove("tracing.yaml");
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.until_answered(200).await;
    let report = load.finish().await;
    eprintln!("LogService/TracingService changes under load: {report}");
    // Four steps, but step 4 removes two files: the file source serves it as one change or, when
    // this test is descheduled between the two removals for longer than the gather window, as
    // two. Each change replaces the listener once, closing each keep-alive connection once.
    let changes = 5;
    for kind in [
        Failure::Status,
        Failure::Connect,
        Failure::Reset,
        Failure::Timeout,
    ] {
        assert_eq!(report.count(kind), 0, "{}: {report}", kind.name());
    }
    assert!(
        report.count(Failure::Closed) <= (CONNECTIONS * changes) as u64,
        "more closes than connections × changes: {report}"
    );
    assert!(report.ok >= 800, "{report}");
    assert_eq!(lg.errors().await, Vec::<String>::new());
}
