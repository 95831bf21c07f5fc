//! The semantic intermediate representation: what Envoy should do, in plain data.
//!
//! Sources and the translation produce an [`Ir`]; `xds` turns it into Envoy resources. This
//! module depends on nothing but serde: no kube, prost or tonic types, so an `Ir` can be built
//! in tests, dumped as JSON on the admin endpoint and diffed on its own.
//!
//! Every type derives `Hash` and uses only ordered containers, so hashing an IR value gives a
//! deterministic version (envoy-types encodes protobuf maps from a `HashMap`, so hashing the
//! encoded bytes would not be stable).

mod cluster;
mod listener;
mod observability;
mod route;
mod secret;
mod services;
mod short_string;

pub use cluster::{
    CircuitBreaker, Cluster, Discovery, DnsFamily, Endpoint, Endpoints, HashPolicy, LbPolicy,
    Priority, TcpKeepalive, UpstreamTls,
};
pub use listener::{
    AccessLog, ChainAction, ClientCertDetails, DownstreamTls, FilterChain, ForwardClientCert,
    HeaderKeyFormat, HeadersWithUnderscores, HttpManager, IpAction, IpPrincipal, IpRules, IpSource,
    Listener, TcpProxy, TlsVersion,
};
// LogService / TracingService.
pub use observability::{CustomTag, GrpcAccessLog, GrpcLogKind, TagValue, TraceProvider, Tracing};
pub use route::{
    Cors, Forward, HeaderMatch, HeaderValue, HostRewrite, Mirror, PathMatch, QueryMatch, Redirect,
    RedirectCode, RedirectPath, RegexRewrite, RetryPolicy, Route, RouteAction, RouteMatch,
    RouteTable, RuntimeFraction, StringMatch, VirtualHost, WeightedCluster,
};
pub use secret::{Secret, SecretKind, Sensitive};
pub use services::{
    AuthBody, AuthFilter, AuthProtocol, ExtAuthz, HttpAuth, RateLimit, RateLimitAction,
    RateLimitFilter, RouteAuth,
};
pub use short_string::ShortString;

use serde::Serialize;

/// One complete, self-consistent configuration. Publishing an `Ir` replaces the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Ir {
    pub listeners: Vec<Listener>,
    /// Route configurations served by RDS, referenced by name from HTTP filter chains.
    pub route_tables: Vec<RouteTable>,
    pub clusters: Vec<Cluster>,
    /// Endpoints of EDS clusters, keyed by the cluster's EDS service name.
    pub endpoints: Vec<Endpoints>,
    /// TLS material served by SDS, referenced by name from listeners and clusters.
    pub secrets: Vec<Secret>,
}

/// A reference in the IR that points at nothing: publishing such an IR would black-hole traffic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dangling {
    #[error(
        "filter chain {chain} of listener {listener} uses route table {table}, which does not exist"
    )]
    RouteTable {
        listener: String,
        chain: String,
        table: String,
    },
    #[error("{user} uses cluster {cluster}, which does not exist")]
    Cluster { user: String, cluster: String },
    #[error("{user} uses secret {secret}, which does not exist")]
    Secret { user: String, secret: String },
    #[error("{kind} {name} is defined twice")]
    Duplicate { kind: &'static str, name: String },
}

