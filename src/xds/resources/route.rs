//! RDS: route configurations, virtual hosts and ordered routes, in Envoy 1.40's modern forms
//! (docs/design.md#envoy-resource-shapes):
//! `string_match` header matchers, `append_action`, CORS as the CORS
//! filter's per-route config, regexes without `max_program_size`.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, route, route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};

use envoy_types::pb::google::protobuf::Any;
use prost::encoding::WireType;
use prost::{Message, Name};

use super::listener::CORS;
use super::{Piece, Resource, boolv, duration_ms, pack, services, u32v};
use crate::ir::{self, Ir};

/// The RDS resource for one IR route table; its name is the table's stable name.
pub fn route_configuration(t: &ir::RouteTable) -> RouteConfiguration {
    RouteConfiguration {
        name: t.name.clone(),
        virtual_hosts: t.virtual_hosts.iter().map(virtual_host).collect(),
        ..Default::default()
    }
}

/// [`route_configuration`], packed, with the same bytes, but encoded one route at a time: a
/// table of thousands of routes is never all in memory as envoy-types messages (a `Route` is
/// several kilobytes, mostly empty options), only as its encoding.
#[cfg(test)]
pub fn route_configuration_any(t: &ir::RouteTable) -> Any {
    route_configuration_reusing(t, &route_hashes(t), None).0
}

/// `Ir::hash_of` every route of `t`, in order (virtual host after virtual host).
pub(super) fn route_hashes(t: &ir::RouteTable) -> Vec<u64> {
    t.virtual_hosts
        .iter()
        .flat_map(|vh| &vh.routes)
        .map(Ir::hash_of)
        .collect()
}

/// The content hash of `t` given its [`route_hashes`]: it covers every field of the table and
/// its virtual hosts, and each route through its hash, so it changes whenever `t` does.
pub(super) fn table_hash(t: &ir::RouteTable, hashes: &[u64]) -> u64 {
    let shells: Vec<(&str, &[String], usize)> = t
        .virtual_hosts
        .iter()
        .map(|vh| (vh.name.as_str(), vh.domains.as_slice(), vh.routes.len()))
        .collect();
    Ir::hash_of(&(&t.name, shells, hashes))
}

