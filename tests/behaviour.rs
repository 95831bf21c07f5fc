//! Behaviour through the real Envoy (issue 3): each test starts an in-process legate on a temp
//! config directory, real test backends, and asserts that a request reaches the expected
//! backend with the expected path and headers (or gets the expected local answer: redirect,
//! CORS preflight, timeout).
//!
//! Families: routing and rewrites, redirects and CORS, timeouts, retries and canaries (here);
//! websocket, TLS/SNI and TCPMapping (`behaviour/streams.rs`); hot reload under load
//! (`behaviour/reload.rs`); the bad-input corpus served by Envoy (`behaviour/bad_input.rs`);
//! the Module's address rules, header case and probe overrides (`behaviour/module.rs`); the
//! behaviours pinned as Emissary-compatible in docs/compatibility.md (`behaviour/parity.rs`).

#[path = "common/backend.rs"]
mod backend;
#[path = "common/collectors.rs"]
mod collectors;
#[path = "common/legate.rs"]
mod harness;
#[path = "common/http.rs"]
mod http;
#[path = "common/ports.rs"]
mod ports;
#[path = "common/services.rs"]
mod services;

#[path = "behaviour/bad_input.rs"]
mod bad_input;
#[path = "behaviour/logging.rs"]
mod logging;
#[path = "behaviour/module.rs"]
mod module;
#[path = "behaviour/parity.rs"]
mod parity;
#[path = "behaviour/reload.rs"]
mod reload;
#[path = "behaviour/services.rs"]
mod services_tests;
#[path = "behaviour/streams.rs"]
mod streams;
#[path = "behaviour/tracing.rs"]
mod tracing;

use backend::Backend;
use harness::{CHANGE, Legate, free_port, local, yaml};
use http::Reply;

/// Sends until the answer is not Envoy's "no route yet" (404 without a backend) nor a
/// connection error, i.e. until the configuration under test is in force; returns that reply.
pub async fn routed(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let what = format!("{method} {path} {headers:?} on port {port} to be routed");
    http::eventually(CHANGE, &what, || async {
        match http::request(local(port), method, path, headers).await {
            Ok(r) if r.status == 404 && r.backend().is_none() => None,
            Ok(r) => Some(r),
            Err(_) => None,
        }
    })
    .await
}

/// The backend's view of a forwarded request, asserting who answered.
#[track_caller]
fn seen(reply: &Reply, backend: &str) -> serde_json::Value {
    assert_eq!(
        reply.backend().as_deref(),
        Some(backend),
        "expected backend {backend}; got status {} body {}",
        reply.status,
        reply.body
    );
    reply.json()
}

