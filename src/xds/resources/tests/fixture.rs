//! A rich IR that exercises every feature the xds layer translates.

use crate::ir::{self, *};

pub(in crate::xds::resources) const CERT: &str = include_str!("../testdata/server.pem");
pub(in crate::xds::resources) const KEY: &str = include_str!("../testdata/server.key");
const CA: &str = include_str!("../testdata/ca.pem");
const CRL: &str = include_str!("../testdata/ca.crl.pem");

/// An IR exercising every feature the xds layer translates. The PEM files in `testdata/` are
/// throwaway test-only material made with openssl (a CA, a CRL, and `example.com` signed by it).
pub(crate) fn rich_ir() -> Ir {
    Ir {
        listeners: vec![edge_listener(), tcp_listener()],
        route_tables: vec![main_table(), tls_table()],
        clusters: clusters(),
        endpoints: vec![Endpoints {
            service_name: "ns/svc".into(),
            endpoints: vec![
                Endpoint {
                    weight: Some(3),
                    ..Endpoint::new("10.0.0.1", 80)
                },
                Endpoint::new("10.0.0.2", 80),
            ],
        }],
        secrets: vec![
            Secret {
                name: "server-cert".into(),
                kind: SecretKind::TlsCertificate {
                    certificate_chain: CERT.into(),
                    private_key: Sensitive::new(KEY),
                },
            },
            Secret {
                name: "client-ca".into(),
                kind: SecretKind::Validation {
                    trusted_ca: CA.into(),
                    crl: Some(CRL.into()),
                },
            },
            Secret {
                name: "upstream-ca".into(),
                kind: SecretKind::Validation {
                    trusted_ca: CA.into(),
                    crl: None,
                },
            },
        ],
    }
}

fn full_hcm(table: &str) -> HttpManager {
    HttpManager {
        xff_num_trusted_hops: 1,
        server_name: Some("legate".into()),
        idle_timeout_ms: Some(300_000),
        max_request_headers_kb: Some(96),
        http2_max_concurrent_streams: Some(200),
        normalize_path: true,
        merge_slashes: true,
        strip_matching_host_port: true,
        reject_escaped_slashes: true,
        accept_http_10: true,
        preserve_external_request_id: true,
        suppress_envoy_headers: true,
        ip_rules: Some(IpRules {
            action: IpAction::Deny,
            principals: vec![
                IpPrincipal {
                    source: IpSource::Peer,
                    address: "192.0.2.0".into(),
                    prefix_len: 24,
                },
                IpPrincipal {
                    source: IpSource::Remote,
                    address: "2001:db8::".into(),
                    prefix_len: 32,
                },
            ],
        }),
        allow_chunked_length: true,
        headers_with_underscores: Some(HeadersWithUnderscores::DropHeader),
        forward_client_cert: Some(ForwardClientCert::SanitizeSet),
        set_current_client_cert: Some(ClientCertDetails {
            subject: true,
            cert: true,
            chain: true,
            dns: true,
            uri: true,
        }),
        header_key_format: Some(HeaderKeyFormat::ProperCaseWords),
        access_log: Some(AccessLog {
            path: "/dev/stdout".into(),
            text_format: None,
            json_format: vec![
                ("start".into(), "%START_TIME%".into()),
                ("status".into(), "%RESPONSE_CODE%".into()),
            ],
        }),
        ..HttpManager::new("ingress_https", table)
    }
}

fn edge_listener() -> ir::Listener {
    let tls = DownstreamTls {
        validation: Some("client-ca".into()),
        require_client_certificate: true,
        alpn_protocols: vec!["h2".into(), "http/1.1".into()],
        min_version: Some(TlsVersion::V1_2),
        max_version: Some(TlsVersion::V1_3),
        cipher_suites: vec!["ECDHE-ECDSA-AES128-GCM-SHA256".into()],
        ecdh_curves: vec!["X25519".into(), "P-256".into()],
        ..DownstreamTls::new("server-cert")
    };
    let plain = HttpManager {
        access_log: Some(AccessLog {
            path: "/dev/stdout".into(),
            text_format: Some("%REQ(:METHOD)% %RESPONSE_CODE%\n".into()),
            json_format: vec![],
        }),
        ip_rules: Some(IpRules {
            action: IpAction::Allow,
            principals: vec![IpPrincipal {
                source: IpSource::Peer,
                address: "127.0.0.1".into(),
                prefix_len: 32,
            }],
        }),
        ..HttpManager::new("ingress_http", "edge/plain")
    };
    ir::Listener {
        name: "edge".into(),
        address: "0.0.0.0".into(),
        port: 8443,
        stat_prefix: "edge".into(),
        proxy_protocol: true,
        per_connection_buffer_limit_bytes: Some(32768),
        filter_chains: vec![
            FilterChain {
                name: "https".into(),
                server_names: vec!["example.com".into(), "*.example.com".into()],
                match_tls: false,
                tls: Some(tls),
                action: ChainAction::Http(full_hcm("edge/https")),
            },
            FilterChain {
                name: "passthrough".into(),
                server_names: vec!["passthrough.example.net".into()],
                match_tls: true,
                tls: None,
                action: ChainAction::Tcp(TcpProxy {
                    stat_prefix: "passthrough".into(),
                    clusters: vec![
                        WeightedCluster {
                            name: "eds-svc".into(),
                            weight: 1,
                        },
                        WeightedCluster {
                            name: "web".into(),
                            weight: 3,
                        },
                    ],
                    idle_timeout_ms: None,
                    access_logs: Vec::new(),
                }),
            },
            FilterChain {
                name: "plain".into(),
                server_names: vec![],
                match_tls: false,
                tls: None,
                action: ChainAction::Http(plain),
            },
        ],
    }
}

