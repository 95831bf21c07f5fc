//! Listeners and the assembly of the whole IR: bound Hosts become vhosts of the Listener's
//! cleartext RDS table (`<listener>/http`), TLS Hosts become SNI chains each with its own table
//! of only its Hosts (`<listener>/https/<sni>`; names from identity, never position),
//! TCPMappings become tcp_proxy chains (before HTTP ones), and only the clusters and secrets
//! something references are emitted.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::common::LabelSelector;
use crate::api::host::InsecureAction;
use crate::api::listener::ListenerSpec;
use crate::ir::{
    ChainAction, Cluster, FilterChain, HttpManager, Ir, Listener, RouteAction, RouteTable,
    VirtualHost,
};

use super::group;
use super::host::{HostPlan, globs_compatible};
use super::load::{Meta, Obj, Version};
use super::mapping::{MappingPlan, Target};
use super::module::Settings;
use super::route::{Security, vhost_routes};
use super::tcp::{self, TcpGroup, TcpPlan};
use super::tls::Store;
use super::{Errors, Options};

/// A Listener that passed its checks.
#[derive(Debug, Clone)]
pub(crate) struct ListenerPlan {
    pub meta: Meta,
    /// Envoy name: `metadata.name`, or `name.namespace` when another namespace took the name.
    pub name: String,
    pub port: u16,
    pub http: bool,
    pub tls: bool,
    pub proxy: bool,
    pub security: Security,
    pub all_namespaces: bool,
    pub selector: Option<LabelSelector>,
    pub l7_depth: u32,
    pub stats_prefix: String,
    pub http2_max_concurrent_streams: Option<u32>,
}

impl ListenerPlan {
    fn binds(&self, h: &HostPlan) -> bool {
        (self.all_namespaces || h.meta.namespace == self.meta.namespace)
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&h.meta.labels))
    }
}

type Fail = (String, String);

pub(crate) fn plan_all(
    objs: &[Obj<ListenerSpec>],
    options: &Options,
    errs: &mut Errors,
) -> Vec<ListenerPlan> {
    let mut out: Vec<ListenerPlan> = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    let mut all: Vec<Obj<ListenerSpec>> = objs.to_vec();
    if options.default_listeners {
        all.extend(default_listeners(options));
    }
    for o in &all {
        let mut p = match plan(o, errs) {
            Ok(p) => p,
            Err((f, m)) => {
                errs.push(o.meta.error(&f, m));
                continue;
            }
        };
        if let Some(first) = ports.get(&p.port) {
            if o.meta.origin != crate::api::Origin::Builtin {
                errs.push(o.meta.error(
                    "spec.port",
                    format!("port {} is already used by Listener {first}", p.port),
                ));
            }
            continue;
        }
        if names.contains(&p.name) {
            p.name = format!("{}.{}", p.meta.name, p.meta.namespace);
        }
        names.insert(p.name.clone());
        ports.insert(p.port, p.meta.id());
        out.push(p);
    }
    out
}

/// Emissary's Helm `createDefaultListeners`: 8080/HTTP and 8443/HTTPS, XFP, from ALL.
fn default_listeners(options: &Options) -> Vec<Obj<ListenerSpec>> {
    [
        ("ambassador-http-8080", 8080, "HTTP"),
        ("ambassador-https-8443", 8443, "HTTPS"),
    ]
    .into_iter()
    .map(|(name, port, protocol)| Obj {
        meta: Meta {
            origin: crate::api::Origin::Builtin,
            kind: "Listener",
            name: name.into(),
            namespace: options.ambassador_namespace.clone(),
            labels: BTreeMap::new(),
            version: Version::V3,
        },
        spec: ListenerSpec {
            port: Some(port),
            protocol: Some(protocol.into()),
            security_model: Some("XFP".into()),
            host_binding: Some(crate::api::listener::HostBinding {
                namespace: Some(crate::api::listener::NamespaceBinding {
                    from: Some("ALL".into()),
                }),
                selector: None,
            }),
            ..ListenerSpec::default()
        },
    })
    .collect()
}