#[track_caller]
fn header<'a>(seen: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    seen["headers"][name].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_query_and_method_routing() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let (sa, sb) = (
        format!("'127.0.0.1:{}'", a.port()),
        format!("'127.0.0.1:{}'", b.port()),
    );
    let config = yaml::docs(&[
        yaml::listener("http", port, "HTTP", "INSECURE"),
        yaml::host("host-a", "a.example.com", "Route", ""),
        yaml::host("host-b", "b.example.com", "Route", ""),
        yaml::mapping(
            "by-host-a",
            &format!("hostname: a.example.com, prefix: /host/, service: {sa}"),
        ),
        yaml::mapping(
            "by-host-b",
            &format!("hostname: b.example.com, prefix: /host/, service: {sb}"),
        ),
        yaml::mapping(
            "hdr-plain",
            &format!("hostname: '*', prefix: /hdr/, service: {sa}"),
        ),
        yaml::mapping(
            "hdr-match",
            &format!("hostname: '*', prefix: /hdr/, headers: {{x-canary: 'yes'}}, service: {sb}"),
        ),
        yaml::mapping(
            "hdr-regex",
            &format!(
                "hostname: '*', prefix: /hdr/, regex_headers: {{x-user: '^vip-[0-9]+$'}}, service: {sb}, add_request_headers: {{x-via: regex}}"
            ),
        ),
        yaml::mapping(
            "query-plain",
            &format!("hostname: '*', prefix: /query/, service: {sa}"),
        ),
        yaml::mapping(
            "query-match",
            &format!(
                "hostname: '*', prefix: /query/, query_parameters: {{version: '2'}}, service: {sb}"
            ),
        ),
        yaml::mapping(
            "method-any",
            &format!("hostname: '*', prefix: /method/, service: {sa}"),
        ),
        yaml::mapping(
            "method-post",
            &format!("hostname: '*', prefix: /method/, method: POST, service: {sb}"),
        ),
    ]);
    let Some(lg) = Legate::start(&[("routing.yaml", &config)]).await else {
        return;
    };

    // Host routing: the same path, two Hosts, two backends; an unknown Host is not routed.
    let r = routed(port, "GET", "/host/x", &[("host", "a.example.com")]).await;
    let s = seen(&r, "a");
    assert_eq!(s["path"], "/x");
    assert_eq!(header(&s, "host"), Some("a.example.com"));
    let r = routed(port, "GET", "/host/y", &[("host", "b.example.com")]).await;
    assert_eq!(seen(&r, "b")["path"], "/y");
    let r = http::request(local(port), "GET", "/host/x", &[("host", "c.example.com")])
        .await
        .unwrap();
    assert_eq!(r.status, 404, "no Host serves c.example.com: {}", r.body);

    // Header matching, exact and regex.
    let host = ("host", "a.example.com");
    let r = routed(port, "GET", "/hdr/1", &[host, ("x-canary", "yes")]).await;
    let s = seen(&r, "b");
    assert_eq!(s["path"], "/1");
    assert_eq!(header(&s, "x-canary"), Some("yes"));
    let r = routed(port, "GET", "/hdr/2", &[host, ("x-canary", "no")]).await;
    assert_eq!(seen(&r, "a")["path"], "/2");
    let r = routed(port, "GET", "/hdr/3", &[host, ("x-user", "vip-42")]).await;
    let s = seen(&r, "b");
    assert_eq!(header(&s, "x-via"), Some("regex"));
    let r = routed(port, "GET", "/hdr/4", &[host, ("x-user", "vip-x")]).await;
    assert_eq!(header(&seen(&r, "a"), "x-via"), None);

    // Query-parameter matching; the query string travels upstream.
    let r = routed(port, "GET", "/query/p?version=2&x=1", &[host]).await;
    assert_eq!(seen(&r, "b")["path"], "/p?version=2&x=1");
    let r = routed(port, "GET", "/query/p?version=3", &[host]).await;
    assert_eq!(seen(&r, "a")["path"], "/p?version=3");

    // Method matching.
    let r = routed(port, "POST", "/method/m", &[host]).await;
    let s = seen(&r, "b");
    assert_eq!(
        (s["method"].as_str(), s["path"].as_str()),
        (Some("POST"), Some("/m"))
    );
    let r = routed(port, "GET", "/method/m", &[host]).await;
    assert_eq!(seen(&r, "a")["method"], "GET");
    let r = routed(port, "PUT", "/method/m", &[host]).await;
    assert_eq!(seen(&r, "a")["method"], "PUT");

    assert_eq!(lg.errors().await, Vec::<String>::new());
    assert_eq!(lg.stop().await, legate::exit::FORCED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites() {
    let a = Backend::start("a").await;
    let port = free_port();
    let s = format!("'127.0.0.1:{}'", a.port());
    let config = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "default",
            &format!("hostname: '*', prefix: /default/, service: {s}"),
        ),
        yaml::mapping(
            "keep",
            &format!("hostname: '*', prefix: /keep/, rewrite: '', service: {s}"),
        ),
        yaml::mapping(
            "custom",
            &format!("hostname: '*', prefix: /custom/, rewrite: /v2/, service: {s}"),
        ),
        yaml::mapping(
            "regex",
            &format!(
                "hostname: '*', prefix: /re/, regex_rewrite: {{pattern: '^/re/([a-z]+)/(.*)$', substitution: '/\\2/\\1'}}, service: {s}"
            ),
        ),
        yaml::mapping(
            "host",
            &format!(
                "hostname: '*', prefix: /host/, host_rewrite: upstream.example.com, service: {s}"
            ),
        ),
    ]);
    let Some(lg) = Legate::start(&[("rewrites.yaml", &config)]).await else {
        return;
    };

    // Default rewrite `/`: the prefix is replaced by `/`, the query kept.
    let r = routed(port, "GET", "/default/a/b?q=1", &[]).await;
    let seen_default = seen(&r, "a");
    assert_eq!(seen_default["path"], "/a/b?q=1");
    assert_eq!(header(&seen_default, "host"), Some("localhost"));
    // `rewrite: ''` keeps the path.
    let r = routed(port, "GET", "/keep/a", &[]).await;
    assert_eq!(seen(&r, "a")["path"], "/keep/a");
    // An explicit rewrite.
    let r = routed(port, "GET", "/custom/a/b", &[]).await;
    assert_eq!(seen(&r, "a")["path"], "/v2/a/b");
    // regex_rewrite with capture groups.
    let r = routed(port, "GET", "/re/abc/rest/of", &[]).await;
    assert_eq!(seen(&r, "a")["path"], "/rest/of/abc");
    // host_rewrite changes the Host upstream (and the default path rewrite still applies).
    let r = routed(port, "GET", "/host/h", &[]).await;
    let s = seen(&r, "a");
    assert_eq!(s["path"], "/h");
    assert_eq!(header(&s, "host"), Some("upstream.example.com"));

    assert_eq!(lg.errors().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_with_their_codes() {
    let a = Backend::start("a").await;
    let (plain, xfp) = (free_port(), free_port());
    let s = format!("'127.0.0.1:{}'", a.port());
    let redirect = |name: &str, prefix: &str, extra: &str| {
        yaml::mapping(
            name,
            &format!(
                "hostname: '*', prefix: {prefix}, service: 'redirect.example.com:8443', host_redirect: true{extra}"
            ),
        )
    };
    let config = yaml::docs(&[
        yaml::listener("plain", plain, "HTTP", "INSECURE"),
        // l7Depth 1: Envoy trusts the client's X-Forwarded-Proto, as behind a TLS-terminating LB.
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Listener\nmetadata: {{name: xfp, namespace: default}}\n\
             spec: {{port: {xfp}, protocol: HTTP, securityModel: XFP, l7Depth: 1, hostBinding: {{namespace: {{from: ALL}}}}}}\n"
        ),
        yaml::host("any", "*", "Route", ""),
        yaml::host("secure", "secure.example.com", "Redirect", ""),
        redirect("r301", "/r301/", ""),
        redirect("r302", "/r302/", ", redirect_response_code: 302"),
        redirect("r307", "/r307/", ", redirect_response_code: 307"),
        redirect(
            "r308",
            "/r308/",
            ", redirect_response_code: 308, path_redirect: /landing",
        ),
        redirect(
            "rprefix",
            "/rprefix/",
            ", prefix_redirect: /moved/, redirect_response_code: 302",
        ),
        yaml::mapping(
            "secure-app",
            &format!("hostname: secure.example.com, prefix: /sec/, service: {s}"),
        ),
    ]);
    let Some(_lg) = Legate::start(&[("redirects.yaml", &config)]).await else {
        return;
    };

    for (path, code, location) in [
        (
            "/r301/x?q=1",
            301,
            "http://redirect.example.com:8443/r301/x?q=1",
        ),
        ("/r302/x", 302, "http://redirect.example.com:8443/r302/x"),
        ("/r307/x", 307, "http://redirect.example.com:8443/r307/x"),
        ("/r308/x", 308, "http://redirect.example.com:8443/landing"),
        (
            "/rprefix/x/y",
            302,
            "http://redirect.example.com:8443/moved/x/y",
        ),
    ] {
        let r = routed(plain, "GET", path, &[]).await;
        assert_eq!(r.status, code, "{path}: {r:?}");
        assert_eq!(
            r.headers.get("location").and_then(|v| v.to_str().ok()),
            Some(location),
            "{path}"
        );
        assert!(r.backend().is_none(), "a redirect never reaches a backend");
    }

    // Under XFP, a Host with insecure action Redirect sends plain requests to https, and routes
    // requests that arrived over TLS (X-Forwarded-Proto: https from a trusted hop).
    let host = ("host", "secure.example.com");
    let r = routed(xfp, "GET", "/sec/page?x=1", &[host]).await;
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some("https://secure.example.com/sec/page?x=1")
    );
    let r = routed(
        xfp,
        "GET",
        "/sec/page",
        &[host, ("x-forwarded-proto", "https")],
    )
    .await;
    let s = seen(&r, "a");
    assert_eq!(s["path"], "/page");
    assert_eq!(header(&s, "x-forwarded-proto"), Some("https"));
    // The same Host on the INSECURE Listener: Redirect also sends plain requests to https.
    let r = routed(plain, "GET", "/sec/page", &[host]).await;
    assert_eq!(r.status, 301, "{r:?}");
    // A Host with action Route on the XFP Listener routes plain requests.
    let r = routed(xfp, "GET", "/r301/z", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some("http://redirect.example.com:8443/r301/z")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight() {
    let a = Backend::start("a").await;
    let port = free_port();
    let s = format!("'127.0.0.1:{}'", a.port());
    let config = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "cors",
            &format!(
                "hostname: '*', prefix: /cors/, service: {s}, cors: {{origins: 'https://a.com,https://b.com', methods: [GET, PUT], headers: 'x-a, x-b', exposed_headers: [x-e], max_age: 600}}"
            ),
        ),
        yaml::mapping(
            "nocors",
            &format!("hostname: '*', prefix: /nocors/, service: {s}"),
        ),
    ]);
    let Some(_lg) = Legate::start(&[("cors.yaml", &config)]).await else {
        return;
    };
    routed(port, "GET", "/cors/ready", &[]).await;
    let hits_before = a.hits.load(std::sync::atomic::Ordering::Relaxed);

    let preflight = |origin: &'static str, path: &'static str| async move {
        http::request(
            local(port),
            "OPTIONS",
            path,
            &[
                ("origin", origin),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-a"),
            ],
        )
        .await
        .unwrap()
    };
    let get = |r: &Reply, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    // An allowed origin: Envoy answers the preflight itself.
    let r = preflight("https://b.com", "/cors/x").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.backend().is_none(), "Envoy answers a preflight: {r:?}");
    assert_eq!(
        get(&r, "access-control-allow-origin").as_deref(),
        Some("https://b.com")
    );
    assert_eq!(
        get(&r, "access-control-allow-methods").as_deref(),
        Some("GET, PUT")
    );
    assert_eq!(
        get(&r, "access-control-allow-headers").as_deref(),
        Some("x-a, x-b")
    );
    assert_eq!(get(&r, "access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::Relaxed),
        hits_before,
        "the preflight did not reach the backend"
    );

    // A disallowed origin gets no CORS headers (the request goes on to the backend).
    let r = preflight("https://evil.com", "/cors/x").await;
    assert_eq!(get(&r, "access-control-allow-origin"), None, "{r:?}");
    assert_eq!(get(&r, "access-control-allow-methods"), None, "{r:?}");
    assert_eq!(seen(&r, "a")["method"], "OPTIONS");

    // A Mapping without cors: no CORS headers for anyone.
    let r = preflight("https://a.com", "/nocors/x").await;
    assert_eq!(get(&r, "access-control-allow-origin"), None, "{r:?}");

    // An actual cross-origin request: forwarded, with the CORS response headers added.
    let r = http::request(
        local(port),
        "GET",
        "/cors/y",
        &[("origin", "https://a.com")],
    )
    .await
    .unwrap();
    let s = seen(&r, "a");
    assert_eq!(s["path"], "/y");
    assert_eq!(header(&s, "origin"), Some("https://a.com"));
    assert_eq!(
        get(&r, "access-control-allow-origin").as_deref(),
        Some("https://a.com")
    );
    assert_eq!(
        get(&r, "access-control-expose-headers").as_deref(),
        Some("x-e")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_retries() {
    let slow = Backend::start("slow").await;
    let retried = Backend::start("retried").await;
    let plain = Backend::start("plain").await;
    let port = free_port();
    let config = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "slow",
            &format!(
                "hostname: '*', prefix: /slow/, rewrite: '', timeout_ms: 500, service: '127.0.0.1:{}'",
                slow.port()
            ),
        ),
        yaml::mapping(
            "retried",
            &format!(
                "hostname: '*', prefix: /flaky/, rewrite: '', retry_policy: {{retry_on: 5xx, num_retries: 3}}, service: '127.0.0.1:{}'",
                retried.port()
            ),
        ),
        yaml::mapping(
            "not-retried",
            &format!(
                "hostname: '*', prefix: /flaky-once/, rewrite: '', service: '127.0.0.1:{}'",
                plain.port()
            ),
        ),
    ]);
    let Some(_lg) = Legate::start(&[("policies.yaml", &config)]).await else {
        return;
    };

    // Timeout: a backend slower than timeout_ms gives 504; a fast one is answered.
    let r = routed(port, "GET", "/slow/20", &[]).await;
    assert_eq!(seen(&r, "slow")["path"], "/slow/20");
    let r = routed(port, "GET", "/slow/3000", &[]).await;
    assert_eq!(r.status, 504, "{r:?}");
    assert!(r.backend().is_none());

    // Retries: the backend fails every other request; with retries every request succeeds,
    // and the backend sees more requests than the client sent.
    routed(port, "GET", "/flaky/warmup", &[]).await;
    let before = retried.hits.load(std::sync::atomic::Ordering::Relaxed);
    for i in 0..20 {
        let path = format!("/flaky/{i}");
        let r = http::get(local(port), &path).await.unwrap();
        assert_eq!(r.status, 200, "{path} should have been retried: {r:?}");
        let s = seen(&r, "retried");
        assert_eq!(s["path"], path.as_str());
    }
    let hits = retried.hits.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        hits >= 28,
        "20 requests, ~half retried once: the backend saw only {hits}"
    );

    // Without a retry policy the same flaky backend shows its 503s.
    routed(port, "GET", "/flaky-once/warmup", &[]).await;
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = http::get(local(port), &format!("/flaky-once/{i}"))
            .await
            .unwrap();
        statuses.push(r.status);
    }
    let failed = statuses.iter().filter(|s| **s == 503).count();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (8..=12).contains(&failed) && failed + ok == 20,
        "every other request fails without retries: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_weights() {
    let stable = Backend::start("stable").await;
    let canary = Backend::start("canary").await;
    let port = free_port();
    let config = yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "canary",
            &format!(
                "hostname: '*', prefix: /app/, weight: 30, service: '127.0.0.1:{}'",
                canary.port()
            ),
        ),
        yaml::mapping(
            "stable",
            &format!(
                "hostname: '*', prefix: /app/, service: '127.0.0.1:{}'",
                stable.port()
            ),
        ),
    ]);
    let Some(_lg) = Legate::start(&[("canary.yaml", &config)]).await else {
        return;
    };
    routed(port, "GET", "/app/warmup", &[]).await;

    // 600 requests over 4 keep-alive connections. Each request draws independently, so the
    // canary count is Binomial(600, 0.3): mean 180, standard deviation sqrt(600·0.3·0.7) ≈ 11.2,
    // i.e. 1.87 percentage points. A ±8-point tolerance is ±48 requests ≈ 4.3 standard
    // deviations: a correct split fails with probability about 2·10⁻⁵, while a broken one (50/50,
    // 0/100, or the cumulative threshold read as a share, 30/70 the wrong way round) is far
    // outside it.
    const N: usize = 600;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = http::connect(local(port)).await.unwrap();
                let mut canary = 0usize;
                for i in 0..N / 4 {
                    let r = http::send(&mut conn, "GET", &format!("/app/{i}"), &[])
                        .await
                        .unwrap();
                    let who = r.backend().unwrap_or_else(|| panic!("not routed: {r:?}"));
                    assert_eq!(r.json()["path"], format!("/{i}"));
                    if who == "canary" {
                        canary += 1;
                    }
                }
                canary
            })
        })
        .collect();
    let mut canary_count = 0;
    for t in tasks {
        canary_count += t.await.unwrap();
    }
    let share = canary_count as f64 / N as f64;
    assert!(
        (share - 0.30).abs() <= 0.08,
        "canary share {share:.3} ({canary_count}/{N}) is not within 30% ± 8 points"
    );
}