impl Ir {
    /// Checks that names are unique and that every reference resolves. The translation must
    /// only publish an `Ir` that passes; the runtime checks again before serving one.
    pub fn validate(&self) -> Result<(), Vec<Dangling>> {
        // Membership only (errors follow the IR's order): a hash set, not a sorted one. std's
        // randomly keyed hasher, so no choice of names can make the set slow.
        type Names<'a> = std::collections::HashSet<&'a str>;
        let mut errors = Vec::new();
        fn names<'a>(
            errors: &mut Vec<Dangling>,
            kind: &'static str,
            it: impl ExactSizeIterator<Item = &'a str>,
        ) -> Names<'a> {
            let mut seen = Names::with_capacity_and_hasher(it.len(), Default::default());
            for name in it {
                if !seen.insert(name) {
                    errors.push(Dangling::Duplicate {
                        kind,
                        name: name.to_string(),
                    });
                }
            }
            seen
        }
        let e = &mut errors;
        let clusters = names(e, "cluster", self.clusters.iter().map(|c| c.name.as_str()));
        let tables = names(
            e,
            "route table",
            self.route_tables.iter().map(|t| t.name.as_str()),
        );
        let secrets = names(e, "secret", self.secrets.iter().map(|s| s.name.as_str()));
        names(
            e,
            "listener",
            self.listeners.iter().map(|l| l.name.as_str()),
        );
        let endpoints = self.endpoints.iter().map(|x| x.service_name.as_str());
        names(e, "endpoints", endpoints);

        // `user` is only formatted for an error: this runs for every route.
        let need_cluster =
            |errors: &mut Vec<Dangling>, user: &dyn Fn() -> String, cluster: &str| {
                if !clusters.contains(cluster) {
                    errors.push(Dangling::Cluster {
                        user: user(),
                        cluster: cluster.to_string(),
                    });
                }
            };
        let need_secret = |errors: &mut Vec<Dangling>, user: &dyn Fn() -> String, secret: &str| {
            if !secrets.contains(secret) {
                errors.push(Dangling::Secret {
                    user: user(),
                    secret: secret.to_string(),
                });
            }
        };
        for l in &self.listeners {
            for fc in &l.filter_chains {
                let user = || format!("filter chain {} of listener {}", fc.name, l.name);
                if let Some(tls) = &fc.tls {
                    need_secret(&mut errors, &user, &tls.certificate);
                    if let Some(ca) = &tls.validation {
                        need_secret(&mut errors, &user, ca);
                    }
                }
                match &fc.action {
                    ChainAction::Http(h) => {
                        // AuthService/RateLimitService clusters.
                        if let Some(ExtAuthz::Service(a)) = &h.ext_authz {
                            need_cluster(&mut errors, &user, &a.cluster);
                        }
                        if let Some(r) = &h.rate_limit {
                            need_cluster(&mut errors, &user, &r.cluster);
                        }
                        if !tables.contains(h.route_table.as_str()) {
                            errors.push(Dangling::RouteTable {
                                listener: l.name.clone(),
                                chain: fc.name.clone(),
                                table: h.route_table.clone(),
                            });
                        }
                    }
                    ChainAction::Tcp(t) => {
                        for wc in &t.clusters {
                            need_cluster(&mut errors, &user, &wc.name);
                        }
                    }
                }
            }
        }
        for t in &self.route_tables {
            for vh in &t.virtual_hosts {
                for (i, r) in vh.routes.iter().enumerate() {
                    let user = || format!("route {i} of virtual host {} in {}", vh.name, t.name);
                    if let RouteAction::Forward(f) = &r.action {
                        for wc in &f.clusters {
                            need_cluster(&mut errors, &user, &wc.name);
                        }
                        for m in &f.mirrors {
                            need_cluster(&mut errors, &user, &m.cluster);
                        }
                    }
                }
            }
        }
        for c in &self.clusters {
            if let Some(tls) = &c.tls {
                let user = || format!("cluster {}", c.name);
                if let Some(cert) = &tls.certificate {
                    need_secret(&mut errors, &user, cert);
                }
                if let Some(ca) = &tls.validation {
                    need_secret(&mut errors, &user, ca);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// A stable content hash of any IR value, used to derive xDS versions (docs/design.md#versions).
    pub fn hash_of<T: std::hash::Hash + ?Sized>(value: &T) -> u64 {
        use std::hash::Hasher;
        // SipHash with fixed keys (`DefaultHasher::new()`): equal values give equal hashes
        // within one build, and no configuration can be written to make two different values
        // collide (a collision would keep Envoy on stale content); versions are additionally
        // prefixed by a boot id in `xds`.
        let mut h = Gathered::new();
        value.hash(&mut h);
        h.finish()
    }
}

/// SipHash (`DefaultHasher::new()`) over the same bytes, handed to it in blocks: a derived
/// `Hash` writes a route or a cluster as a few hundred small pieces (every discriminant,
/// length and integer), and SipHash's per-write bookkeeping cost more than its rounds. The
/// value is the one `DefaultHasher` gives when written piece by piece, since SipHash hashes the
/// concatenation of what it is given (`ir::tests::gathered_is_siphash_over_the_same_bytes`).
struct Gathered {
    inner: std::collections::hash_map::DefaultHasher,
    len: usize,
    buf: [u8; Gathered::BLOCK],
}

impl Gathered {
    const BLOCK: usize = 512;

    fn new() -> Self {
        Gathered {
            inner: std::collections::hash_map::DefaultHasher::new(),
            len: 0,
            buf: [0; Gathered::BLOCK],
        }
    }
}

impl std::hash::Hasher for Gathered {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > Gathered::BLOCK {
            self.inner.write(&self.buf[..self.len]);
            self.len = 0;
            if bytes.len() > Gathered::BLOCK {
                self.inner.write(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn finish(&self) -> u64 {
        let mut inner = self.inner.clone();
        inner.write(&self.buf[..self.len]);
        inner.finish()
    }
}

#[cfg(test)]
mod tests;