/// [`route_configuration`], packed and encoded one route at a time (the same bytes, up to the
/// order protobuf map entries are encoded in: a `Route` is several kilobytes as an envoy-types
/// message, mostly empty options, so a large table is only ever held encoded), taking the encoding of every route whose hash is among `old`'s pieces from
/// `old`'s body instead of encoding it again, and the pieces of the result: one per route, its
/// hash (`hashes`, from [`route_hashes`]) and where it sits in the body. A route whose hash
/// `old` lacks, or whose recorded bytes are out of `old`'s body, is encoded.
pub(super) fn route_configuration_reusing(
    t: &ir::RouteTable,
    hashes: &[u64],
    old: Option<&Resource>,
) -> (Any, Option<Vec<Piece>>) {
    let mut reuse = Reuse::new(old);
    let config = RouteConfiguration {
        name: t.name.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let config_at = first_field_after(&config, CONFIG_VIRTUAL_HOSTS);
    let mut out = Vec::with_capacity(old.map_or(0, |o| o.body.value.len()) + 64);
    out.extend_from_slice(&config[..config_at]);
    let mut pieces = Vec::with_capacity(hashes.len());
    let mut hashes = hashes.iter().copied();
    // Each virtual host is built on its own (its length precedes it), then appended.
    let mut body = Vec::new();
    let mut local = Vec::new();
    let mut encoder = RouteEncoder::default();
    for vh in &t.virtual_hosts {
        let shell = VirtualHost {
            name: vh.name.clone(),
            domains: vh.domains.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let shell_at = first_field_after(&shell, VHOST_ROUTES);
        body.clear();
        local.clear();
        body.extend_from_slice(&shell[..shell_at]);
        for r in &vh.routes {
            let hash = hashes.next().unwrap_or_else(|| Ir::hash_of(r));
            prost::encoding::encode_key(VHOST_ROUTES, WireType::LengthDelimited, &mut body);
            let start = match reuse.find(hash) {
                Some(bytes) => {
                    prost::encoding::encode_varint(bytes.len() as u64, &mut body);
                    let start = body.len();
                    body.extend_from_slice(bytes);
                    start
                }
                None => encoder.route(r, &mut body),
            };
            local.push((hash, start, body.len()));
        }
        body.extend_from_slice(&shell[shell_at..]);
        prost::encoding::encode_key(CONFIG_VIRTUAL_HOSTS, WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        let base = out.len();
        out.extend_from_slice(&body);
        pieces.extend(local.iter().map(|&(hash, start, end)| Piece {
            hash,
            start: base + start,
            end: base + end,
        }));
    }
    out.extend_from_slice(&config[config_at..]);
    let any = Any {
        type_url: RouteConfiguration::type_url(),
        value: out,
    };
    (any, Some(pieces))
}

/// Field numbers of `RouteConfiguration.virtual_hosts` and `VirtualHost.routes`.
const CONFIG_VIRTUAL_HOSTS: u32 = 2;
const VHOST_ROUTES: u32 = 3;
/// Field numbers of `Route.route` (the action) and `RouteAction.rate_limits`.
const ROUTE_ROUTE: u32 = 2;
const ACTION_RATE_LIMITS: u32 = 13;

/// Encodes routes one at a time, the rate limits of a forwarding route written straight as
/// bytes ([`services::encode_rate_limits`]) and spliced into the encoding of the rest, and
/// reused for the next route that shares them (the routes of one Mapping share one
/// `ir::Route.rate_limits`). Its buffers are reused from route to route.
#[derive(Default)]
struct RouteEncoder {
    /// The address of the `rate_limits` whose encoding `limits` holds (0: none); compared only
    /// while the IR that holds them is borrowed, so an address cannot be reused meanwhile.
    limits_of: usize,
    limits: Vec<u8>,
    head: Vec<u8>,
    action: Vec<u8>,
}

impl RouteEncoder {
    /// Appends the length of `r`'s encoding and the encoding (the bytes prost writes for
    /// [`route`]) to `out`; returns where the encoding starts.
    fn route(&mut self, r: &ir::Route, out: &mut Vec<u8>) -> usize {
        use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len};
        let mut message = route_without_rate_limits(r);
        let ra = match message.action.take() {
            Some(route::Action::Route(ra)) if !r.rate_limits.is_empty() => ra,
            action => {
                message.action = action;
                encode_varint(message.encoded_len() as u64, out);
                let start = out.len();
                message.encode_raw(out);
                return start;
            }
        };
        let at = Arc::as_ptr(&r.rate_limits).cast::<ir::RateLimit>() as usize;
        if at != self.limits_of {
            self.limits.clear();
            services::encode_rate_limits(&r.rate_limits, &mut self.limits);
            self.limits_of = at;
        }
        self.head.clear();
        message.encode_raw(&mut self.head);
        self.action.clear();
        ra.encode_raw(&mut self.action);
        // prost writes fields in field-number order (a oneof at its lowest number): the action
        // (2) follows `match` (1), the only lower field of a Route; the rate limits (13) go
        // before the first field above 13 of the RouteAction (the oneof members `forward`
        // writes all have numbers on the same side of 13 as their oneof's lowest).
        let head_at = first_field_after(&self.head, ROUTE_ROUTE);
        let action_at = first_field_after(&self.action, ACTION_RATE_LIMITS);
        let action_len = self.action.len() + self.limits.len();
        let len = self.head.len()
            + key_len(ROUTE_ROUTE)
            + encoded_len_varint(action_len as u64)
            + action_len;
        encode_varint(len as u64, out);
        let start = out.len();
        out.extend_from_slice(&self.head[..head_at]);
        encode_key(ROUTE_ROUTE, WireType::LengthDelimited, out);
        encode_varint(action_len as u64, out);
        out.extend_from_slice(&self.action[..action_at]);
        out.extend_from_slice(&self.limits);
        out.extend_from_slice(&self.action[action_at..]);
        out.extend_from_slice(&self.head[head_at..]);
        start
    }
}

/// The offset of the first field numbered above `number` in an encoding prost wrote (fields
/// in number order), or the end.
fn first_field_after(bytes: &[u8], number: u32) -> usize {
    let mut buf = bytes;
    while !buf.is_empty() {
        let at = bytes.len() - buf.len();
        let Ok((tag, wire)) = prost::encoding::decode_key(&mut buf) else {
            return bytes.len();
        };
        if tag > number {
            return at;
        }
        let skipped = match wire {
            WireType::Varint => prost::encoding::decode_varint(&mut buf).map(|_| 0),
            WireType::SixtyFourBit => Ok(8),
            WireType::ThirtyTwoBit => Ok(4),
            WireType::LengthDelimited => prost::encoding::decode_varint(&mut buf),
            WireType::StartGroup | WireType::EndGroup => return bytes.len(),
        };
        match skipped.ok().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if n <= buf.len() => buf = &buf[n..],
            _ => return bytes.len(),
        }
    }
    bytes.len()
}

/// Finds a route's encoding among a previous route configuration's pieces by hash. Routes
/// mostly keep their order from one snapshot to the next, so the next piece or the one after
/// it is tried first; any other is found through a map built on the first miss.
struct Reuse<'a> {
    body: &'a [u8],
    pieces: &'a [Piece],
    next: usize,
    by_hash: Option<HashMap<u64, usize>>,
}

