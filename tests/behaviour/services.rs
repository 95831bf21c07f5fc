//! AuthService and RateLimitService through the real Envoy, against real doubles
//! (`common/services.rs`): what reaches the auth service and the upstream, denials, failure
//! modes (service down or slow), fail-closed on a misconfigured AuthService, bypass_auth,
//! redirects and probe routes never checked, rate-limit descriptors and OVER_LIMIT, and the
//! order ext_authz → ratelimit (docs/design.md#authservice, docs/design.md#ratelimitservice).

use std::sync::atomic::Ordering;

use crate::backend::Backend;
use crate::harness::{CHANGE, Legate, free_port, local, yaml};
use crate::http;
use crate::services;
use crate::{routed, seen};

fn obj(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{{spec}}}\n"
    )
}

/// Polls until `method path` with `headers` answers `status`; returns that reply.
async fn answers(port: u16, path: &str, headers: &[(&str, &str)], status: u16) -> http::Reply {
    let what = format!("GET {path} {headers:?} on port {port} to answer {status}");
    http::eventually(CHANGE, &what, || async {
        http::request(local(port), "GET", path, headers)
            .await
            .ok()
            .filter(|r| r.status == status)
    })
    .await
}

/// A raw HTTP/1.1 POST with a body; the response head.
async fn post(port: u16, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(local(port))
        .await
        .expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(CHANGE, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn get<'a>(r: &'a http::Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_auth_service_checks_requests() {
    let auth = services::http_auth().await;
    let a = Backend::start("a").await;
    let port = free_port();
    let s = format!("'127.0.0.1:{}'", a.port());
    let config = yaml::docs(&[
        yaml::base(port),
        obj(
            "AuthService",
            "auth",
            &format!(
                "auth_service: '{}', path_prefix: /extauth, timeout_ms: 500, allowed_request_headers: [X-Tenant, x-auth], allowed_authorization_headers: [x-auth-user], add_auth_headers: {{x-from: legate}}, include_body: {{max_bytes: 4096, allow_partial: true}}",
                auth.service()
            ),
        ),
        yaml::mapping(
            "app",
            &format!("hostname: '*', prefix: /app/, service: {s}"),
        ),
        yaml::mapping(
            "public",
            &format!("hostname: '*', prefix: /public/, service: {s}, bypass_auth: true"),
        ),
        yaml::mapping(
            "moved",
            "hostname: '*', prefix: /moved/, service: 'new.example.com', host_redirect: true",
        ),
    ]);
    let Some(lg) = Legate::start(&[("auth.yaml", &config)]).await else {
        return;
    };

    // Allowed: the check request carries path_prefix + path, the allowed and added headers,
    // not the others; the auth service's allowed header goes upstream, its others do not.
    let r = routed(
        port,
        "GET",
        "/app/x?q=1",
        &[("x-tenant", "t1"), ("x-other", "o")],
    )
    .await;
    let up = seen(&r, "a");
    assert_eq!(up["path"], "/x?q=1");
    assert_eq!(up["headers"]["x-auth-user"], "alice");
    assert!(up["headers"].get("x-internal-secret").is_none(), "{up}");
    let check = auth.seen.last().expect("the auth service was asked");
    assert_eq!(check.method, "GET");
    assert_eq!(check.path, "/extauth/app/x?q=1");
    assert_eq!(
        check.headers.get("x-tenant").map(String::as_str),
        Some("t1")
    );
    assert_eq!(
        check.headers.get("x-from").map(String::as_str),
        Some("legate")
    );
    assert!(!check.headers.contains_key("x-other"), "{check:?}");

    // Denied: the auth service's status, body and allowed headers reach the client.
    let hits = a.hits.load(Ordering::Relaxed);
    let r = http::request(local(port), "GET", "/app/x", &[("x-auth", "deny")])
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.body, "denied by the http double");
    assert_eq!(get(&r, "www-authenticate"), Some("Basic realm=http"));
    assert_eq!(get(&r, "x-internal-secret"), None);
    assert_eq!(
        a.hits.load(Ordering::Relaxed),
        hits,
        "a denied request never reaches upstream"
    );

    // Slow auth service: past timeout_ms, Envoy's default status_on_error, 403.
    let r = http::request(local(port), "GET", "/app/x", &[("x-auth", "slow")])
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(a.hits.load(Ordering::Relaxed), hits);

    // bypass_auth, redirects and the probe routes are never checked.
    let checks = auth.seen.len();
    let r = http::request(local(port), "GET", "/public/p", &[("x-auth", "deny")])
        .await
        .unwrap();
    assert_eq!(seen(&r, "a")["path"], "/p");
    let r = http::request(local(port), "GET", "/moved/m", &[("x-auth", "deny")])
        .await
        .unwrap();
    assert_eq!(r.status, 301, "{r:?}");
    let r = http::request(
        local(port),
        "GET",
        "/ambassador/v0/check_alive",
        &[("x-auth", "deny")],
    )
    .await
    .unwrap();
    assert_eq!(
        r.status, 200,
        "the liveness probe route is not checked: {r:?}"
    );
    assert_eq!(
        auth.seen.len(),
        checks,
        "no check for bypass, redirect or probe"
    );

    assert_eq!(lg.errors().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_auth_service_receives_the_body() {
    let auth = services::http_auth().await;
    let a = Backend::start("a").await;
    let port = free_port();
    let config = yaml::docs(&[
        yaml::base(port),
        obj(
            "AuthService",
            "auth",
            &format!(
                "auth_service: '{}', include_body: {{max_bytes: 4096, allow_partial: true}}",
                auth.service()
            ),
        ),
        yaml::mapping(
            "app",
            &format!(
                "hostname: '*', prefix: /app/, service: '127.0.0.1:{}'",
                a.port()
            ),
        ),
    ]);
    let Some(_lg) = Legate::start(&[("auth.yaml", &config)]).await else {
        return;
    };
    routed(port, "GET", "/app/ready", &[]).await;
    let head = post(port, "/app/b", "hello auth").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("x-backend: a"), "{head}");
    let check = auth.seen.last().expect("checked");
    assert_eq!(
        (check.method.as_str(), check.body.as_str()),
        ("POST", "hello auth")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_auth_service_and_failure_modes() {
    let auth = services::grpc_auth().await;
    let a = Backend::start("a").await;
    let port = free_port();
    let s = format!("'127.0.0.1:{}'", a.port());
    let auth_service = |spec: &str| obj("AuthService", "auth", spec);
    let mappings = [
        yaml::base(port),
        yaml::mapping(
            "ctx",
            &format!(
                "hostname: '*', prefix: /ctx/, service: {s}, auth_context_extensions: {{tier: gold}}"
            ),
        ),
    ];
    let Some(lg) = Legate::start(&[
        ("base.yaml", &yaml::docs(&mappings)),
        (
            "auth.yaml",
            &auth_service(&format!(
                "auth_service: '{}', proto: grpc, timeout_ms: 500, status_on_error: {{code: 503}}",
                auth.service()
            )),
        ),
    ])
    .await
    else {
        return;
    };

    // Allowed: context extensions reach the service, its header the upstream.
    let r = routed(port, "GET", "/ctx/x", &[]).await;
    assert_eq!(seen(&r, "a")["headers"]["x-auth-user"], "alice");
    let check = auth.seen.last().expect("checked");
    assert_eq!(
        check.context_extensions.get("tier").map(String::as_str),
        Some("gold")
    );
    assert_eq!(check.path, "/ctx/x");

    // Denied with the service's status, header and body.
    let r = http::request(local(port), "GET", "/ctx/x", &[("x-auth", "deny")])
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, "denied by the grpc double")
    );
    assert_eq!(get(&r, "www-authenticate"), Some("Bearer realm=grpc"));

    // Slow or failing service: status_on_error.
    for mode in ["slow", "error"] {
        let r = http::request(local(port), "GET", "/ctx/x", &[("x-auth", mode)])
            .await
            .unwrap();
        assert_eq!(r.status, 503, "{mode}: {r:?}");
        assert!(r.backend().is_none());
    }

    // Service down (nothing listens on its port), failure_mode_allow: requests pass.
    let down = free_port();
    lg.write(
        "auth.yaml",
        &auth_service(&format!(
            "auth_service: '127.0.0.1:{down}', proto: grpc, timeout_ms: 500, failure_mode_allow: true"
        )),
    );
    let r = answers(port, "/ctx/y", &[("x-auth", "deny")], 200).await;
    assert_eq!(seen(&r, "a")["path"], "/y");
    assert!(r.json()["headers"].get("x-auth-user").is_none());

    // Down without failure_mode_allow: Envoy's default 403.
    lg.write(
        "auth.yaml",
        &auth_service(&format!(
            "auth_service: '127.0.0.1:{down}', proto: grpc, timeout_ms: 500"
        )),
    );
    let r = answers(port, "/ctx/z", &[], 403).await;
    assert!(r.backend().is_none());
    assert_eq!(lg.errors().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_auth_service_fails_closed() {
    let a = Backend::start("a").await;
    let port = free_port();
    let s = format!("'127.0.0.1:{}'", a.port());
    let config = yaml::docs(&[
        yaml::base(port),
        obj(
            "AuthService",
            "broken",
            "auth_service: 'auth:3000', proto: grpc, protocol_version: v2",
        ),
        yaml::mapping(
            "app",
            &format!("hostname: '*', prefix: /app/, service: {s}"),
        ),
        yaml::mapping(
            "public",
            &format!("hostname: '*', prefix: /public/, service: {s}, bypass_auth: true"),
        ),
    ]);
    let Some(lg) = Legate::start(&[("auth.yaml", &config)]).await else {
        return;
    };
    let r = answers(port, "/app/x", &[], 500).await;
    assert!(r.backend().is_none());
    assert_eq!(get(&r, "content-type"), Some("application/json"));
    let body = r.json();
    assert!(
        body["message"].as_str().is_some_and(|m| m
            .contains("AuthService default/broken is misconfigured")
            && m.contains("protocol_version")),
        "{body}"
    );
    assert_eq!(body["status_code"], 500);
    assert!(
        body["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    // As in Emissary, bypass_auth does not exempt a route from the stand-in.
    let r = http::get(local(port), "/public/x").await.unwrap();
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(
        a.hits.load(Ordering::Relaxed),
        0,
        "nothing reached upstream"
    );
    // The probe routes still answer.
    let r = http::get(local(port), "/ambassador/v0/check_ready")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let errors = lg.errors().await;
    assert!(
        errors
            .iter()
            .any(|e| e.contains("AuthService default/broken: spec.protocol_version")),
        "{errors:?}"
    );

    // Fixing it serves traffic again.
    lg.write(
        "auth.yaml",
        &config.replace("protocol_version: v2", "protocol_version: v3"),
    );
    // (The auth service itself does not exist: with it fixed, requests get the default 403.)
    answers(port, "/app/x", &[], 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_descriptors_over_limit_and_failure_modes() {
    let rls = services::rate_limit().await;
    let auth = services::grpc_auth().await;
    let a = Backend::start("a").await;
    let port = free_port();
    let s = format!("'127.0.0.1:{}'", a.port());
    let rls_spec = |service: &str, extra: &str| {
        obj(
            "RateLimitService",
            "rls",
            &format!("service: '{service}', timeout_ms: 500{extra}"),
        )
    };
    let base = yaml::docs(&[
        yaml::base(port),
        obj(
            "AuthService",
            "auth",
            &format!("auth_service: '{}', proto: grpc", auth.service()),
        ),
        yaml::mapping(
            "limited",
            &format!(
                "hostname: '*', prefix: /limited/, service: {s}, labels: {{ambassador: [{{per-user: [{{generic_key: {{value: api}}}}, {{request_headers: {{key: user, header_name: x-user}}}}]}}, {{opt: [{{request_headers: {{key: plan, header_name: x-plan, omit_if_not_present: true}}}}, {{remote_address: {{key: remote_address}}}}]}}, {{authed: [{{request_headers: {{key: who, header_name: x-auth-user}}}}]}}]}}"
            ),
        ),
        yaml::mapping(
            "free",
            &format!("hostname: '*', prefix: /free/, service: {s}"),
        ),
    ]);
    let Some(lg) = Legate::start(&[
        ("base.yaml", &base),
        ("rls.yaml", &rls_spec(&rls.service(), "")),
    ])
    .await
    else {
        return;
    };

    let r = answers(port, "/limited/x", &[("x-user", "bob")], 200).await;
    assert_eq!(seen(&r, "a")["path"], "/x");
    let call = rls.seen.last().expect("the rate-limit service was asked");
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(call.domain, "ambassador");
    assert_eq!(
        call.descriptors,
        vec![
            pairs(&[("generic_key", "api"), ("user", "bob")]),
            // omit_if_not_present: the absent x-plan is left out, the rest of the group kept.
            pairs(&[("remote_address", "127.0.0.1")]),
            // ext_authz runs first: its header is there for the rate-limit descriptor.
            pairs(&[("who", "alice")]),
        ]
    );

    // Without x-user the first group has no descriptor at all (Envoy's rule).
    let _ = http::get(local(port), "/limited/y").await.unwrap();
    let call = rls.seen.last().unwrap();
    assert_eq!(
        call.descriptors,
        vec![
            pairs(&[("remote_address", "127.0.0.1")]),
            pairs(&[("who", "alice")])
        ]
    );

    // OVER_LIMIT: 429, the upstream is not reached.
    let hits = a.hits.load(Ordering::Relaxed);
    let r = http::request(local(port), "GET", "/limited/z", &[("x-user", "blocked")])
        .await
        .unwrap();
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(get(&r, "x-envoy-ratelimited"), Some("true"));
    assert_eq!(a.hits.load(Ordering::Relaxed), hits);

    // Label-less and probe routes: no call.
    let calls = rls.seen.len();
    let r = http::get(local(port), "/free/f").await.unwrap();
    assert_eq!(seen(&r, "a")["path"], "/f");
    let r = http::get(local(port), "/ambassador/v0/check_alive")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(rls.seen.len(), calls);

    // Service down: allowed; with failure_mode_deny: refused (500).
    let down = format!("127.0.0.1:{}", free_port());
    lg.write("rls.yaml", &rls_spec(&down, ""));
    answers(port, "/limited/d", &[("x-user", "blocked")], 200).await;
    let calls = rls.seen.len();
    let r = http::request(local(port), "GET", "/limited/d", &[("x-user", "blocked")])
        .await
        .unwrap();
    assert_eq!(seen(&r, "a")["path"], "/d");
    assert_eq!(rls.seen.len(), calls, "the double is no longer asked");
    lg.write("rls.yaml", &rls_spec(&down, ", failure_mode_deny: true"));
    let r = answers(port, "/limited/d", &[("x-user", "bob")], 500).await;
    assert!(r.backend().is_none());
    assert_eq!(lg.errors().await, Vec::<String>::new());
}

/// Polls until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    http::eventually(CHANGE, what, || async { f().then_some(()) }).await
}

/// Envoy has acknowledged the clusters legate sent, and they are exactly the current ones (no
/// stale cluster kept: the version has no `+keep`).
async fn clusters_settled(lg: &Legate) -> bool {
    let Ok(reply) = http::get(lg.admin, "/xds").await else {
        return false;
    };
    let clients = reply.json();
    let Some(cds) = clients.get(0).map(|c| &c["types"]["cluster"]) else {
        return false;
    };
    let sent = cds["sent_version"].as_str().unwrap_or("+keep");
    !sent.contains("+keep") && cds["acked_version"].as_str() == Some(sent)
}

/// Adding, changing and removing an AuthService and a RateLimitService under steady
/// keep-alive load: not one request fails, of any kind (status, refused, reset, timed out,
/// closed). The filters' configs come by ECDS, so the listener never changes
/// (docs/design.md#extension-config-discovery), and a replaced service's cluster lingers
/// until the checks sent to it have ended (docs/design.md#push-order-and-warming). Broken
/// variants that fail it: the filters inline in the listener (32 connections closed,
/// BENCHMARKS.md "Changing an AuthService"); the clusters removed as soon as the change is
/// answered (a few 403s per change, `ext_authz_error`: Envoy resets the checks in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_changes_under_load_drop_nothing() {
    let auth1 = services::grpc_auth().await;
    let auth2 = services::grpc_auth().await;
    let rls = services::rate_limit().await;
    let a = Backend::start("a").await;
    let port = free_port();
    let base = labelled_app(port, a.port());
    let Some(lg) = Legate::start(&[("base.yaml", &base)]).await else {
        return;
    };
    routed(port, "GET", "/app/ready", &[]).await;
    let load = http::LoadSpec::new(local(port), "/app/steady")
        .connections(8)
        .interval(std::time::Duration::from_millis(5))
        .expect_status(200)
        .start();
    load.until_answered(50).await;

    let auth = |svc: &str, extra: &str| {
        obj(
            "AuthService",
            "auth",
            &format!("auth_service: '{svc}', proto: grpc{extra}"),
        )
    };
    // Add an AuthService: requests are now checked.
    lg.write("auth.yaml", &auth(&auth1.service(), ""));
    until("auth1 checks requests", || auth1.seen.len() > 20).await;
    // Change it: another service, other settings.
    lg.write("auth.yaml", &auth(&auth2.service(), ", timeout_ms: 2000"));
    until("auth2 checks requests", || auth2.seen.len() > 20).await;
    // Add a RateLimitService that refuses requests when its calls fail: descriptors flow, and
    // a call cut short would show as a 500.
    lg.write(
        "rls.yaml",
        &obj(
            "RateLimitService",
            "rls",
            &format!(
                "service: '{}', timeout_ms: 1000, failure_mode_deny: true",
                rls.service()
            ),
        ),
    );
    until("the rate-limit service is asked", || rls.seen.len() > 20).await;
    // Remove both.
    let removed = std::time::Instant::now();
    lg.remove("auth.yaml");
    lg.remove("rls.yaml");
    let (auth_seen, rls_seen) = (&auth2.seen, &rls.seen);
    let quiet = || async move {
        let (n1, n2) = (auth_seen.len(), rls_seen.len());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        (auth_seen.len() == n1 && rls_seen.len() == n2).then_some(())
    };
    http::eventually(CHANGE, "both services are no longer asked", quiet).await;
    // The auth cluster lingers for its checks' timeout (2 s) and a margin (1 s) after Envoy
    // applied the change, then goes; the load runs on across its removal.
    http::eventually(
        CHANGE,
        "envoy to hold exactly the clusters sent",
        || async { clusters_settled(&lg).await.then_some(()) },
    )
    .await;
    let lingered = removed.elapsed();
    load.until_answered(50).await;
    let report = load.finish().await;
    eprintln!("service changes under load: {report}");
    for f in http::Failure::ALL {
        assert_eq!(report.count(f), 0, "{}: {report}", f.name());
    }
    assert!(report.ok >= 200, "{report}");
    assert!(
        lingered >= std::time::Duration::from_secs(3),
        "the auth cluster was removed {lingered:?} after its AuthService"
    );
    assert_eq!(lg.errors().await, Vec::<String>::new());
}

/// Latency of `n` sequential GETs of `path` on one keep-alive connection, sorted; every answer
/// must be 200 from backend `a`.
async fn latencies(port: u16, path: &str, n: usize) -> Vec<std::time::Duration> {
    let mut conn = http::connect(local(port)).await.expect("connect");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        conn.ready().await.expect("connection ready");
        let t = std::time::Instant::now();
        let r = http::send(&mut conn, "GET", path, &[])
            .await
            .expect("answer");
        out.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.backend().as_deref(), Some("a"));
    }
    out.sort();
    out
}

fn percentile(sorted: &[std::time::Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Figures for BENCHMARKS.md (issue 7): p50/p99 request latency through the real Envoy without
/// the filters' services, with ext_authz (gRPC, then HTTP doubles, allowing), with ratelimit
/// (double answering OK), and with both. Run with
/// `cargo nextest run --test behaviour -E 'test(/service_latency/)' --run-ignored only --no-capture`.
/// Each configuration is measured `ROUNDS` times (5,000 requests after 500 warm-up ones); the
/// medians of the rounds' p50 and p99 are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly"]
async fn service_latency() {
    const ROUNDS: usize = 5;
    let grpc = services::grpc_auth().await;
    let web = services::http_auth().await;
    let rls = services::rate_limit().await;
    let a = Backend::start("a").await;
    let port = free_port();
    let base = labelled_app(port, a.port());
    let Some(lg) = Legate::start(&[("base.yaml", &base)]).await else {
        return;
    };
    let auth = |svc: &str, proto: &str| {
        obj(
            "AuthService",
            "auth",
            &format!("auth_service: '{svc}', proto: {proto}"),
        )
    };
    let limit = obj(
        "RateLimitService",
        "rls",
        &format!("service: '{}', timeout_ms: 1000", rls.service()),
    );
    let cases: [(&str, Option<String>, bool); 5] = [
        ("none", None, false),
        ("ext_authz grpc", Some(auth(&grpc.service(), "grpc")), false),
        ("ext_authz http", Some(auth(&web.service(), "http")), false),
        ("ratelimit", None, true),
        (
            "ext_authz grpc + ratelimit",
            Some(auth(&grpc.service(), "grpc")),
            true,
        ),
    ];
    for (name, auth_yaml, with_limit) in cases {
        match &auth_yaml {
            Some(y) => lg.write("auth.yaml", y),
            None => {
                let _ = std::fs::remove_file(lg.dir().join("auth.yaml"));
            }
        }
        match with_limit {
            true => lg.write("rls.yaml", &limit),
            false => {
                let _ = std::fs::remove_file(lg.dir().join("rls.yaml"));
            }
        }
        // In force: the services in use are asked, the others not.
        let (g0, w0, r0) = (grpc.seen.len(), web.seen.len(), rls.seen.len());
        http::eventually(CHANGE, &format!("{name} in force"), || async {
            let (g, w, r) = (grpc.seen.len(), web.seen.len(), rls.seen.len());
            let ok = http::request(local(port), "GET", "/app/probe", &[])
                .await
                .ok()
                .is_some_and(|r| r.status == 200);
            let (g1, w1, r1) = (grpc.seen.len(), web.seen.len(), rls.seen.len());
            let asked = |before: usize, after: usize| after > before;
            let want_g = auth_yaml.as_deref().is_some_and(|y| y.contains("grpc"));
            let want_w = auth_yaml.as_deref().is_some_and(|y| y.contains("http"));
            (ok && asked(g, g1) == want_g && asked(w, w1) == want_w && asked(r, r1) == with_limit)
                .then_some(())
        })
        .await;
        let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            latencies(port, "/app/warm", 500).await;
            let l = latencies(port, "/app/measure", 5_000).await;
            p50s.push(percentile(&l, 0.5));
            p99s.push(percentile(&l, 0.99));
        }
        p50s.sort_by(f64::total_cmp);
        p99s.sort_by(f64::total_cmp);
        let (g1, w1, r1) = (grpc.seen.len(), web.seen.len(), rls.seen.len());
        eprintln!(
            "service latency | {name} | p50 {:.3} ms | p99 {:.3} ms | rounds p50 {:?} p99 {:?} | asked: grpc {} http {} rls {}",
            p50s[ROUNDS / 2],
            p99s[ROUNDS / 2],
            p50s,
            p99s,
            g1 - g0,
            w1 - w0,
            r1 - r0
        );
    }
}

/// A Listener on `port` and the Mapping `/app/` to `backend`, with one rate-limit label group
/// (`g`: generic key `steady`).
fn labelled_app(port: u16, backend: u16) -> String {
    yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "app",
            &format!(
                "hostname: '*', prefix: /app/, service: '127.0.0.1:{backend}', labels: {{ambassador: [{{g: [{{generic_key: {{value: steady}}}}]}}]}}"
            ),
        ),
    ])
}
