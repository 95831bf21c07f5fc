//! TracingService → the tracer of every HTTP connection manager, as its `tracing.provider`,
//! so a TracingService created or changed while Envoy runs takes effect without a restart
//! (docs/design.md#tracingservice).
//!
//! A connection manager has one tracer: the first valid TracingService in processing order is
//! used and every other one is reported and left out.

use serde_json::Value;

use super::collector::{self, Collector};
use crate::api::tracing_service::TracingServiceSpec;
use crate::ir::{ChainAction, CustomTag, Ir, TagValue, TraceProvider, Tracing};
use crate::translate::load::{Meta, Obj, unknown};
use crate::translate::module::Settings;
use crate::translate::{Errors, Options};

/// The `service_name` of OpenTelemetry and Datadog spans unless `config.service_name` is set
/// (Emissary's default).
const DEFAULT_SERVICE_NAME: &str = "ambassador";

pub(crate) fn attach(
    services: &[Obj<TracingServiceSpec>],
    settings: &Settings,
    options: &Options,
    ir: &mut Ir,
    errs: &mut Errors,
) {
    let mut chosen: Option<(&Meta, Tracing)> = None;
    for o in services {
        let meta = &o.meta;
        unknown(meta, "spec", &o.spec.extra, errs);
        if let Some(s) = &o.spec.sampling {
            unknown(meta, "spec.sampling", &s.extra, errs);
        }
        for t in o.spec.custom_tags.iter().flatten() {
            unknown(meta, "spec.custom_tags", &t.extra, errs);
        }
        if let Some((first, _)) = &chosen {
            errs.push(meta.error(
                "",
                format!(
                    "only one TracingService is used: {} comes first",
                    first.id()
                ),
            ));
            continue;
        }
        match plan(o, settings, options, errs) {
            Ok((tracing, cluster)) => {
                if !collector::has_chains(ir, false) {
                    errs.push(meta.warning("", "no HTTP connection manager: nothing is traced"));
                    continue;
                }
                if let Err(e) = collector::add(ir, cluster) {
                    errs.push(meta.error("spec.service", e));
                    continue;
                }
                chosen = Some((meta, tracing));
            }
            Err((field, message)) => errs.push(meta.error(&field, message)),
        }
    }
    let Some((_, tracing)) = chosen else {
        return;
    };
    for fc in ir.listeners.iter_mut().flat_map(|l| &mut l.filter_chains) {
        if let ChainAction::Http(h) = &mut fc.action {
            h.tracing = Some(Box::new(tracing.clone()));
        }
    }
}

type Fail = (String, String);

fn fail(field: &str, message: impl Into<String>) -> Fail {
    (field.to_string(), message.into())
}

/// The keys of `config` each driver reads; any other is reported and not passed to Envoy.
const ZIPKIN_KEYS: &[&str] = &[
    "collector_endpoint",
    "collector_endpoint_version",
    "collector_hostname",
    "trace_id_128bit",
    "shared_span_context",
];
const OTEL_KEYS: &[&str] = &["service_name"];
const DATADOG_KEYS: &[&str] = &["service_name", "collector_hostname"];