impl<'a> Reuse<'a> {
    fn new(old: Option<&'a Resource>) -> Self {
        Reuse {
            body: old.map_or(&[], |o| o.body.value.as_slice()),
            pieces: old.map_or(&[], |o| &o.pieces),
            next: 0,
            by_hash: None,
        }
    }

    fn find(&mut self, hash: u64) -> Option<&'a [u8]> {
        if self.pieces.is_empty() {
            return None;
        }
        let at = (self.next..self.pieces.len().min(self.next + 2))
            .find(|&i| self.pieces[i].hash == hash)
            .or_else(|| {
                let pieces = self.pieces;
                let map = self.by_hash.get_or_insert_with(|| {
                    pieces
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (p.hash, i))
                        .collect()
                });
                map.get(&hash).copied()
            })?;
        self.next = at + 1;
        let piece = self.pieces[at];
        self.body.get(piece.start..piece.end)
    }
}

fn virtual_host(vh: &ir::VirtualHost) -> VirtualHost {
    VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.clone(),
        routes: vh.routes.iter().map(route).collect(),
        ..Default::default()
    }
}

fn route(r: &ir::Route) -> Route {
    let mut out = route_without_rate_limits(r);
    if !r.rate_limits.is_empty()
        && let Some(route::Action::Route(ra)) = &mut out.action
    {
        ra.rate_limits = services::rate_limits(&r.rate_limits);
    }
    out
}

/// [`route`] without the rate limits, which [`RouteEncoder`] writes as bytes.
fn route_without_rate_limits(r: &ir::Route) -> Route {
    let mut out = Route {
        name: r.name.clone().unwrap_or_default(),
        r#match: Some(route_match(&r.matcher)),
        action: Some(action(&r.action)),
        request_headers_to_add: r.request_headers_to_add.iter().map(header_value).collect(),
        request_headers_to_remove: r.request_headers_to_remove.clone(),
        response_headers_to_add: r.response_headers_to_add.iter().map(header_value).collect(),
        response_headers_to_remove: r.response_headers_to_remove.clone(),
        ..Default::default()
    };
    if let Some(cors) = &r.cors {
        out.typed_per_filter_config
            .insert(CORS.to_string(), pack(cors_policy(cors)));
    }
    // AuthService: the route's auth setting (its rate limits: [`route`], [`RouteEncoder`]).
    if let Some(auth) = services::route_auth(&r.auth) {
        out.typed_per_filter_config
            .insert(services::EXT_AUTHZ.to_string(), auth);
    }
    out
}