fn tcp_listener() -> ir::Listener {
    ir::Listener {
        name: "tcp".into(),
        address: "127.0.0.1".into(),
        port: 9090,
        stat_prefix: "tcp".into(),
        proxy_protocol: false,
        per_connection_buffer_limit_bytes: None,
        filter_chains: vec![FilterChain {
            name: "tcp".into(),
            server_names: vec![],
            match_tls: false,
            tls: None,
            action: ChainAction::Tcp(TcpProxy {
                stat_prefix: "tcp".into(),
                clusters: vec![WeightedCluster {
                    name: "web".into(),
                    weight: 100,
                }],
                idle_timeout_ms: Some(60_000),
                access_logs: Vec::new(),
            }),
        }],
    }
}

fn clusters() -> Vec<ir::Cluster> {
    let web = ir::Cluster {
        alt_stat_name: Some("web_stats".into()),
        lb_policy: LbPolicy::LeastRequest,
        connect_timeout_ms: 1500,
        circuit_breakers: vec![
            CircuitBreaker {
                priority: Priority::Default,
                max_connections: Some(1000),
                max_pending_requests: Some(100),
                max_requests: Some(2000),
                max_retries: Some(3),
            },
            CircuitBreaker {
                priority: Priority::High,
                max_connections: Some(10),
                max_pending_requests: None,
                max_requests: None,
                max_retries: None,
            },
        ],
        dns_family: DnsFamily::V4Only,
        respect_dns_ttl: true,
        idle_timeout_ms: Some(30_000),
        max_connection_duration_ms: Some(600_000),
        tcp_keepalive: Some(TcpKeepalive {
            probes: Some(3),
            time_s: Some(30),
            interval_s: Some(5),
        }),
        header_key_format: Some(HeaderKeyFormat::ProperCaseWords),
        ..ir::Cluster::new(
            "web",
            Discovery::StrictDns(vec![
                Endpoint {
                    weight: Some(2),
                    ..Endpoint::new("localhost", 8080)
                },
                Endpoint::new("127.0.0.1", 8081),
            ]),
        )
    };
    let grpc = ir::Cluster {
        lb_policy: LbPolicy::RingHash,
        http2: true,
        tls: Some(UpstreamTls {
            sni: Some("grpc.internal".into()),
            certificate: Some("server-cert".into()),
            validation: Some("upstream-ca".into()),
            alpn_protocols: vec!["h2".into()],
            min_version: Some(TlsVersion::V1_2),
            max_version: None,
            cipher_suites: vec![],
            ecdh_curves: vec![],
        }),
        ..ir::Cluster::new(
            "grpc",
            Discovery::Static(vec![Endpoint::new("127.0.0.1", 9000)]),
        )
    };
    let logical = ir::Cluster {
        lb_policy: LbPolicy::Maglev,
        dns_family: DnsFamily::Auto,
        tls: Some(UpstreamTls::plain()),
        header_key_format: Some(HeaderKeyFormat::ProperCaseWords),
        ..ir::Cluster::new(
            "logical",
            Discovery::LogicalDns(vec![Endpoint::new("example.internal", 443)]),
        )
    };
    let eds = ir::Cluster {
        lb_policy: LbPolicy::Random,
        http2: true,
        // Not sent: header-name case is an HTTP/1 matter.
        header_key_format: Some(HeaderKeyFormat::ProperCaseWords),
        ..ir::Cluster::new(
            "eds-svc",
            Discovery::Eds {
                service_name: "ns/svc".into(),
            },
        )
    };
    let eds_empty = ir::Cluster::new(
        "eds-empty",
        Discovery::Eds {
            service_name: "ns/none".into(),
        },
    );
    vec![web, grpc, logical, eds, eds_empty]
}