fn plan(o: &Obj<ListenerSpec>, errs: &mut Errors) -> Result<ListenerPlan, Fail> {
    let s = &o.spec;
    let f = |field: &str, m: String| (format!("spec.{field}"), m);
    let port = match s.port {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => return Err(f("port", format!("{p} is not in 1-65535"))),
        None => return Err(f("port", "required".into())),
    };
    let stack: Vec<String> = match (&s.protocol, &s.protocol_stack) {
        (Some(_), Some(stack)) => {
            errs.push(o.meta.warning(
                "spec.protocol",
                "both protocol and protocolStack set: protocolStack is used",
            ));
            stack.clone()
        }
        (None, Some(stack)) => stack.clone(),
        (Some(p), None) => match p.as_str() {
            "HTTP" => vec!["HTTP", "TCP"],
            "HTTPS" => vec!["TLS", "HTTP", "TCP"],
            "HTTPPROXY" => vec!["PROXY", "HTTP", "TCP"],
            "HTTPSPROXY" => vec!["TLS", "PROXY", "HTTP", "TCP"],
            "TCP" => vec!["TCP"],
            "TLS" => vec!["TLS", "TCP"],
            other => {
                return Err(f(
                    "protocol",
                    format!("{other:?} is not HTTP, HTTPS, HTTPPROXY, HTTPSPROXY, TCP or TLS"),
                ));
            }
        }
        .into_iter()
        .map(String::from)
        .collect(),
        (None, None) => {
            return Err(f(
                "protocol",
                "protocol or protocolStack is required".into(),
            ));
        }
    };
    if let Some(bad) = stack
        .iter()
        .find(|e| !["HTTP", "TLS", "PROXY", "TCP", "UDP"].contains(&e.as_str()))
    {
        return Err(f("protocolStack", format!("unknown element {bad:?}")));
    }
    match stack.last().map(String::as_str) {
        Some("TCP") => {}
        Some("UDP") => {
            return Err(f(
                "protocolStack",
                "UDP (HTTP/3) listeners are not supported yet".into(),
            ));
        }
        _ => return Err(f("protocolStack", "must end in TCP or UDP".into())),
    }
    let has = |e: &str| stack.iter().any(|x| x == e);
    let security = match s.security_model.as_deref() {
        Some("XFP") => Security::Xfp,
        Some("SECURE") => Security::Secure,
        Some("INSECURE") => Security::Insecure,
        Some(other) => {
            return Err(f(
                "securityModel",
                format!("{other:?} is not XFP, SECURE or INSECURE"),
            ));
        }
        None => return Err(f("securityModel", "required".into())),
    };
    let binding = s
        .host_binding
        .as_ref()
        .ok_or_else(|| f("hostBinding", "required".into()))?;
    let all_namespaces = match binding.namespace.as_ref().and_then(|n| n.from.as_deref()) {
        Some("ALL") => true,
        Some("SELF") | None => false,
        Some("SELECTOR") => {
            errs.push(o.meta.warning(
                "spec.hostBinding.namespace.from",
                "SELECTOR is not supported: acts as SELF",
            ));
            false
        }
        Some(other) => {
            return Err(f(
                "hostBinding.namespace.from",
                format!("{other:?} is not ALL or SELF"),
            ));
        }
    };
    if let Some(sel) = &binding.selector
        && sel.match_labels.is_none()
    {
        return Err(f(
            "hostBinding.selector",
            "only matchLabels is supported, and it is missing".into(),
        ));
    }
    // Envoy refuses 0 (and with it every listener), so a 0 is not passed on as "unset".
    if let Some(n) = s.http2_max_concurrent_streams
        && !(1..=2_147_483_647).contains(&n)
    {
        return Err(f(
            "http2MaxConcurrentStreams",
            format!("{n} is not in 1-2147483647"),
        ));
    }
    let http = has("HTTP");
    let tls = has("TLS");
    let stats_prefix = s.stats_prefix.clone().unwrap_or_else(|| match (http, tls) {
        (true, true) => "ingress_https".into(),
        (true, false) => "ingress_http".into(),
        (false, true) => format!("ingress_tls_{port}"),
        (false, false) => format!("ingress_tcp_{port}"),
    });
    Ok(ListenerPlan {
        meta: o.meta.clone(),
        name: o.meta.name.clone(),
        port,
        http,
        tls,
        proxy: has("PROXY"),
        security,
        all_namespaces,
        selector: binding.selector.clone(),
        l7_depth: s.l7_depth.unwrap_or(0),
        stats_prefix,
        http2_max_concurrent_streams: s.http2_max_concurrent_streams,
    })
}