fn route_match(m: &ir::RouteMatch) -> RouteMatch {
    let path = match &m.path {
        ir::PathMatch::Prefix(p) => route_match::PathSpecifier::Prefix(p.clone()),
        ir::PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
        ir::PathMatch::Regex(re) => route_match::PathSpecifier::SafeRegex(regex(re)),
    };
    RouteMatch {
        path_specifier: Some(path),
        // Envoy's default is case sensitive; only the exception is written out.
        case_sensitive: (!m.case_sensitive).then(|| boolv(false)),
        headers: m.headers.iter().map(header_matcher).collect(),
        query_parameters: m.query_parameters.iter().map(query_matcher).collect(),
        runtime_fraction: m
            .runtime_fraction
            .as_ref()
            .map(|rf| percent(rf.percent, &rf.runtime_key)),
        ..Default::default()
    }
}

fn header_matcher(h: &ir::HeaderMatch) -> HeaderMatcher {
    let specifier = match string_matcher(&h.matcher) {
        Some(sm) => header_matcher::HeaderMatchSpecifier::StringMatch(sm),
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: h.name.clone(),
        invert_match: h.invert,
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

fn query_matcher(q: &ir::QueryMatch) -> QueryParameterMatcher {
    let specifier = match string_matcher(&q.matcher) {
        Some(sm) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm),
        None => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
    };
    QueryParameterMatcher {
        name: q.name.clone(),
        query_parameter_match_specifier: Some(specifier),
    }
}

/// A string matcher, or `None` for [`ir::StringMatch::Present`], which is not one.
fn string_matcher(m: &ir::StringMatch) -> Option<StringMatcher> {
    use string_matcher::MatchPattern;
    let pattern = match m {
        ir::StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        ir::StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        ir::StringMatch::Suffix(s) => MatchPattern::Suffix(s.clone()),
        ir::StringMatch::Regex(re) => MatchPattern::SafeRegex(regex(re)),
        ir::StringMatch::Present => return None,
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    })
}

/// RE2 with Envoy's default program-size limit (set by runtime, not per regex).
fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.to_string(),
        engine_type: None,
    }
}

fn regex_rewrite(r: &ir::RegexRewrite) -> RegexMatchAndSubstitute {
    RegexMatchAndSubstitute {
        pattern: Some(regex(&r.pattern)),
        substitution: r.substitution.clone(),
    }
}

fn percent(numerator: u32, runtime_key: &str) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator,
            denominator: fractional_percent::DenominatorType::Hundred as i32,
        }),
        runtime_key: runtime_key.to_string(),
    }
}

