//! The real Envoy judges the translation: every resource of a rich IR, as a static bootstrap,
//! must pass `envoy --mode validate`; a broken value must fail it (so the test can fail).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;

use super::{build, fixture::rich_ir};
use crate::ir::PathMatch;
use crate::xds::resources::{json, static_bootstrap};

/// Kills the child if the test ends early, so no Envoy outlives its test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `envoy --mode validate` on the snapshot's static bootstrap; `None` when Envoy tests
/// are explicitly skipped. Returns whether it passed and what Envoy printed.
fn envoy_validate(ir: &crate::ir::Ir) -> Option<(bool, String)> {
    let envoy = crate::envoy::locate::for_tests()?;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("x.pb");
    let bootstrap = static_bootstrap(&build(ir)).unwrap();
    std::fs::write(&config, bootstrap.encode_to_vec()).unwrap();
    Some(run(&envoy, &config, dir.path()))
}

fn run(envoy: &Path, config: &Path, dir: &Path) -> (bool, String) {
    let log = dir.join("envoy.log");
    let child = Command::new(envoy)
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "warn",
            "-c",
        ])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("envoy.err")).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "envoy --mode validate hangs");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("envoy.err")).unwrap_or_default();
    (status.success(), output)
}

#[test]
fn rich_ir_passes_envoy_validate() {
    let Some((ok, output)) = envoy_validate(&rich_ir()) else {
        return;
    };
    assert!(ok, "envoy rejected the translation:\n{output}");
    // Envoy logs every deprecated field it meets at warning level.
    assert!(
        !output.contains("eprecated"),
        "the translation uses deprecated fields:\n{output}"
    );
}

#[test]
fn a_bad_regex_fails_envoy_validate() {
    let mut ir = rich_ir();
    ir.route_tables[0].virtual_hosts[0].routes[0].matcher.path = PathMatch::Regex("(".into());
    let Some((ok, output)) = envoy_validate(&ir) else {
        return;
    };
    assert!(!ok, "envoy accepted an invalid regex:\n{output}");
    assert!(
        output.contains("missing )"),
        "rejected for another reason:\n{output}"
    );
}

/// Envoy reads the JSON form too: the proto3 JSON of the static bootstrap (field names, `@type`,
/// durations, enums) is what `legate translate --format json` prints.
#[test]
fn the_json_form_passes_envoy_validate() {
    let Some(envoy) = crate::envoy::locate::for_tests() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("x.json");
    let bootstrap = static_bootstrap(&build(&rich_ir())).unwrap();
    let json = json::any_to_json(&envoy_types::util::pack_any(bootstrap)).unwrap();
    std::fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();
    let (ok, output) = run(&envoy, &config, dir.path());
    assert!(ok, "envoy rejected the JSON form:\n{output}");
}

/// The golden input of `case`, translated.
pub(super) fn golden_ir(case: &str) -> crate::ir::Ir {
    use serde::Deserialize;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join("input.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut objects = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).unwrap();
        objects.push(crate::api::RawObject {
            origin: crate::api::Origin::file(&path, i + 1),
            value: std::sync::Arc::new(
                crate::api::doc::Document::from_value(&serde_json::to_value(value).unwrap())
                    .unwrap(),
            ),
        });
    }
    crate::translate::translate(&objects, &crate::translate::Options::default()).ir
}

/// AuthService and RateLimitService: the ext_authz and ratelimit filters (HTTP, gRPC, TLS, the
/// fail-closed stand-in), per-route settings and every rate-limit action load in Envoy 1.40,
/// without deprecated fields.
#[test]
fn external_services_pass_envoy_validate() {
    for case in [
        "svc-auth-http",
        "svc-auth-grpc",
        "svc-ratelimit",
        "svc-auth-and-ratelimit",
        "bad-35-auth-protocol-v2",
    ] {
        let ir = golden_ir(case);
        let Some((ok, output)) = envoy_validate(&ir) else {
            return;
        };
        assert!(ok, "{case}: envoy rejected the translation:\n{output}");
        assert!(
            !output.contains("eprecated"),
            "{case}: the translation uses deprecated fields:\n{output}"
        );
    }
}