/// Everything the assembly needs.
pub(crate) struct Inputs<'a> {
    pub listeners: Vec<ListenerPlan>,
    pub hosts: Vec<HostPlan>,
    pub mappings: Vec<MappingPlan>,
    pub tcp: Vec<TcpPlan>,
    pub settings: &'a Settings,
}

pub(crate) fn assemble(mut inp: Inputs<'_>, store: &mut Store, errs: &mut Errors) -> Ir {
    let mut items: Vec<(&Meta, &mut Cluster)> = Vec::new();
    for p in inp.mappings.iter_mut() {
        if let Target::Cluster(c) = &mut p.action.target {
            items.push((&p.meta, c.as_mut()));
        }
    }
    for p in inp.tcp.iter_mut() {
        items.push((&p.meta, &mut p.cluster));
    }
    group::assign_clusters(items, errs);
    let plans = &inp.mappings;
    let (groups, dropped) = group::build(plans, errs);
    let tcp_groups = tcp::groups(&inp.tcp, errs);
    if inp.listeners.is_empty() {
        errs.global(
            "no Listener defined: Envoy serves no HTTP traffic (add a Listener, or enable default listeners)",
            true,
        );
    }

    let mut ir = Ir::default();
    let mut routed = vec![false; plans.len()];
    let mut placed_tcp = vec![false; tcp_groups.len()];
    for l in &inp.listeners {
        let mut chains = Vec::new();
        // TCP chains first: they win SNI collisions (docs/design.md#filter-chains-and-sni).
        let mut tcp_snis: BTreeSet<String> = BTreeSet::new();
        for (gi, g) in tcp_groups.iter().enumerate() {
            if g.port != l.port || g.members.is_empty() {
                continue;
            }
            placed_tcp[gi] = true;
            if g.address != "0.0.0.0" {
                g.reject(
                    &inp.tcp,
                    "spec.address",
                    &format!(
                        "port {} is already bound on 0.0.0.0 by Listener {}",
                        l.port,
                        l.meta.id()
                    ),
                    errs,
                );
                continue;
            }
            if l.http && g.host.is_none() {
                g.reject(
                    &inp.tcp,
                    "spec.host",
                    &format!(
                        "a TCPMapping without host on HTTP Listener {} would take all its traffic",
                        l.meta.id()
                    ),
                    errs,
                );
                continue;
            }
            let Some(tls) = tcp_termination(g, &inp.tcp, &inp.hosts, store, errs) else {
                continue;
            };
            tcp_snis.extend(g.host.clone());
            chains.push(g.chain(&inp.tcp, l.stats_prefix.clone(), tls));
        }
        if l.http {
            let (http, tables) = http_chains(l, &inp, &groups, &tcp_snis, &mut routed, errs);
            chains.extend(http);
            ir.route_tables.extend(tables);
        }
        if chains.is_empty() {
            errs.push(l.meta.error(
                "",
                "no Host or TCPMapping is bound to this Listener; left out",
            ));
            continue;
        }
        ir.listeners.push(listener(
            &l.name,
            "0.0.0.0",
            l.port,
            l.proxy,
            chains,
            inp.settings,
        ));
    }
    synthesized_tcp(&mut ir, &tcp_groups, &placed_tcp, &inp, store, errs);
    report_unattached(plans, &dropped, &routed, errs);
    let plans = std::mem::take(&mut inp.mappings);
    let tcp = std::mem::take(&mut inp.tcp);
    ir.clusters = used_clusters(&ir, plans, tcp);
    register_secrets(&ir, store);
    ir.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    ir.route_tables.sort_by(|a, b| a.name.cmp(&b.name));
    ir
}