fn action(a: &ir::RouteAction) -> route::Action {
    match a {
        ir::RouteAction::Forward(f) => route::Action::Route(forward(f)),
        ir::RouteAction::Redirect(r) => route::Action::Redirect(redirect(r)),
        ir::RouteAction::DirectResponse { status, body } => {
            route::Action::DirectResponse(DirectResponseAction {
                status: *status,
                body: body.as_ref().map(|b| DataSource {
                    specifier: Some(data_source::Specifier::InlineString(b.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
    }
}

fn forward(f: &ir::Forward) -> RouteAction {
    let cluster_specifier = match f.clusters.as_slice() {
        [one] => route_action::ClusterSpecifier::Cluster(one.name.clone()),
        many => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|wc| weighted_cluster::ClusterWeight {
                    name: wc.name.clone(),
                    weight: Some(u32v(wc.weight)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    RouteAction {
        cluster_specifier: Some(cluster_specifier),
        prefix_rewrite: f.prefix_rewrite.clone().unwrap_or_default(),
        regex_rewrite: f.regex_rewrite.as_deref().map(regex_rewrite),
        host_rewrite_specifier: f.host_rewrite.as_ref().map(|h| match h {
            ir::HostRewrite::Literal(host) => {
                route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone())
            }
            ir::HostRewrite::Auto => {
                route_action::HostRewriteSpecifier::AutoHostRewrite(boolv(true))
            }
        }),
        // `Some(0)` becomes an explicit 0 s, which disables Envoy's 15 s default.
        timeout: f.timeout_ms.map(duration_ms),
        idle_timeout: f.idle_timeout_ms.map(duration_ms),
        retry_policy: f.retry.as_deref().map(retry_policy),
        upgrade_configs: f
            .upgrades
            .iter()
            .map(|u| route_action::UpgradeConfig {
                upgrade_type: u.clone(),
                enabled: Some(boolv(true)),
                ..Default::default()
            })
            .collect(),
        request_mirror_policies: f
            .mirrors
            .iter()
            .map(|m| route_action::RequestMirrorPolicy {
                cluster: m.cluster.clone(),
                runtime_fraction: Some(percent(m.percent, "")),
                ..Default::default()
            })
            .collect(),
        hash_policy: f.hash_policy.iter().map(hash_policy).collect(),
        ..Default::default()
    }
}

fn retry_policy(r: &ir::RetryPolicy) -> RetryPolicy {
    RetryPolicy {
        retry_on: r.retry_on.join(","),
        num_retries: r.num_retries.map(u32v),
        per_try_timeout: r.per_try_timeout_ms.map(duration_ms),
        retriable_status_codes: r.retriable_status_codes.clone(),
        ..Default::default()
    }
}

fn hash_policy(h: &ir::HashPolicy) -> route_action::HashPolicy {
    use route_action::hash_policy::{self, PolicySpecifier};
    let specifier = match h {
        ir::HashPolicy::Header(name) => PolicySpecifier::Header(hash_policy::Header {
            header_name: name.clone(),
            regex_rewrite: None,
        }),
        ir::HashPolicy::Cookie { name, path, ttl_ms } => {
            PolicySpecifier::Cookie(hash_policy::Cookie {
                name: name.clone(),
                path: path.clone().unwrap_or_default(),
                ttl: ttl_ms.map(duration_ms),
                ..Default::default()
            })
        }
        ir::HashPolicy::SourceIp => {
            PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
                source_ip: true,
            })
        }
    };
    route_action::HashPolicy {
        terminal: false,
        policy_specifier: Some(specifier),
    }
}

fn redirect(r: &ir::Redirect) -> RedirectAction {
    use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    let response_code = match r.code {
        ir::RedirectCode::MovedPermanently => RedirectResponseCode::MovedPermanently,
        ir::RedirectCode::Found => RedirectResponseCode::Found,
        ir::RedirectCode::SeeOther => RedirectResponseCode::SeeOther,
        ir::RedirectCode::TemporaryRedirect => RedirectResponseCode::TemporaryRedirect,
        ir::RedirectCode::PermanentRedirect => RedirectResponseCode::PermanentRedirect,
    };
    RedirectAction {
        host_redirect: r.host.clone().unwrap_or_default(),
        port_redirect: r.port.map(u32::from).unwrap_or_default(),
        response_code: response_code as i32,
        strip_query: r.strip_query,
        scheme_rewrite_specifier: r
            .https
            .then_some(SchemeRewriteSpecifier::HttpsRedirect(true)),
        path_rewrite_specifier: r.path.as_ref().map(|p| match p {
            ir::RedirectPath::Path(path) => PathRewriteSpecifier::PathRedirect(path.clone()),
            ir::RedirectPath::Prefix(prefix) => PathRewriteSpecifier::PrefixRewrite(prefix.clone()),
            ir::RedirectPath::Regex(re) => PathRewriteSpecifier::RegexRewrite(regex_rewrite(re)),
        }),
    }
}

fn header_value(h: &ir::HeaderValue) -> HeaderValueOption {
    let action = if h.append {
        HeaderAppendAction::AppendIfExistsOrAdd
    } else {
        HeaderAppendAction::OverwriteIfExistsOrAdd
    };
    HeaderValueOption {
        header: Some(HeaderValue {
            key: h.name.clone(),
            value: h.value.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

fn cors_policy(c: &ir::Cors) -> CorsPolicy {
    let origin = |m: &ir::StringMatch| {
        // "Present" is not a string match; for an origin it means any origin, which Envoy's
        // CORS filter spells as an exact `*`.
        string_matcher(m).unwrap_or_else(|| StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact("*".into())),
            ..Default::default()
        })
    };
    CorsPolicy {
        allow_origin_string_match: c.origins.iter().map(origin).collect(),
        // Emissary joins the lists with ", "; clients see these verbatim.
        allow_methods: c.methods.join(", "),
        allow_headers: c.headers.join(", "),
        expose_headers: c.exposed_headers.join(", "),
        max_age: c.max_age.clone().unwrap_or_default(),
        allow_credentials: c.credentials.then(|| boolv(true)),
        ..Default::default()
    }
}