/// The check above can fail: an ext_authz filter whose status_on_error is not an HTTP status
/// is refused.
#[test]
fn a_bad_ext_authz_fails_envoy_validate() {
    let mut ir = golden_ir("svc-auth-http");
    for l in &mut ir.listeners {
        for fc in &mut l.filter_chains {
            if let crate::ir::ChainAction::Http(h) = &mut fc.action
                && let Some(crate::ir::ExtAuthz::Service(a)) = &mut h.ext_authz
            {
                a.status_on_error = Some(299);
            }
        }
    }
    let Some((ok, output)) = envoy_validate(&ir) else {
        return;
    };
    assert!(!ok, "envoy accepted status_on_error 299:\n{output}");
}

/// LogService / TracingService: the rich IR with gRPC access loggers on every chain and each
/// tracer in turn passes `envoy --mode validate`, without deprecated fields.
#[test]
fn loggers_and_each_tracer_pass_envoy_validate() {
    use crate::ir::{
        ChainAction, Cluster, CustomTag, Discovery, Endpoint, GrpcAccessLog, GrpcLogKind, TagValue,
        TraceProvider, Tracing,
    };
    let collector = |name: &str, http2: bool| {
        let mut c = Cluster::new(
            name,
            Discovery::StrictDns(vec![Endpoint::new("collector.example.com", 9411)]),
        );
        c.http2 = http2;
        c
    };
    let log = |kind, cluster: &str| GrpcAccessLog {
        kind,
        log_name: "logservice".into(),
        cluster: cluster.into(),
        flush_interval_ms: 1000,
        buffer_size_bytes: 16384,
        request_headers: vec!["x-req".into()],
        response_headers: vec!["x-resp".into()],
        response_trailers: vec!["grpc-status".into()],
    };
    let providers = [
        TraceProvider::Zipkin {
            cluster: "cluster_tracing_t".into(),
            endpoint: "/api/v2/spans".into(),
            hostname: "zipkin".into(),
            proto: false,
            trace_id_128bit: true,
            shared_span_context: Some(false),
        },
        TraceProvider::OpenTelemetry {
            cluster: "cluster_tracing_t".into(),
            service_name: "ambassador".into(),
        },
        TraceProvider::Datadog {
            cluster: "cluster_tracing_t".into(),
            service_name: "ambassador".into(),
            hostname: "agent".into(),
        },
    ];
    for provider in providers {
        let mut ir = rich_ir();
        let otel = matches!(provider, TraceProvider::OpenTelemetry { .. });
        ir.clusters.push(collector("cluster_logging_l", true));
        ir.clusters.push(collector("cluster_tracing_t", otel));
        ir.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let tracing = Tracing {
            provider,
            client_sampling: Some(0),
            random_sampling: Some(50),
            overall_sampling: Some(100),
            custom_tags: vec![
                CustomTag {
                    tag: "lit".into(),
                    value: TagValue::Literal("v".into()),
                },
                CustomTag {
                    tag: "env".into(),
                    value: TagValue::Environment {
                        name: "HOME".into(),
                        default: Some("none".into()),
                    },
                },
                CustomTag {
                    tag: "hdr".into(),
                    value: TagValue::RequestHeader {
                        name: "x-user".into(),
                        default: None,
                    },
                },
            ],
        };
        let mut chains = (0, 0);
        for fc in ir.listeners.iter_mut().flat_map(|l| &mut l.filter_chains) {
            match &mut fc.action {
                ChainAction::Http(h) => {
                    h.access_logs = vec![
                        log(GrpcLogKind::Http, "cluster_logging_l"),
                        log(GrpcLogKind::Tcp, "cluster_logging_l"),
                    ];
                    h.tracing = Some(Box::new(tracing.clone()));
                    chains.0 += 1;
                }
                ChainAction::Tcp(t) => {
                    t.access_logs = vec![log(GrpcLogKind::Tcp, "cluster_logging_l")];
                    chains.1 += 1;
                }
            }
        }
        assert!(chains.0 > 0 && chains.1 > 0, "the fixture has both kinds");
        let Some((ok, output)) = envoy_validate(&ir) else {
            return;
        };
        assert!(ok, "envoy rejected {tracing:?}:\n{output}");
        assert!(
            !output.contains("eprecated"),
            "deprecated fields with {tracing:?}:\n{output}"
        );
    }
}
