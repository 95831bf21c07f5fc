//! The Module through the real Envoy: `ip_allow` / `ip_deny` (an RBAC filter) answer 403 to a
//! client they exclude and let the same client through otherwise; `proper_case` changes header
//! names on the wire; a probe `prefix` override moves the built-in route.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::harness::{CHANGE, Legate, free_port, local, yaml};
use crate::http;
use crate::{routed, seen};

fn module(config: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: Module\nmetadata: {{name: ambassador, namespace: default}}\n\
         spec: {{config: {{{config}}}}}\n"
    )
}

/// Polls `GET path` until it answers `status`; returns that reply.
async fn status_becomes(port: u16, path: &str, status: u16) -> http::Reply {
    let what = format!("GET {path} on port {port} to answer {status}");
    http::eventually(CHANGE, &what, || async {
        http::request(local(port), "GET", path, &[])
            .await
            .ok()
            .filter(|r| r.status == status)
    })
    .await
}

/// The raw response head of `GET path`, header names as Envoy wrote them.
async fn raw_head(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(local(port)).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_rules_proper_case_and_probe_prefix() {
    let a = Backend::start("a").await;
    let port = free_port();
    let mapping = yaml::mapping(
        "a",
        &format!(
            "hostname: '*', prefix: /a/, service: '127.0.0.1:{}'",
            a.port()
        ),
    );
    let Some(lg) = Legate::start(&[("base.yaml", &yaml::docs(&[yaml::base(port), mapping]))]).await
    else {
        return;
    };

    // Without address rules the client (peer 127.0.0.1) is served; header names are lower case.
    let r = routed(port, "GET", "/a/x", &[]).await;
    assert_eq!(seen(&r, "a")["path"], "/x");
    let head = raw_head(port, "/a/").await;
    assert!(head.contains("\r\nserver: envoy"), "{head}");

    // ip_deny of the client's own address: Envoy's RBAC answers 403, the backend sees nothing.
    lg.write("module.yaml", &module("ip_deny: [{peer: 127.0.0.1/32}]"));
    let r = status_becomes(port, "/a/x", 403).await;
    assert_eq!(r.backend(), None, "denied before routing: {}", r.body);
    assert!(r.body.contains("RBAC"), "{}", r.body);

    // ip_allow of a range holding the client: served again.
    lg.write("module.yaml", &module("ip_allow: [{peer: 127.0.0.0/8}]"));
    let r = status_becomes(port, "/a/y", 200).await;
    assert_eq!(seen(&r, "a")["path"], "/y");

    // ip_allow of another range: 403.
    lg.write("module.yaml", &module("ip_allow: [{peer: 10.0.0.0/8}]"));
    let r = status_becomes(port, "/a/z", 403).await;
    assert_eq!(r.backend(), None, "{}", r.body);

    // No rules, proper_case, and the liveness probe moved to /healthz (rewritten to the path
    // legate's probe server answers).
    lg.write(
        "module.yaml",
        &module("proper_case: true, liveness_probe: {prefix: /healthz}"),
    );
    let r = status_becomes(port, "/healthz", 200).await;
    assert_eq!(
        r.backend(),
        None,
        "answered by the probe server: {}",
        r.body
    );
    let head = raw_head(port, "/a/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("\r\nServer: envoy"), "{head}");
    assert!(head.contains("\r\nContent-Length: "), "{head}");
    let old = http::request(local(port), "GET", "/ambassador/v0/check_alive", &[])
        .await
        .expect("request");
    assert_eq!(
        old.status, 404,
        "the default liveness path is gone: {}",
        old.body
    );
    let ready = http::request(local(port), "GET", "/ambassador/v0/check_ready", &[])
        .await
        .expect("request");
    assert_eq!(
        ready.status, 200,
        "readiness keeps its route: {}",
        ready.body
    );

    assert_eq!(lg.errors().await, Vec::<String>::new());
    assert_eq!(lg.stop().await, legate::exit::FORCED);
}
