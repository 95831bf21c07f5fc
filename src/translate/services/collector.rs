//! The upstream cluster of a LogService or TracingService collector, named as Emissary names
//! it: `cluster_<marker>_<service as written>_<namespace>` (docs/design.md#logservice).

use crate::ir::{ChainAction, Cluster, Discovery, DnsFamily, Endpoint, Ir, UpstreamTls};
use crate::translate::Options;
use crate::translate::load::Meta;
use crate::translate::module::Settings;
use crate::translate::service::{Service, sanitize};

/// What a collector cluster is built from.
pub(crate) struct Collector<'a> {
    /// `logging` or `tracing`.
    pub marker: &'a str,
    pub service: &'a str,
    pub stats_name: Option<&'a str>,
    /// Speak HTTP/2 (gRPC) to it.
    pub http2: bool,
}

/// The cluster, and the host the service names (for `Host` headers); the error is a message
/// for the `service` field.
pub(crate) fn cluster(
    c: &Collector<'_>,
    meta: &Meta,
    settings: &Settings,
    options: &Options,
) -> Result<(Cluster, String), String> {
    let mut svc = Service::parse(c.service)?;
    if let Some(suffix) = &svc.ignored_suffix {
        return Err(format!(
            "a collector is host[:port]; {suffix:?} is not allowed"
        ));
    }
    let written = svc.display();
    // Unqualified names are in the resource's namespace, as for a Mapping
    // (docs/design.md#service-parsing-and-endpoints).
    if meta.namespace != options.ambassador_namespace
        && !settings.use_ambassador_namespace_for_service_resolution
    {
        svc.qualify(&meta.namespace);
    }
    let tls = (svc.https == Some(true)).then(UpstreamTls::plain);
    let port = svc.port_or_default(tls.is_some());
    let name = crate::translate::upstream::cluster_name(&[
        "cluster".to_string(),
        c.marker.to_string(),
        written,
        meta.namespace.clone(),
    ]);
    let mut cluster = Cluster::new(
        name,
        Discovery::StrictDns(vec![Endpoint::new(svc.host.clone(), port)]),
    );
    cluster.alt_stat_name = Some(
        c.stats_name
            .map_or_else(|| sanitize(&svc.authority()), str::to_string),
    );
    cluster.tls = tls;
    cluster.http2 = c.http2;
    cluster.dns_family = match (settings.enable_ipv4, settings.enable_ipv6) {
        (false, true) => DnsFamily::V6Only,
        (true, true) => DnsFamily::Auto,
        _ => DnsFamily::V4Only,
    };
    cluster.idle_timeout_ms = settings.cluster_idle_timeout_ms;
    cluster.max_connection_duration_ms = settings.cluster_max_connection_lifetime_ms;
    Ok((cluster, svc.host))
}

/// Whether the IR has an HTTP connection manager (or, with `tcp`, a TCP proxy) to attach to.
pub(crate) fn has_chains(ir: &Ir, tcp: bool) -> bool {
    ir.listeners
        .iter()
        .flat_map(|l| &l.filter_chains)
        .any(|fc| match fc.action {
            ChainAction::Http(_) => true,
            ChainAction::Tcp(_) => tcp,
        })
}

/// Adds a collector cluster, keeping `ir.clusters` sorted by name. Two collectors of the same
/// service share one cluster; a Mapping's cluster of the same name but other settings is an
/// error (returned as the message).
pub(crate) fn add(ir: &mut Ir, cluster: Cluster) -> Result<(), String> {
    match ir.clusters.binary_search_by(|c| c.name.cmp(&cluster.name)) {
        Ok(i) if ir.clusters[i] == cluster => Ok(()),
        Ok(_) => Err(format!(
            "cluster {} already exists with other settings",
            cluster.name
        )),
        Err(i) => {
            ir.clusters.insert(i, cluster);
            Ok(())
        }
    }
}
