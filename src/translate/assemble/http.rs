//! Assembly step: the HTTP filter chains of a Listener and their route tables. Bound Hosts
//! become vhosts of the Listener's cleartext table (`<listener>/http`); TLS Hosts become SNI
//! chains, each with a table of only its Hosts (`<listener>/https/<sni>`; names from
//! identity, never position).

use std::collections::{BTreeMap, BTreeSet};

use crate::api::host::InsecureAction;
use crate::ir::{ChainAction, FilterChain, HttpManager, RouteTable, VirtualHost};

use super::Inputs;
use super::route::vhost_routes;
use crate::translate::Errors;
use crate::translate::listener::{ListenerPlan, Security};
use crate::translate::module::Settings;

/// The HTTP chains of a Listener: one TLS chain per SNI of its TLS Hosts (specific SNIs before
/// the `*` catch-all), then the cleartext chain. The cleartext chain's route table
/// (`<listener>/http`) holds every bound Host; each TLS chain's table
/// (`<listener>/https/<sni>`) holds only the Hosts of that SNI, so a request cannot pick
/// another Host's routes with a `Host` header that disagrees with its SNI
/// (docs/compatibility.md, "SNI and Host"). Names come from identity, never position.
/// Returns the chains and their route tables (none when no Host is bound).
pub(super) fn chains(
    l: &ListenerPlan,
    inp: &Inputs<'_>,
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
    let hcm = connection_manager(l, &table_name, inp.settings);
    for h in inp.hosts.iter().filter(|h| l.binds(h)) {
        if l.security == Security::Insecure && h.insecure == InsecureAction::Reject {
            continue;
        }
        let vhost = VirtualHost {
            name: format!("{}-{}", l.name, h.hostname),
            domains: vec![h.hostname.clone()],
            routes: vhost_routes(
                h,
                l.security,
                &inp.services.plan,
                plans,
                &inp.groups.http,
                routed,
            ),
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

/// The HTTP connection manager of every HTTP chain of a Listener (the TLS chains' copies only
/// change the route table): the one place where connection-manager-wide settings — from the
/// Module, or HTTP filters every chain gets — are applied.
fn connection_manager(l: &ListenerPlan, table: &str, s: &Settings) -> HttpManager {
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