fn plan(
    o: &Obj<TracingServiceSpec>,
    settings: &Settings,
    options: &Options,
    errs: &mut Errors,
) -> Result<(Tracing, crate::ir::Cluster), Fail> {
    let (meta, s) = (&o.meta, &o.spec);
    let driver = s
        .driver
        .as_deref()
        .ok_or_else(|| fail("spec.driver", "required"))?;
    let keys = match driver {
        "zipkin" => ZIPKIN_KEYS,
        "opentelemetry" => OTEL_KEYS,
        "datadog" => DATADOG_KEYS,
        "lightstep" => {
            return Err(fail(
                "spec.driver",
                "lightstep was removed from Envoy; use opentelemetry",
            ));
        }
        other => {
            return Err(fail(
                "spec.driver",
                format!("{other:?} is not zipkin, opentelemetry or datadog"),
            ));
        }
    };
    let service = s
        .service
        .as_deref()
        .ok_or_else(|| fail("spec.service", "required"))?;
    let config = s.config.clone().unwrap_or_default();
    for key in config.keys().filter(|k| !keys.contains(&k.as_str())) {
        let why = if key == "collector_cluster" {
            "ignored: legate points the tracer at the cluster of spec.service".to_string()
        } else {
            format!("not read by the {driver} driver; ignored")
        };
        errs.push(meta.warning(&format!("spec.config.{key}"), why));
    }
    let text = |key: &str| -> Result<Option<String>, Fail> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) if !v.is_empty() => Ok(Some(v.clone())),
            Some(_) => Err(fail(
                &format!("spec.config.{key}"),
                "must be a non-empty string",
            )),
        }
    };
    let flag = |key: &str| -> Result<Option<bool>, Fail> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(fail(&format!("spec.config.{key}"), "must be true or false")),
        }
    };
    let (cluster, host) = collector::cluster(
        &Collector {
            marker: "tracing",
            service,
            stats_name: s.stats_name.as_deref(),
            http2: driver == "opentelemetry",
        },
        meta,
        settings,
        options,
    )
    .map_err(|e| fail("spec.service", e))?;
    let name = cluster.name.clone();
    let provider = match driver {
        "zipkin" => {
            let endpoint = text("collector_endpoint")?.unwrap_or_else(|| "/api/v2/spans".into());
            if !endpoint.starts_with('/') {
                return Err(fail(
                    "spec.config.collector_endpoint",
                    "must be a path starting with /",
                ));
            }
            let proto = match text("collector_endpoint_version")?.as_deref() {
                None | Some("HTTP_JSON") => false,
                Some("HTTP_PROTO") => true,
                Some(other) => {
                    return Err(fail(
                        "spec.config.collector_endpoint_version",
                        format!("{other:?} is not HTTP_JSON or HTTP_PROTO"),
                    ));
                }
            };
            TraceProvider::Zipkin {
                cluster: name,
                endpoint,
                // The collector's own name, not the internal cluster name.
                hostname: text("collector_hostname")?.unwrap_or(host),
                proto,
                trace_id_128bit: flag("trace_id_128bit")?.unwrap_or(true),
                shared_span_context: flag("shared_span_context")?,
            }
        }
        "opentelemetry" => TraceProvider::OpenTelemetry {
            cluster: name,
            service_name: text("service_name")?.unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
        },
        _ => TraceProvider::Datadog {
            cluster: name,
            service_name: text("service_name")?.unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
            hostname: text("collector_hostname")?.unwrap_or(host),
        },
    };
    let percent = |field: &str, v: Option<u32>| -> Result<Option<u32>, Fail> {
        match v {
            Some(p) if p > 100 => Err(fail(
                &format!("spec.sampling.{field}"),
                "must be a percentage, 0 to 100",
            )),
            other => Ok(other),
        }
    };
    let sampling = s.sampling.clone().unwrap_or_default();
    Ok((
        Tracing {
            provider,
            client_sampling: percent("client", sampling.client)?,
            random_sampling: percent("random", sampling.random)?,
            overall_sampling: percent("overall", sampling.overall)?,
            custom_tags: custom_tags(s)?,
        },
        cluster,
    ))
}

/// `custom_tags`, then a `request_header` tag for each of `tag_headers` not already a tag.
fn custom_tags(s: &TracingServiceSpec) -> Result<Vec<CustomTag>, Fail> {
    let mut out: Vec<CustomTag> = Vec::new();
    for (i, t) in s.custom_tags.iter().flatten().enumerate() {
        let field = |f: &str| format!("spec.custom_tags[{i}]{f}");
        let tag = match t.tag.as_deref() {
            Some(tag) if !tag.is_empty() => tag.to_string(),
            _ => return Err(fail(&field(".tag"), "required")),
        };
        let named = |n: &crate::api::tracing_service::NamedTag, f: &str| match n.name.as_deref() {
            Some(name) if !name.is_empty() => Ok((name.to_string(), n.default_value.clone())),
            _ => Err(fail(&field(&format!(".{f}.name")), "required")),
        };
        let value = match (&t.literal, &t.environment, &t.request_header) {
            (Some(l), None, None) => match &l.value {
                Some(v) => TagValue::Literal(v.clone()),
                None => return Err(fail(&field(".literal.value"), "required")),
            },
            (None, Some(e), None) => {
                let (name, default) = named(e, "environment")?;
                TagValue::Environment { name, default }
            }
            (None, None, Some(h)) => {
                let (name, default) = named(h, "request_header")?;
                TagValue::RequestHeader { name, default }
            }
            _ => {
                return Err(fail(
                    &field(""),
                    "needs exactly one of literal, environment, request_header",
                ));
            }
        };
        if out.iter().any(|o| o.tag == tag) {
            return Err(fail(&field(".tag"), format!("tag {tag:?} is given twice")));
        }
        out.push(CustomTag { tag, value });
    }
    for (i, h) in s.tag_headers.iter().flatten().enumerate() {
        if h.is_empty() {
            return Err(fail(&format!("spec.tag_headers[{i}]"), "must not be empty"));
        }
        if !out.iter().any(|o| o.tag == *h) {
            out.push(CustomTag {
                tag: h.clone(),
                value: TagValue::RequestHeader {
                    name: h.clone(),
                    default: None,
                },
            });
        }
    }
    Ok(out)
}