fn main_table() -> RouteTable {
    RouteTable {
        name: "edge/plain".into(),
        virtual_hosts: vec![
            VirtualHost {
                name: "example".into(),
                domains: vec!["example.com".into(), "*.example.com".into()],
                routes: vec![
                    canary_route(),
                    redirect_route(PathMatch::Exact("/old".into()), {
                        Some(RedirectPath::Path("/new".into()))
                    }),
                    redirect_route(
                        PathMatch::Prefix("/moved/".into()),
                        Some(RedirectPath::Prefix("/here/".into())),
                    ),
                    redirect_route(
                        PathMatch::Prefix("/re/".into()),
                        Some(RedirectPath::Regex(RegexRewrite {
                            pattern: "^/re/(.*)$".into(),
                            substitution: "/\\1".into(),
                        })),
                    ),
                    Route::new(
                        RouteMatch::prefix("/health"),
                        RouteAction::DirectResponse {
                            status: 200,
                            body: Some("ok".into()),
                        },
                    ),
                    Route::new(
                        RouteMatch::prefix("/"),
                        RouteAction::Forward(Forward {
                            regex_rewrite: Some(Box::new(RegexRewrite {
                                pattern: "^/api/v1/".into(),
                                substitution: "/".into(),
                            })),
                            host_rewrite: Some(HostRewrite::Auto),
                            ..Forward::to("logical")
                        }),
                    ),
                ],
            },
            VirtualHost {
                name: "any".into(),
                domains: vec!["*".into()],
                routes: vec![redirect_route(PathMatch::Prefix("/".into()), None)],
            },
        ],
    }
}

fn tls_table() -> RouteTable {
    RouteTable {
        name: "edge/https".into(),
        virtual_hosts: vec![VirtualHost {
            name: "any".into(),
            domains: vec!["*".into()],
            routes: vec![Route::new(
                RouteMatch::prefix("/"),
                RouteAction::Forward(Forward::to("grpc")),
            )],
        }],
    }
}

fn canary_route() -> Route {
    let matcher = RouteMatch {
        path: PathMatch::Regex("^/api/[a-z]+$".into()),
        case_sensitive: false,
        headers: vec![
            HeaderMatch::exact(":method", "GET"),
            HeaderMatch {
                name: "x-prefix".into(),
                matcher: StringMatch::Prefix("pre".into()),
                invert: false,
            },
            HeaderMatch {
                name: "x-suffix".into(),
                matcher: StringMatch::Suffix("fix".into()),
                invert: true,
            },
            HeaderMatch {
                name: "x-regex".into(),
                matcher: StringMatch::Regex("v[0-9]+".into()),
                invert: false,
            },
            HeaderMatch {
                name: "x-present".into(),
                matcher: StringMatch::Present,
                invert: false,
            },
        ],
        query_parameters: vec![
            QueryMatch {
                name: "debug".into(),
                matcher: StringMatch::Exact("1".into()),
            },
            QueryMatch {
                name: "trace".into(),
                matcher: StringMatch::Present,
            },
        ],
        runtime_fraction: Some(RuntimeFraction {
            percent: 30,
            runtime_key: "routing.traffic_shift.api".into(),
        }),
    };
    let forward = Forward {
        clusters: vec![
            WeightedCluster {
                name: "web".into(),
                weight: 60,
            },
            WeightedCluster {
                name: "eds-svc".into(),
                weight: 40,
            },
        ],
        prefix_rewrite: Some("/v2/".into()),
        host_rewrite: Some(HostRewrite::Literal("api.internal".into())),
        timeout_ms: Some(0),
        idle_timeout_ms: Some(120_500),
        retry: Some(Box::new(ir::RetryPolicy {
            retry_on: vec!["5xx".into(), "retriable-status-codes".into()],
            num_retries: Some(2),
            per_try_timeout_ms: Some(250),
            retriable_status_codes: vec![503, 504],
        })),
        upgrades: vec!["websocket".into()],
        mirrors: vec![Mirror {
            cluster: "grpc".into(),
            percent: 10,
        }],
        hash_policy: vec![
            HashPolicy::Header("x-user".into()),
            HashPolicy::Cookie {
                name: "session".into(),
                path: Some("/".into()),
                ttl_ms: Some(3_600_000),
            },
            HashPolicy::SourceIp,
        ],
        ..Forward::to("web")
    };
    Route {
        name: Some("canary".into()),
        request_headers_to_add: vec![HeaderValue {
            name: "x-added".into(),
            value: "1".into(),
            append: true,
        }],
        request_headers_to_remove: vec!["x-internal".into()],
        response_headers_to_add: vec![HeaderValue {
            name: "x-served-by".into(),
            value: "legate".into(),
            append: false,
        }],
        response_headers_to_remove: vec!["server".into()],
        cors: Some(Box::new(Cors {
            origins: vec![
                StringMatch::Exact("https://app.example.com".into()),
                StringMatch::Suffix(".example.org".into()),
            ],
            methods: vec!["GET".into(), "POST".into()],
            headers: vec!["content-type".into()],
            exposed_headers: vec!["x-request-id".into()],
            credentials: true,
            max_age: Some("86400".into()),
        })),
        ..Route::new(matcher, RouteAction::Forward(forward))
    }
}

fn redirect_route(path: PathMatch, to: Option<RedirectPath>) -> Route {
    let https = to.is_none();
    let matcher = RouteMatch {
        path,
        ..RouteMatch::prefix("/")
    };
    let redirect = Redirect {
        https,
        host: (!https).then(|| "www.example.com".into()),
        port: (!https).then_some(8443),
        path: to,
        code: if https {
            RedirectCode::MovedPermanently
        } else {
            RedirectCode::PermanentRedirect
        },
        strip_query: !https,
    };
    Route::new(matcher, RouteAction::Redirect(redirect))
}
