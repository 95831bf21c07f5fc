//! Hot reload under steady keep-alive traffic: files are added, changed and deleted while a
//! load generator hits a steady path; each change must take effect (polled, time recorded) and
//! the steady path must see zero failures throughout (no failed request, and no keep-alive
//! connection closed under it). The broken variant (a change that makes Envoy drain the
//! listener) proves the check can fail.

use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::harness::{CHANGE, Legate, free_port, local, yaml};
use crate::http::{self, Failure, Load, Reply};
use crate::routed;

/// Only a liveness check (tests do not time; `benches/runtime.rs` measures reload latency):
/// the observed times are printed (`--no-capture`).
const LIVENESS: Duration = CHANGE;

/// Polls every 10 ms (fresh connection each time) until `check` accepts the reply to
/// `GET path` with `host`; returns the time since `since`.
async fn time_to_effect(
    port: u16,
    path: &str,
    host: &str,
    since: Instant,
    what: &str,
    check: impl Fn(&Reply) -> bool,
) -> Duration {
    loop {
        if let Ok(r) = http::request(local(port), "GET", path, &[("host", host)]).await
            && check(&r)
        {
            let took = since.elapsed();
            eprintln!("hot reload: {what}: served after {took:?}");
            assert!(took < LIVENESS, "{what}: took {took:?}");
            return took;
        }
        assert!(
            since.elapsed() < LIVENESS,
            "{what}: not served after {LIVENESS:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keep-alive load on `/steady/x` once it is routed, flowing before the test goes on.
async fn steady_load(port: u16) -> Load {
    routed(port, "GET", "/steady/x", &[]).await;
    let load = Load::start(local(port), "/steady/x", 4, Duration::from_millis(10));
    load.until_answered(20).await;
    load
}

fn backend_is(r: &Reply, name: &str) -> bool {
    r.status == 200 && r.backend().as_deref() == Some(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_served_quickly_without_failing_steady_traffic() {
    changes_without_failures(false).await;
}

/// The same changes with `source.translation_cache`: each change reuses the plans of the
/// Mappings it did not touch, and must serve exactly what a full translation would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_with_the_translation_cache_are_served_without_failures() {
    changes_without_failures(true).await;
}

async fn changes_without_failures(translation_cache: bool) {
    let steady = Backend::start("steady").await;
    let steady2 = Backend::start("steady2").await;
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let svc = |b: &Backend| format!("'127.0.0.1:{}'", b.port());
    let steady_mapping = |service: &str, extra: &str| {
        yaml::mapping(
            "steady",
            &format!("hostname: '*', prefix: /steady/, service: {service}{extra}"),
        )
    };
    let Some(lg) = Legate::start_with(
        &[
            ("base.yaml", &yaml::base(port)),
            ("steady.yaml", &steady_mapping(&svc(&steady), "")),
        ],
        |c| c.source.translation_cache = translation_cache,
    )
    .await
    else {
        return;
    };
    let load = steady_load(port).await;
    let mut times = Vec::new();

    // 1. add a file
    let t = Instant::now();
    lg.write(
        "added.yaml",
        &yaml::mapping(
            "added",
            &format!("hostname: '*', prefix: /added/, service: {}", svc(&a)),
        ),
    );
    times.push(
        time_to_effect(
            port,
            "/added/x",
            "localhost",
            t,
            "add a Mapping file",
            |r| backend_is(r, "a"),
        )
        .await,
    );

    // 2. change it: another backend (a new cluster; the old one goes)
    let t = Instant::now();
    lg.write(
        "added.yaml",
        &yaml::mapping(
            "added",
            &format!("hostname: '*', prefix: /added/, service: {}", svc(&b)),
        ),
    );
    times.push(
        time_to_effect(
            port,
            "/added/x",
            "localhost",
            t,
            "change its service",
            |r| backend_is(r, "b"),
        )
        .await,
    );

    // 3. change it: rewrite and a request header
    let t = Instant::now();
    lg.write(
        "added.yaml",
        &yaml::mapping(
            "added",
            &format!(
                "hostname: '*', prefix: /added/, rewrite: /v2/, add_request_headers: {{x-gen: '3'}}, service: {}",
                svc(&b)
            ),
        ),
    );
    times.push(
        time_to_effect(
            port,
            "/added/x",
            "localhost",
            t,
            "change its rewrite and headers",
            |r| {
                let s = r.json();
                backend_is(r, "b") && s["path"] == "/v2/x" && s["headers"]["x-gen"] == "3"
            },
        )
        .await,
    );

    // 4. change the steady Mapping itself (its route), under load
    let t = Instant::now();
    lg.write(
        "steady.yaml",
        &steady_mapping(&svc(&steady), ", add_request_headers: {x-gen: '4'}"),
    );
    times.push(
        time_to_effect(
            port,
            "/steady/x",
            "localhost",
            t,
            "change the steady route",
            |r| backend_is(r, "steady") && r.json()["headers"]["x-gen"] == "4",
        )
        .await,
    );

    // 5. move the steady Mapping to another backend (make-before-break: no request may fail)
    let t = Instant::now();
    lg.write("steady.yaml", &steady_mapping(&svc(&steady2), ""));
    times.push(
        time_to_effect(
            port,
            "/steady/x",
            "localhost",
            t,
            "move the steady path to a new cluster",
            |r| backend_is(r, "steady2"),
        )
        .await,
    );

    // 6. add a Host and its Mapping in a new file
    let t = Instant::now();
    lg.write(
        "other.yaml",
        &yaml::docs(&[
            yaml::host("other", "other.example.com", "Route", ""),
            yaml::mapping(
                "other",
                &format!(
                    "hostname: other.example.com, prefix: /other/, service: {}",
                    svc(&a)
                ),
            ),
        ]),
    );
    times.push(
        time_to_effect(
            port,
            "/other/x",
            "other.example.com",
            t,
            "add a Host file",
            |r| backend_is(r, "a"),
        )
        .await,
    );

    // 7. delete files: their routes disappear
    let t = Instant::now();
    lg.remove("added.yaml");
    times.push(
        time_to_effect(
            port,
            "/added/x",
            "localhost",
            t,
            "delete a Mapping file",
            |r| r.status == 404,
        )
        .await,
    );
    let t = Instant::now();
    lg.remove("other.yaml");
    times.push(
        time_to_effect(
            port,
            "/other/x",
            "other.example.com",
            t,
            "delete the Host file",
            |r| r.status == 404,
        )
        .await,
    );

    load.until_answered(20).await;
    let report = load.finish().await;
    eprintln!("hot reload: steady path: {report}; times to effect: {times:?}");
    report.assert_clean("steady traffic during hot reload", 40);
    assert!(steady.hits.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(steady2.hits.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(lg.errors().await, Vec::<String>::new());
}

/// The broken variant of the test above: a reload that changes a listener-level setting (the
/// Module's `buffer_limit_bytes` becomes the listener's per-connection buffer limit) makes
/// Envoy replace the listener and drain its connections, and the steady load counts that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_drains_the_listener_is_caught() {
    let steady = Backend::start("steady").await;
    let port = free_port();
    let module = |limit: u32| {
        format!(
            "apiVersion: getambassador.io/v3alpha1\nkind: Module\n\
             metadata: {{name: ambassador, namespace: default}}\n\
             spec: {{config: {{buffer_limit_bytes: {limit}}}}}\n"
        )
    };
    let mapping = yaml::mapping(
        "steady",
        &format!(
            "hostname: '*', prefix: /steady/, service: '127.0.0.1:{}'",
            steady.port()
        ),
    );
    let Some(lg) = Legate::start(&[
        ("base.yaml", &yaml::base(port)),
        ("steady.yaml", &mapping),
        ("module.yaml", &module(1 << 20)),
    ])
    .await
    else {
        return;
    };
    let load = steady_load(port).await;

    lg.write("module.yaml", &module(2 << 20));
    load.until_failed(1).await;
    let report = load.finish().await;
    eprintln!("hot reload draining the listener: {report}");
    assert!(
        report.count(Failure::Closed) + report.count(Failure::Reset) > 0,
        "{report}"
    );
    assert_eq!(lg.errors().await, Vec::<String>::new());
}