/// The HTTP chains of a Listener: one TLS chain per SNI of its TLS Hosts (specific SNIs before
/// the `*` catch-all), then the cleartext chain. The cleartext chain's route table
/// (`<listener>/http`) holds every bound Host; each TLS chain's table
/// (`<listener>/https/<sni>`) holds only the Hosts of that SNI, so a request cannot pick
/// another Host's routes with a `Host` header that disagrees with its SNI
/// (docs/compatibility.md, "SNI and Host"). Names come from identity, never position.
/// Returns the chains and their route tables (none when no Host is bound).
fn http_chains(
    l: &ListenerPlan,
    inp: &Inputs<'_>,
    groups: &[group::Group],
    tcp_snis: &BTreeSet<String>,
    routed: &mut [bool],
    errs: &mut Errors,
) -> (Vec<FilterChain>, Vec<RouteTable>) {
    struct TlsChain {
        identity: String,
        chain: FilterChain,
        vhosts: Vec<VirtualHost>,
    }
    let plans = &inp.mappings;
    let table_name = format!("{}/http", l.name);
    let mut vhosts = Vec::new();
    let mut tls_chains: BTreeMap<String, TlsChain> = BTreeMap::new();
    let hcm = hcm(l, &table_name, inp.settings);
    for h in inp.hosts.iter().filter(|h| l.binds(h)) {
        if l.security == Security::Insecure && h.insecure == InsecureAction::Reject {
            continue;
        }
        let vhost = VirtualHost {
            name: format!("{}-{}", l.name, h.hostname),
            domains: vec![h.hostname.clone()],
            routes: vhost_routes(h, l.security, plans, groups, routed),
        };
        vhosts.push(vhost);
        let (Some(t), true) = (&h.tls, l.tls) else {
            continue;
        };
        if tcp_snis.contains(&h.sni) {
            errs.push(h.meta.error("spec.hostname", format!("SNI {} on Listener {} is taken by a TCPMapping; Host left out of its TLS chain", h.sni, l.name)));
            continue;
        }
        let vhost = vhosts.last().cloned();
        match tls_chains.get_mut(&h.sni) {
            Some(c) if c.identity == t.identity => c.vhosts.extend(vhost),
            Some(c) => errs.push(h.meta.error(
                "spec.tlsContext",
                format!(
                    "SNI {} on Listener {} already uses TLS settings {}; Host left out of its TLS chain",
                    h.sni, l.name, c.identity
                ),
            )),
            None => {
                let mut tls_hcm = hcm.clone();
                tls_hcm.route_table = format!("{}/https/{}", l.name, h.sni);
                let chain = FilterChain {
                    name: format!("httpshost-{}", h.meta.name),
                    server_names: if h.sni == "*" { vec![] } else { vec![h.sni.clone()] },
                    match_tls: true,
                    tls: Some(t.tls.clone()),
                    action: ChainAction::Http(tls_hcm),
                };
                tls_chains.insert(
                    h.sni.clone(),
                    TlsChain {
                        identity: t.identity.clone(),
                        chain,
                        vhosts: vhost.into_iter().collect(),
                    },
                );
            }
        }
    }
    let (mut chains, mut tables) = (Vec::new(), Vec::new());
    if vhosts.is_empty() {
        return (chains, tables);
    }
    // Specific SNIs before the `*` catch-all, each in SNI order.
    let mut tls_chains: Vec<TlsChain> = tls_chains.into_values().collect();
    tls_chains.sort_by_key(|c| c.chain.server_names.is_empty());
    for c in tls_chains {
        if let ChainAction::Http(h) = &c.chain.action {
            tables.push(RouteTable {
                name: h.route_table.clone(),
                virtual_hosts: c.vhosts,
            });
        }
        chains.push(c.chain);
    }
    chains.push(FilterChain {
        name: "httphost-shared".into(),
        server_names: vec![],
        match_tls: false,
        tls: None,
        action: ChainAction::Http(hcm),
    });
    tables.push(RouteTable {
        name: table_name,
        virtual_hosts: vhosts,
    });
    (chains, tables)
}

