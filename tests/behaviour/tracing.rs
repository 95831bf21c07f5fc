//! TracingService through the real Envoy (docs/design.md#tracingservice): spans reach a real
//! Zipkin receiver with Envoy's service name and the custom tags; sampling 0 sends none; a
//! TracingService changed while Envoy runs takes effect without a restart; OpenTelemetry spans
//! reach a real OTLP/gRPC receiver with the configured service name and tags.

use std::time::Duration;

use crate::backend::Backend;
use crate::collectors::{OtlpReceiver, ZipkinReceiver};
use crate::harness::{CHANGE, Legate, free_port, local, yaml};
use crate::http;
use crate::routed;

pub(crate) fn tracing_service(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: getambassador.io/v3alpha1\nkind: TracingService\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{{spec}}}\n"
    )
}

fn tag<'a>(span: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    span["tags"][name].as_str()
}

/// Spans whose `http.url` contains `marker`.
fn spans_for(z: &ZipkinReceiver, marker: &str) -> Vec<serde_json::Value> {
    z.spans()
        .into_iter()
        .filter(|s| tag(s, "http.url").is_some_and(|u| u.contains(marker)))
        .collect()
}

/// A listener on `port` and one Mapping `prefix` → `backend`.
fn traced_config(port: u16, prefix: &str, backend: &Backend) -> String {
    yaml::docs(&[
        yaml::base(port),
        yaml::mapping(
            "traced",
            &format!(
                "hostname: '*', prefix: {prefix}, service: '127.0.0.1:{}'",
                backend.port()
            ),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_zipkin_with_tags_and_sampling() {
    let a = Backend::start("a").await;
    let zipkin = ZipkinReceiver::start().await;
    let port = free_port();
    let base = traced_config(port, "/traced/", &a);
    let service = |sampling: u32, team: &str| {
        tracing_service(
            "zipkin",
            &format!(
                "service: '127.0.0.1:{}', driver: zipkin, sampling: {{random: {sampling}}}, \
                 custom_tags: [{{tag: team, literal: {{value: {team}}}}}], tag_headers: [x-user]",
                zipkin.addr.port()
            ),
        )
    };
    // Sampling 0 first: no span at all.
    let Some(lg) =
        Legate::start(&[("base.yaml", &base), ("tracing.yaml", &service(0, "none"))]).await
    else {
        return;
    };
    routed(port, "GET", "/traced/warm", &[]).await;
    // Envoy's Zipkin tracer posts every 5 spans or every 5 s: 20 requests, then 6 s.
    for i in 0..20 {
        let r = http::get(local(port), &format!("/traced/unsampled/{i}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        zipkin.spans().len(),
        0,
        "sampling 0 sends no span: {:?}",
        zipkin.posts()
    );

    // The same TracingService at 100%, changed while Envoy runs.
    lg.write("tracing.yaml", &service(100, "edge"));
    let spans = http::eventually(CHANGE, "spans of /traced/sampled", || async {
        for i in 0..5 {
            let path = format!("/traced/sampled/{i}");
            http::request(local(port), "GET", &path, &[("x-user", "alice")])
                .await
                .ok()?;
        }
        let s = spans_for(&zipkin, "/traced/sampled/");
        (!s.is_empty()).then_some(s)
    })
    .await;
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .unwrap_or_else(|| panic!("a server span: {spans:#?}"));
    // Zipkin's service name is Envoy's node cluster (legate's `envoy.node_cluster`).
    assert_eq!(
        server["localEndpoint"]["serviceName"], "legate",
        "{server:#}"
    );
    assert_eq!(tag(server, "team"), Some("edge"), "{server:#}");
    assert_eq!(tag(server, "x-user"), Some("alice"), "{server:#}");
    // 128-bit trace ids by default (32 hex digits).
    assert_eq!(
        server["traceId"].as_str().map(str::len),
        Some(32),
        "{server:#}"
    );
    // Posted to the default endpoint with the collector's own name as Host.
    let post = zipkin.posts().into_iter().next().unwrap();
    assert_eq!(post.path, "/api/v2/spans");
    assert_eq!(post.host, "127.0.0.1");
    assert!(
        spans_for(&zipkin, "/traced/unsampled/").is_empty(),
        "nothing from the sampling-0 phase"
    );
    assert_eq!(lg.errors().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_opentelemetry_collector() {
    let a = Backend::start("a").await;
    let otlp = OtlpReceiver::start().await;
    let port = free_port();
    let base = traced_config(port, "/otel/", &a);
    let service = tracing_service(
        "otel",
        &format!(
            "service: '127.0.0.1:{}', driver: opentelemetry, sampling: {{random: 100}}, \
             config: {{service_name: edge-otel}}, \
             custom_tags: [{{tag: team, literal: {{value: edge}}}}], tag_headers: [x-user]",
            otlp.addr.port()
        ),
    );
    let Some(lg) = Legate::start(&[("base.yaml", &base), ("tracing.yaml", &service)]).await else {
        return;
    };
    // Envoy's OpenTelemetry tracer exports every 5 spans or every 5 s.
    let spans = http::eventually(CHANGE, "OTLP spans of /otel/", || async {
        for i in 0..5 {
            let path = format!("/otel/{i}");
            let r = http::request(local(port), "GET", &path, &[("x-user", "bob")])
                .await
                .ok()?;
            assert_eq!(r.status, 200, "{r:?}");
        }
        let s: Vec<_> = otlp
            .spans()
            .into_iter()
            .filter(|s| {
                s.attribute("http.url")
                    .is_some_and(|u| u.contains("/otel/"))
            })
            .collect();
        (!s.is_empty()).then_some(s)
    })
    .await;
    // SpanKind SERVER: the span of the request Envoy received.
    let server = spans
        .iter()
        .find(|s| s.kind == 2)
        .unwrap_or_else(|| panic!("a server span: {spans:#?}"));
    assert_eq!(
        server.service_name.as_deref(),
        Some("edge-otel"),
        "{server:#?}"
    );
    assert_eq!(server.attribute("team"), Some("edge"), "{server:#?}");
    assert_eq!(server.attribute("x-user"), Some("bob"), "{server:#?}");
    assert_eq!(server.trace_id.len(), 16, "a 128-bit trace id: {server:#?}");
    assert_eq!(lg.errors().await, Vec::<String>::new());
}
