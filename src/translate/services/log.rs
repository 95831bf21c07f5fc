//! LogService → gRPC access loggers on every HTTP connection manager and, with the `tcp`
//! driver, on every TCP proxy (docs/design.md#logservice).
//!
//! Every valid LogService applies, each with its own logger, in processing order; an invalid
//! one is reported and left out, and traffic is served as without it.

use super::collector::{self, Collector};
use crate::api::log_service::LogServiceSpec;
use crate::ir::{ChainAction, GrpcAccessLog, GrpcLogKind, Ir};
use crate::translate::load::{Obj, unknown};
use crate::translate::module::Settings;
use crate::translate::{Errors, Options};

/// Emissary's `log_name` for every LogService; `spec.log_name` overrides it.
const DEFAULT_LOG_NAME: &str = "logservice";

/// Attaches the loggers of every valid LogService and adds their collector clusters.
pub(crate) fn attach(
    services: &[Obj<LogServiceSpec>],
    settings: &Settings,
    options: &Options,
    ir: &mut Ir,
    errs: &mut Errors,
) {
    let mut loggers = Vec::new();
    for o in services {
        let (meta, s) = (&o.meta, &o.spec);
        unknown(meta, "spec", &s.extra, errs);
        if let Some(dc) = &s.driver_config {
            unknown(meta, "spec.driver_config", &dc.extra, errs);
        }
        match plan(o, settings, options, errs) {
            Ok((logger, cluster)) => {
                if !collector::has_chains(ir, logger.kind == GrpcLogKind::Tcp) {
                    errs.push(meta.warning(
                        "",
                        "no HTTP connection manager or TCP proxy to log: nothing is logged",
                    ));
                    continue;
                }
                if let Err(e) = collector::add(ir, cluster) {
                    errs.push(meta.error("spec.service", e));
                    continue;
                }
                loggers.push(logger);
            }
            Err((field, message)) => errs.push(meta.error(field, message)),
        }
    }
    if loggers.is_empty() {
        return;
    }
    for fc in ir.listeners.iter_mut().flat_map(|l| &mut l.filter_chains) {
        match &mut fc.action {
            ChainAction::Http(h) => h.access_logs = loggers.clone(),
            // TCPMapping connections are logged by the `tcp` driver (Emissary logs none).
            ChainAction::Tcp(t) => {
                t.access_logs = loggers
                    .iter()
                    .filter(|l| l.kind == GrpcLogKind::Tcp)
                    .cloned()
                    .collect();
            }
        }
    }
}

type Fail = (&'static str, String);

fn plan(
    o: &Obj<LogServiceSpec>,
    settings: &Settings,
    options: &Options,
    errs: &mut Errors,
) -> Result<(GrpcAccessLog, crate::ir::Cluster), Fail> {
    let (meta, s) = (&o.meta, &o.spec);
    match s.protocol_version.as_deref() {
        None | Some("v3") => {}
        Some("v2") => {
            return Err((
                "spec.protocol_version",
                "v2 is not supported by Envoy; use v3 (the default)".into(),
            ));
        }
        Some(other) => return Err(("spec.protocol_version", format!("{other:?} is not v3"))),
    }
    let kind = match s.driver.as_deref() {
        None | Some("tcp") => GrpcLogKind::Tcp,
        Some("http") => GrpcLogKind::Http,
        Some(other) => {
            return Err(("spec.driver", format!("{other:?} is not http or tcp")));
        }
    };
    let service = s
        .service
        .as_deref()
        .ok_or(("spec.service", "required".to_string()))?;
    if s.grpc == Some(false) {
        errs.push(meta.warning(
            "spec.grpc",
            "ignored: the collector is a gRPC service, always reached over HTTP/2",
        ));
    }
    let flush_s = s.flush_interval_time.unwrap_or(1);
    if flush_s == 0 {
        return Err((
            "spec.flush_interval_time",
            "must be at least 1 (seconds)".into(),
        ));
    }
    let (mut request, mut response, mut trailers) = (Vec::new(), Vec::new(), Vec::new());
    let headers = s
        .driver_config
        .as_ref()
        .and_then(|d| d.additional_log_headers.as_deref())
        .unwrap_or_default();
    if kind == GrpcLogKind::Tcp && !headers.is_empty() {
        return Err((
            "spec.driver_config.additional_log_headers",
            "only the http driver logs headers".into(),
        ));
    }
    for h in headers {
        unknown(
            meta,
            "spec.driver_config.additional_log_headers",
            &h.extra,
            errs,
        );
        let name = match h.header_name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_ascii_lowercase(),
            _ => {
                return Err((
                    "spec.driver_config.additional_log_headers",
                    "header_name is required".into(),
                ));
            }
        };
        for (flag, list) in [
            (h.during_request, &mut request),
            (h.during_response, &mut response),
            (h.during_trailer, &mut trailers),
        ] {
            if flag != Some(false) && !list.contains(&name) {
                list.push(name.clone());
            }
        }
    }
    let (cluster, _) = collector::cluster(
        &Collector {
            marker: "logging",
            service,
            stats_name: s.stats_name.as_deref(),
            http2: true,
        },
        meta,
        settings,
        options,
    )
    .map_err(|e| ("spec.service", e))?;
    let log_name = match s.log_name.as_deref() {
        None => DEFAULT_LOG_NAME.to_string(),
        Some("") => return Err(("spec.log_name", "must not be empty".into())),
        Some(n) => n.to_string(),
    };
    Ok((
        GrpcAccessLog {
            kind,
            log_name,
            cluster: cluster.name.clone(),
            flush_interval_ms: flush_s.saturating_mul(1000),
            buffer_size_bytes: s.flush_interval_byte_size.unwrap_or(16384),
            request_headers: request,
            response_headers: response,
            response_trailers: trailers,
        },
        cluster,
    ))
}