fn hcm(l: &ListenerPlan, table: &str, s: &Settings) -> HttpManager {
    let mut h = HttpManager::new(l.stats_prefix.clone(), table);
    h.use_remote_address = s.use_remote_address;
    h.xff_num_trusted_hops = l.l7_depth;
    h.server_name = s.server_name.clone();
    h.idle_timeout_ms = s.listener_idle_timeout_ms;
    h.max_request_headers_kb = s.max_request_headers_kb;
    h.http2_max_concurrent_streams = l.http2_max_concurrent_streams;
    h.merge_slashes = s.merge_slashes;
    h.strip_matching_host_port = s.strip_matching_host_port;
    h.reject_escaped_slashes = s.reject_escaped_slashes;
    h.accept_http_10 = s.enable_http10;
    h.preserve_external_request_id = s.preserve_external_request_id;
    h.suppress_envoy_headers = s.suppress_envoy_headers;
    h.cors = true;
    h.access_log = s.access_log.clone();
    h.ip_rules = s.http.ip_rules.clone();
    h.allow_chunked_length = s.http.allow_chunked_length;
    h.headers_with_underscores = s.http.headers_with_underscores;
    h.forward_client_cert = s.http.forward_client_cert;
    h.set_current_client_cert = s.http.set_current_client_cert;
    h.header_key_format = s.http.header_key_format;
    h
}

fn listener(
    name: &str,
    address: &str,
    port: u16,
    proxy: bool,
    filter_chains: Vec<FilterChain>,
    s: &Settings,
) -> Listener {
    Listener {
        name: name.to_string(),
        address: address.to_string(),
        port,
        stat_prefix: name.replace('.', "_"),
        proxy_protocol: proxy,
        per_connection_buffer_limit_bytes: s.buffer_limit_bytes,
        filter_chains,
    }
}

/// TLS for a TCPMapping group: none without `host`; with `host`, the first TLS Host (hostname
/// order) with a compatible glob, else a TLSContext listing `host`; neither disables the group
/// (an error on each member, and `None`).
fn tcp_termination(
    g: &TcpGroup,
    plans: &[TcpPlan],
    hosts: &[HostPlan],
    store: &Store,
    errs: &mut Errors,
) -> Option<Option<crate::ir::DownstreamTls>> {
    let Some(host) = g.host.as_ref() else {
        // No SNI: plain TCP, the chain takes every connection on the port.
        return Some(None);
    };
    if let Some(t) = hosts
        .iter()
        .filter(|h| globs_compatible(&h.hostname, host))
        .find_map(|h| h.tls.as_ref())
    {
        return Some(Some(t.tls.clone()));
    }
    if let Some(ctx) = store
        .contexts()
        .find(|c| c.cert.is_some() && c.hosts().iter().any(|x| x == host))
        && let Some(cert) = &ctx.cert
    {
        return Some(Some(Store::downstream(ctx, cert)));
    }
    g.reject(
        plans,
        "spec.host",
        &format!("no TLS Host or TLSContext (hosts) covers {host}: cannot terminate TLS"),
        errs,
    );
    None
}

