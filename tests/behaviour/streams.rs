//! Connections that are more than one request: websocket upgrades, TLS termination chosen by
//! SNI (checked with `curl` and certificates made by `openssl` at test time), and a TCPMapping.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::{Backend, TcpEcho};
use crate::harness::{CHANGE, Legate, free_port, local, yaml};
use crate::http;
use crate::routed;

/// Sends a raw HTTP/1.1 websocket upgrade request; returns the stream and the response head.
async fn upgrade(port: u16, path: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(local(port))
        .await
        .expect("connect to envoy");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read_head = async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .expect("response head in time");
    (stream, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade() {
    let a = Backend::start("ws").await;
    let port = free_port();
    let s = format!("'127.0.0.1:{}'", a.port());
    let config = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "ws",
            &format!("hostname: '*', prefix: /ws/, allow_upgrade: [websocket], service: {s}"),
        ),
        yaml::mapping(
            "plain",
            &format!("hostname: '*', prefix: /plain/, service: {s}"),
        ),
    ]);
    let Some(_lg) = Legate::start(&[("ws.yaml", &config)]).await else {
        return;
    };
    routed(port, "GET", "/ws/ready", &[]).await;
    routed(port, "GET", "/plain/ready", &[]).await;

    // allow_upgrade: 101 through Envoy, then bytes flow both ways over the upgraded connection.
    let (mut stream, head) = upgrade(port, "/ws/chat").await;
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "expected 101 Switching Protocols: {head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("x-backend: ws"),
        "the backend answered the upgrade: {head}"
    );
    for message in ["hello through envoy", "and a second frame"] {
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(String::from_utf8_lossy(&buf), message);
    }

    // Without allow_upgrade Envoy refuses the upgrade itself (403) and the backend never sees it.
    let hits = a.hits.load(std::sync::atomic::Ordering::Relaxed);
    let (_stream, head) = upgrade(port, "/plain/chat").await;
    assert!(
        head.starts_with("HTTP/1.1 403"),
        "the upgrade is refused: {head}"
    );
    assert_eq!(a.hits.load(std::sync::atomic::Ordering::Relaxed), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_mapping_round_trips_bytes() {
    let echo = TcpEcho::start().await;
    let port = free_port();
    let config = format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: TCPMapping\nmetadata: {{name: echo, namespace: default}}\n\
         spec: {{port: {port}, service: '127.0.0.1:{}'}}\n",
        echo.port()
    );
    let Some(_lg) = Legate::start(&[("tcp.yaml", &config)]).await else {
        return;
    };
    let mut stream = http::eventually(CHANGE, "the TCPMapping listener", || async {
        let mut s = TcpStream::connect(local(port)).await.ok()?;
        s.write_all(b"ping\n").await.ok()?;
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        (&buf == b"ping\n").then_some(s)
    })
    .await;
    // A larger payload, in both directions, on the same connection.
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = stream.split();
    let send = async {
        w.write_all(&payload).await.unwrap();
    };
    let mut back = vec![0u8; payload.len()];
    let recv = async {
        tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut back))
            .await
            .expect("echo in time")
            .unwrap();
    };
    tokio::join!(send, recv);
    assert!(back == payload, "the payload came back unchanged");
    assert!(echo.connections.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

/// A self-signed certificate for `name` (with the SAN curl checks): (cert PEM, key PEM).
pub(crate) fn self_signed(dir: &Path, name: &str) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs `openssl` on PATH to make test certificates: {e}")
        });
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

pub(crate) fn tls_secret(name: &str, cert: &str, key: &str) -> String {
    let block = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\ntype: kubernetes.io/tls\n\
         stringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        block(cert),
        block(key)
    )
}

/// `curl` over TLS to `https://<name>:<port><path>` resolved to 127.0.0.1 (SNI = `name`),
/// trusting only `ca`. Returns (exit code, stdout).
pub(crate) async fn curl(name: &str, port: u16, path: &str, ca: &Path) -> (i32, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--resolve"])
        .arg(format!("{name}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        // Envoy matches vhosts on the Host header including its port; Hosts name no port.
        .args(["-H", &format!("host: {name}")])
        .arg(format!("https://{name}:{port}{path}"))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("this test needs `curl` on PATH: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_termination_by_sni() {
    let certs = tempfile::tempdir().unwrap();
    let (a_crt, a_key) = self_signed(certs.path(), "a.example.com");
    let (b_crt, b_key) = self_signed(certs.path(), "b.example.com");
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let config = yaml::docs(&[
        yaml::listener("https", port, "HTTPS", "XFP"),
        yaml::host(
            "a",
            "a.example.com",
            "Redirect",
            "tlsSecret: {name: a-cert}",
        ),
        yaml::host(
            "b",
            "b.example.com",
            "Redirect",
            "tlsSecret: {name: b-cert}",
        ),
        yaml::mapping(
            "a",
            &format!(
                "hostname: a.example.com, prefix: /tls/, service: '127.0.0.1:{}'",
                a.port()
            ),
        ),
        yaml::mapping(
            "b",
            &format!(
                "hostname: b.example.com, prefix: /tls/, service: '127.0.0.1:{}'",
                b.port()
            ),
        ),
    ]);
    let Some(_lg) = Legate::start(&[
        ("tls.yaml", &config),
        (
            "secrets.yaml",
            &yaml::docs(&[
                tls_secret("a-cert", &a_crt, &a_key),
                tls_secret("b-cert", &b_crt, &b_key),
            ]),
        ),
    ])
    .await
    else {
        return;
    };
    let (a_ca, b_ca) = (
        certs.path().join("a.example.com.crt"),
        certs.path().join("b.example.com.crt"),
    );

    // Each SNI gets its own certificate (verified against only that one) and its own backend.
    let body = http::eventually(CHANGE, "https for a.example.com", || async {
        let (code, out) = curl("a.example.com", port, "/tls/x?y=1", &a_ca).await;
        (code == 0 && out.contains("\"backend\"")).then_some(out)
    })
    .await;
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["backend"], "a");
    assert_eq!(s["path"], "/x?y=1");
    assert_eq!(s["headers"]["x-forwarded-proto"], "https");
    let (code, out) = curl("b.example.com", port, "/tls/z", &b_ca).await;
    assert_eq!(code, 0, "https for b.example.com: {out}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (s["backend"].as_str(), s["path"].as_str()),
        (Some("b"), Some("/z"))
    );

    // The other host's certificate does not verify: the certificate really depends on SNI.
    let (code, _) = curl("b.example.com", port, "/tls/z", &a_ca).await;
    assert_eq!(
        code, 60,
        "b.example.com must not present a.example.com's certificate"
    );
    let (code, _) = curl("a.example.com", port, "/tls/z", &b_ca).await;
    assert_eq!(
        code, 60,
        "a.example.com must not present b.example.com's certificate"
    );

    // The cleartext chain on the same port: plain requests are redirected to https (XFP, Redirect).
    let r = routed(port, "GET", "/tls/x", &[("host", "a.example.com")]).await;
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some("https://a.example.com/tls/x")
    );
}