/// Listeners synthesized for TCPMappings on ports no Listener has (`listener-<addr>-<port>`).
fn synthesized_tcp(
    ir: &mut Ir,
    groups: &[TcpGroup],
    placed: &[bool],
    inp: &Inputs<'_>,
    store: &Store,
    errs: &mut Errors,
) {
    let mut by_bind: BTreeMap<(u16, String), Vec<FilterChain>> = BTreeMap::new();
    let mut port_addr: BTreeMap<u16, String> = BTreeMap::new();
    for (gi, g) in groups.iter().enumerate() {
        if placed[gi] || g.members.is_empty() {
            continue;
        }
        if let Some(a) = port_addr.get(&g.port)
            && *a != g.address
        {
            g.reject(
                &inp.tcp,
                "spec.address",
                &format!("port {} is already bound on {a}", g.port),
                errs,
            );
            continue;
        }
        let Some(tls) = tcp_termination(g, &inp.tcp, &inp.hosts, store, errs) else {
            continue;
        };
        port_addr.insert(g.port, g.address.clone());
        let prefix = if g.host.is_some() {
            format!("ingress_tls_{}", g.port)
        } else {
            format!("ingress_tcp_{}", g.port)
        };
        by_bind
            .entry((g.port, g.address.clone()))
            .or_default()
            .push(g.chain(&inp.tcp, prefix, tls));
    }
    for ((port, address), mut chains) in by_bind {
        chains.sort_by_key(|c| c.server_names.is_empty());
        let name = format!("listener-{address}-{port}");
        ir.listeners
            .push(listener(&name, &address, port, false, chains, inp.settings));
    }
}

/// A valid Mapping that no vhost uses is reported and gets no cluster
/// (docs/design.md#unattached-mappings).
fn report_unattached(plans: &[MappingPlan], dropped: &[bool], routed: &[bool], errs: &mut Errors) {
    for (i, p) in plans.iter().enumerate() {
        if !p.builtin && !dropped[i] && !routed[i] {
            errs.push(p.meta.warning(
                "spec.hostname",
                "not attached to any Host on any Listener: no route (set hostname, or labels a Host selects)",
            ));
        }
    }
}

/// Only the clusters that routes, mirrors and tcp_proxy chains use, sorted by name (the first
/// one of a name wins). The plans are consumed: their clusters move into the IR.
fn used_clusters(ir: &Ir, plans: Vec<MappingPlan>, tcp: Vec<TcpPlan>) -> Vec<Cluster> {
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for t in &ir.route_tables {
        for r in t.virtual_hosts.iter().flat_map(|v| &v.routes) {
            if let RouteAction::Forward(f) = &r.action {
                used.extend(f.clusters.iter().map(|c| c.name.as_str()));
                used.extend(f.mirrors.iter().map(|m| m.cluster.as_str()));
            }
        }
    }
    for l in &ir.listeners {
        for c in &l.filter_chains {
            if let ChainAction::Tcp(t) = &c.action {
                used.extend(t.clusters.iter().map(|c| c.name.as_str()));
            }
        }
    }
    let all = plans
        .into_iter()
        .filter_map(|p| match p.action.target {
            Target::Cluster(c) => Some(*c),
            Target::Redirect(_) | Target::Failed { .. } => None,
        })
        .chain(tcp.into_iter().map(|t| t.cluster));
    let mut out: Vec<Cluster> = all.filter(|c| used.contains(c.name.as_str())).collect();
    // Stable: of several clusters with one name, the first stays.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|later, first| later.name == first.name);
    out
}

fn register_secrets(ir: &Ir, store: &mut Store) {
    for l in &ir.listeners {
        for t in l.filter_chains.iter().filter_map(|c| c.tls.as_ref()) {
            store.register(&t.certificate);
            if let Some(v) = &t.validation {
                store.register(v);
            }
        }
    }
    for t in ir.clusters.iter().filter_map(|c| c.tls.as_ref()) {
        for name in t.certificate.iter().chain(&t.validation) {
            store.register(name);
        }
    }
}
