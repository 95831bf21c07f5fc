#!/usr/bin/env python3
"""Writes the golden input directories (tests/golden/<case>/input.yaml). Run from anywhere;
review the generated ir.json/errors.txt after `UPDATE_GOLDEN=1 cargo test --test golden`."""
import os, textwrap, base64
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden")
CERT = "-----BEGIN CERTIFICATE-----\\nMIIBfake\\n-----END CERTIFICATE-----\\n"
KEY = "-----BEGIN PRIVATE KEY-----\\nMIIEfake\\n-----END PRIVATE KEY-----\\n"

def secret(name, ns="default", b64=False, key=True):
    if b64:
        crt = base64.b64encode(CERT.replace("\\n", "\n").encode()).decode()
        k = base64.b64encode(KEY.replace("\\n", "\n").encode()).decode()
        return f"""apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {ns}}}
type: kubernetes.io/tls
data: {{tls.crt: "{crt}"{', tls.key: "' + k + '"' if key else ''}}}
"""
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {ns}}}
type: kubernetes.io/tls
stringData: {{tls.crt: "{CERT}"{', tls.key: "' + KEY + '"' if key else ''}}}
"""

BASE = """apiVersion: getambassador.io/v3alpha1
kind: Listener
metadata: {name: http-8080, namespace: default}
spec: {port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}
---
apiVersion: getambassador.io/v3alpha1
kind: Host
metadata: {name: any, namespace: default}
spec: {hostname: "*", requestPolicy: {insecure: {action: Route}}}
"""

def m(name, spec, ns="default", labels=None, version="v3alpha1"):
    lab = f", labels: {labels}" if labels else ""
    return f"""apiVersion: getambassador.io/{version}
kind: Mapping
metadata: {{name: {name}, namespace: {ns}{lab}}}
spec: {spec}
"""

def obj(kind, name, spec, ns="default", version="v3alpha1", labels=None):
    lab = f", labels: {labels}" if labels else ""
    return f"""apiVersion: getambassador.io/{version}
kind: {kind}
metadata: {{name: {name}, namespace: {ns}{lab}}}
spec: {spec}
"""

OK = m("ok", "{hostname: '*', prefix: /ok/, service: ok}")
CASES = {}
def case(name, *docs, options=None):
    CASES[name] = ("---\n".join(textwrap.dedent(d) for d in docs), options)

# ---------------------------------------------------------------- worked examples
L_XFP_8080 = obj("Listener", "http-8080", "{port: 8080, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}")
case("ex-13-1-tls-host",
     L_XFP_8080,
     obj("Listener", "https-8443", "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "shop", "{hostname: shop.example.com, tlsSecret: {name: shop-cert}}"),
     m("shop-api", "{hostname: shop.example.com, prefix: /api/, service: shop-api}"),
     secret("shop-cert"))
case("ex-13-1-minimal", L_XFP_8080, m("echo", "{hostname: '*', prefix: /echo/, service: 'echo:8080'}"))
case("ex-13-2-secure-insecure",
     obj("Listener", "behind-lb", "{port: 8080, protocol: HTTP, securityModel: SECURE, l7Depth: 1, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "plain-9000", "{port: 9000, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "app", "{hostname: app.example.com}"),
     m("app", "{hostname: '*', prefix: /, service: app}"))
case("ex-13-3-canary-shadow", BASE,
     m("cart-stable", "{hostname: '*', prefix: /cart/, service: cart-v1, timeout_ms: 5000}"),
     m("cart-canary", "{hostname: '*', prefix: /cart/, service: cart-v2, weight: 10}"),
     m("cart-mirror", "{hostname: '*', prefix: /cart/, service: cart-shadow, shadow: true}"),
     m("cart-beta", "{hostname: '*', prefix: /cart/, service: cart-beta, headers: {x-beta: '1'}}"))
case("ex-13-4-selector-globs", L_XFP_8080,
     obj("Host", "tenant-a", "{hostname: a.example.com, mappingSelector: {matchLabels: {tenant: a}}, requestPolicy: {insecure: {action: Route}}}"),
     obj("Host", "wildcard", "{hostname: '*.example.com', requestPolicy: {insecure: {action: Route}}}"),
     m("a-home", "{prefix: /home/, service: a-home}", labels="{tenant: a}"),
     m("docs", "{hostname: '*.example.com', prefix: /docs/, service: docs}"),
     m("orphan", "{prefix: /orphan/, service: orphan}"))
case("ex-13-5-feature-rich", BASE,
     obj("Module", "ambassador", "{config: {diagnostics: {enabled: false}, cluster_request_timeout_ms: 10000}}"),
     """apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: users, namespace: apps}
spec:
  hostname: "*"
  prefix: /users/
  rewrite: /v1/users/
  service: users:8080
  method: GET
  headers: {x-tenant: acme}
  query_parameters: {format: json}
  add_request_headers: {x-via: legate, x-env: {value: prod, append: false}}
  remove_response_headers: [server]
  cors: {origins: ["https://app.example.com"], methods: [GET, POST], credentials: true, max_age: "600"}
  retry_policy: {retry_on: 5xx, num_retries: 2, per_try_timeout: 0.5s}
  idle_timeout_ms: 30000
  connect_timeout_ms: 1000
  circuit_breakers: [{max_connections: 500, max_pending_requests: 100}]
""",
     """apiVersion: getambassador.io/v3alpha1
kind: Mapping
metadata: {name: legacy, namespace: apps}
spec:
  hostname: "*"
  prefix: "^/legacy/([0-9]+)/"
  prefix_regex: true
  regex_rewrite: {pattern: "^/legacy/([0-9]+)/(.*)$", substitution: "/items/\\\\1/\\\\2"}
  service: https://legacy.apps:8443
  allow_upgrade: [websocket]
""",
     m("old-site", "{hostname: '*', prefix: /old/, service: www.example.com, host_redirect: true, prefix_redirect: /new/, redirect_response_code: 308}", ns="apps"))
case("ex-13-6-tcpmappings",
     obj("Listener", "tls-5432", "{port: 5432, protocol: TLS, securityModel: SECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("TLSContext", "pg-ctx", "{hosts: [pg.example.com], secret: pg-cert, min_tls_version: v1.2}"),
     obj("TCPMapping", "pg", "{port: 5432, host: pg.example.com, service: 'postgres:5432'}", ns="db"),
     obj("TCPMapping", "redis-a", "{port: 6379, service: 'redis-a:6379', weight: 25}"),
     obj("TCPMapping", "redis-b", "{port: 6379, service: 'redis-b:6379'}"),
     secret("pg-cert"))

# ---------------------------------------------------------------- matching
case("match-path-forms", BASE,
     m("regex", "{hostname: '*', prefix: '^/items/[0-9]+$', prefix_regex: true, rewrite: '', service: items}"),
     m("exact", "{hostname: '*', prefix: /exact, prefix_exact: true, service: exact}"),
     m("insensitive", "{hostname: '*', prefix: /CaSe/, case_sensitive: false, service: case}"),
     m("plain", "{hostname: '*', prefix: /api, service: api}"))
case("match-method-headers", BASE,
     m("get", "{hostname: '*', prefix: /m/, method: get, service: getter}"),
     m("write", "{hostname: '*', prefix: /m/, method: 'POST|PUT', method_regex: true, service: writer}"),
     m("hdr", "{hostname: '*', prefix: /h/, headers: {x-exact: v1, x-present: true, x-num: 7}, regex_headers: {x-re: '^a.*z$'}, service: hdr}"))
case("match-query", BASE,
     m("q", "{hostname: '*', prefix: /q/, query_parameters: {page: '2', debug: true}, regex_query_parameters: {id: '^[0-9]+$'}, service: q}"))
case("match-host-forms", BASE,
     m("exact-host", "{host: a.example.com, prefix: /a/, service: a}"),
     m("regex-host", "{host: '^(a|b)\\.example\\.com$', host_regex: true, prefix: /ab/, service: ab}"),
     m("authority", "{headers: {':authority': c.example.com}, prefix: /c/, service: c}"),
     m("suffix-glob", "{hostname: '*.example.org', prefix: /s/, service: s}"),
     m("prefix-glob", "{hostname: 'foo.*', prefix: /p/, service: p}"))

# ---------------------------------------------------------------- upstream
case("service-forms", BASE,
     m("bare", "{hostname: '*', prefix: /bare/, service: bare}", ns="apps"),
     m("port", "{hostname: '*', prefix: /port/, service: 'svc:9000'}", ns="apps"),
     m("dotted", "{hostname: '*', prefix: /dotted/, service: 'svc.other:81'}", ns="apps"),
     m("ipv4", "{hostname: '*', prefix: /ip/, service: '10.0.0.7:8080'}", ns="apps"),
     m("ipv6", "{hostname: '*', prefix: /ip6/, service: '[fd00::1]:8080'}", ns="apps"),
     m("localhost", "{hostname: '*', prefix: /local/, service: localhost}", ns="apps"),
     m("https", "{hostname: '*', prefix: /secure/, service: 'https://secure', host_rewrite: secure.example.com}", ns="apps"),
     m("http-scheme", "{hostname: '*', prefix: /plain/, service: 'http://plain:8080/ignored/path'}"),
     m("home-ns", "{hostname: '*', prefix: /home/, service: home}"))
case("service-no-qualification", BASE,
     obj("Module", "ambassador", "{config: {use_ambassador_namespace_for_service_resolution: true}}"),
     m("bare", "{hostname: '*', prefix: /bare/, service: bare}", ns="apps"))
case("rewrite-forms", BASE,
     m("default", "{hostname: '*', prefix: /default/, service: d}"),
     m("keep", "{hostname: '*', prefix: /keep/, rewrite: '', service: k}"),
     m("custom", "{hostname: '*', prefix: /custom/, rewrite: /v2/, service: c}"),
     m("regex", "{hostname: '*', prefix: /re/, regex_rewrite: {pattern: '^/re/(.*)$', substitution: '/\\1'}, service: r}"),
     m("host", "{hostname: '*', prefix: /host/, host_rewrite: upstream.example.com, service: h}"),
     m("auto", "{hostname: '*', prefix: /auto/, auto_host_rewrite: true, service: a}"))
case("timeouts", BASE,
     obj("Module", "ambassador", "{config: {cluster_request_timeout_ms: 7000, cluster_idle_timeout_ms: 60000, cluster_max_connection_lifetime_ms: 600000}}"),
     m("module-default", "{hostname: '*', prefix: /md/, service: md}"),
     m("disabled", "{hostname: '*', prefix: /slow/, timeout_ms: 0, service: slow}"),
     m("all", "{hostname: '*', prefix: /all/, timeout_ms: 1500, idle_timeout_ms: 20000, connect_timeout_ms: 250, cluster_idle_timeout_ms: 5000, service: all}"))
case("retries", BASE,
     obj("Module", "ambassador", "{config: {retry_policy: {retry_on: gateway-error, num_retries: 1}}}"),
     m("ms", "{hostname: '*', prefix: /ms/, retry_policy: {retry_on: '5xx,connect-failure', num_retries: 3, per_try_timeout: 500ms}, service: ms}"),
     m("inherit", "{hostname: '*', prefix: /inherit/, service: inherit}"))
case("weights-unweighted-three", BASE,
     m("a", "{hostname: '*', prefix: /w/, service: wa}"),
     m("b", "{hostname: '*', prefix: /w/, service: wb}"),
     m("c", "{hostname: '*', prefix: /w/, service: wc}"))
case("weights-mixed", BASE,
     m("a", "{hostname: '*', prefix: /w/, service: wa}"),
     m("b", "{hostname: '*', prefix: /w/, service: wb, weight: 10}"),
     m("c", "{hostname: '*', prefix: /w/, service: wc}"),
     m("same-in-other-ns", "{hostname: '*', prefix: /n/, service: n1}", ns="one"),
     m("same-in-other-ns", "{hostname: '*', prefix: /n/, service: n2}", ns="two"))
# weight 0 is a weight (no traffic), not "unset"; a lone Mapping still gets everything, and a
# shadow with weight 0 mirrors nothing (docs/compatibility.md).
case("weights-zero", BASE,
     m("zero", "{hostname: '*', prefix: /z/, service: zero, weight: 0}"),
     m("rest", "{hostname: '*', prefix: /z/, service: rest}"),
     m("lone-zero", "{hostname: '*', prefix: /lone/, service: lone, weight: 0}"),
     m("main", "{hostname: '*', prefix: /mirror/, service: main}"),
     m("mirror-zero", "{hostname: '*', prefix: /mirror/, service: mirror, shadow: true, weight: 0}"),
     obj("TCPMapping", "tcp-zero", "{port: 9000, service: 'tzero:9000', weight: 0}"),
     obj("TCPMapping", "tcp-rest", "{port: 9000, service: 'trest:9000'}"))
# TCPMappings bound to declared TCP Listeners (protocol TCP, protocolStack [TCP]) and to a TLS
# Listener by SNI, each Listener with its own TCPMapping.
case("tcp-listeners-bound",
     obj("Listener", "tcp-a", "{port: 9001, protocol: TCP, securityModel: SECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "tcp-b", "{port: 9002, protocolStack: [TCP], securityModel: SECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "tls-9443", "{port: 9443, protocol: TLS, securityModel: SECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("TCPMapping", "a", "{port: 9001, service: 'a:9001'}"),
     obj("TCPMapping", "b", "{port: 9002, service: 'b:9002'}", ns="other"),
     obj("TLSContext", "db-ctx", "{hosts: [db.example.com], secret: db-cert}"),
     obj("Host", "cache", "{hostname: cache.example.com, tlsSecret: {name: cache-cert}}"),
     obj("TCPMapping", "db", "{port: 9443, host: db.example.com, service: 'db:5432'}"),
     obj("TCPMapping", "cache", "{port: 9443, host: cache.example.com, service: 'cache:6379'}"),
     secret("db-cert"), secret("cache-cert"))
# Ties in the header weight between a hostname Mapping and header Mappings: the `*` host counts
# (11), then the `name-value` texts decide; a full tie goes in reverse processing order.
case("order-host-header-ties", BASE,
     obj("Host", "a", "{hostname: a.com, requestPolicy: {insecure: {action: Route}}}"),
     m("t-host", "{hostname: a.com, prefix: /t/, service: thost}"),
     m("t-hdr-after", "{hostname: '*', prefix: /t/, headers: {ab: cd}, service: tafter}"),
     m("t-hdr-before", "{hostname: '*', prefix: /t/, headers: {'0a': cd}, service: tbefore}"),
     m("t-present", "{hostname: '*', prefix: /t/, headers: {x-p: true}, service: tpresent}"),
     m("t-star", "{hostname: '*', prefix: /t/, headers: {x-p: '*'}, service: tstar}"),
     m("t-any", "{hostname: '*', prefix: /t/, service: tany}"),
     m("t-glob", "{hostname: '*.com', prefix: /t/, service: tglob}"),
     m("t-glob-hdr", "{hostname: '*', prefix: /t/, headers: {x: a}, service: tgh}"))
# A Mapping whose match is valid but whose target cannot be built keeps its route, answering
# 503 with the error, so its requests never fall through to the catch-all; an invalid match
# still leaves the Mapping out.
case("fail-closed-targets", BASE,
     m("catch-all", "{hostname: '*', prefix: /, service: fallback}"),
     m("bad-port", "{hostname: '*', prefix: /port/, service: 'team:http'}"),
     m("bad-service", "{hostname: '*', prefix: /svc/, service: 'ftp://team'}"),
     m("no-context", "{hostname: '*', prefix: /tls/, service: team, tls: missing-ctx}"),
     m("no-resolver", "{hostname: '*', prefix: /res/, service: team, resolver: nowhere}"),
     m("canary-bad", "{hostname: '*', prefix: /canary/, service: 'team:x', weight: 10}"),
     m("canary-ok", "{hostname: '*', prefix: /canary/, service: team}"),
     m("bad-regex", "{hostname: '*', prefix: /re/, regex_headers: {x: '('}, service: team}"),
     m("bad-header", "{hostname: '*', prefix: /hdr/, headers: {x: [a, b]}, service: team}"))
# Connection timeouts of 0 are unset (the Module's value, else Envoy's default), as in Emissary;
# a route timeout of 0 still disables the timeout.
case("timeouts-zero", BASE,
     obj("Module", "ambassador", "{config: {cluster_idle_timeout_ms: 5000, cluster_max_connection_lifetime_ms: 0, listener_idle_timeout_ms: 0}}"),
     m("zero-idle", "{hostname: '*', prefix: /zi/, service: zi, cluster_idle_timeout_ms: 0}"),
     m("zero-life", "{hostname: '*', prefix: /zl/, service: zl, cluster_max_connection_lifetime_ms: 0}"),
     m("set-idle", "{hostname: '*', prefix: /si/, service: si, cluster_idle_timeout_ms: 100}"),
     m("no-route-timeout", "{hostname: '*', prefix: /nt/, service: nt, timeout_ms: 0}"))
case("order-precedence", BASE,
     m("short-high", "{hostname: '*', prefix: /same/, precedence: 1, service: high}"),
     m("longer", "{hostname: '*', prefix: /same/longer/, service: longer}"),
     m("negative", "{hostname: '*', prefix: /same/longer/still/, precedence: -1, service: neg}"))
case("order-full-key", BASE,
     m("root", "{hostname: '*', prefix: /, service: root}"),
     m("a-long", "{hostname: '*', prefix: /aaaa/, service: along}"),
     m("b-long", "{hostname: '*', prefix: /bbbb/, service: blong}"),
     m("a-hdr", "{hostname: '*', prefix: /aaaa/, headers: {x: y}, service: ahdr}"),
     m("a-host", "{hostname: a.com, prefix: /aaaa/, service: ahost}"),
     m("a-query", "{hostname: '*', prefix: /aaaa/, query_parameters: {q: '1'}, service: aq}"),
     m("a-post", "{hostname: '*', prefix: /aaaa/, method: POST, service: apost}"))
case("redirects", BASE,
     m("https-host", "{hostname: '*', prefix: /secure/, service: 'https://www.example.com:8443', host_redirect: true}"),
     m("path", "{hostname: '*', prefix: /p/, service: p.example.com, host_redirect: true, path_redirect: /landing, prefix_redirect: /ignored/, redirect_response_code: 302}"),
     m("regex", "{hostname: '*', prefix: /r/, service: r.example.com, host_redirect: true, regex_redirect: {pattern: '^/r/(.*)$', substitution: '/new/\\1'}, redirect_response_code: 307}"),
     m("bad-code", "{hostname: '*', prefix: /c/, service: c.example.com, host_redirect: true, redirect_response_code: 418}"),
     m("inert", "{hostname: '*', prefix: /i/, service: i, path_redirect: /x}"))
case("headers-add-remove", BASE,
     obj("Module", "ambassador", "{config: {defaults: {add_request_headers: {x-default: d, x-over: module}, httpmapping: {remove_response_headers: x-internal}}}}"),
     m("h", "{hostname: '*', prefix: /h/, add_request_headers: {x-over: mapping, x-keep: {value: k, append: false}}, add_response_headers: {x-resp: r}, remove_request_headers: cookie, remove_response_headers: [server, x-powered-by], service: h}"),
     m("linkerd", "{hostname: '*', prefix: /l5d/, add_linkerd_headers: true, service: 'mesh:8080'}"))
case("cors", BASE,
     obj("Module", "ambassador", "{config: {cors: {origins: '*', methods: 'GET, OPTIONS'}}}"),
     m("own", "{hostname: '*', prefix: /own/, cors: {origins: 'https://a.com,https://b.com', methods: [GET, PUT], headers: 'x-a, x-b', exposed_headers: [x-e], credentials: true, max_age: 86400}, service: own}"),
     m("inherited", "{hostname: '*', prefix: /inherited/, service: inh}"))
case("load-balancer", BASE,
     obj("Module", "ambassador", "{config: {load_balancer: {policy: least_request}}}"),
     m("rr", "{hostname: '*', prefix: /rr/, load_balancer: {policy: round_robin}, service: rr}"),
     m("default", "{hostname: '*', prefix: /lr/, service: lr}"))
case("circuit-breakers", BASE,
     obj("Module", "ambassador", "{config: {circuit_breakers: [{max_connections: 2048}]}}"),
     m("own", "{hostname: '*', prefix: /cb/, circuit_breakers: [{max_connections: 100, max_pending_requests: 10}, {priority: high, max_requests: 50}], service: blue}", ns="cors"),
     m("inherited", "{hostname: '*', prefix: /inh/, service: inh}"))
case("upgrades-grpc-dns", BASE,
     m("ws", "{hostname: '*', prefix: /ws/, use_websocket: true, service: ws}"),
     m("upgrade", "{hostname: '*', prefix: /up/, allow_upgrade: [WebSocket, CONNECT], service: up}"),
     m("grpc", "{hostname: '*', prefix: /grpc.Service/, grpc: true, rewrite: '', service: 'grpc:50051', dns_type: logical_dns, respect_dns_ttl: true, enable_ipv6: true, keepalive: {idle_time: 60, interval: 10, probes: 3}, stats_name: grpc_backend, cluster_tag: tagged}"))
case("tls-origination", BASE,
     obj("TLSContext", "upstream", "{secret: client-cert, ca_secret: upstream-ca, sni: backend.internal, alpn_protocols: 'h2,http/1.1', min_tls_version: v1.2}"),
     obj("TLSContext", "ca-only", "{ca_secret: upstream-ca}"),
     m("mtls", "{hostname: '*', prefix: /mtls/, service: backend, tls: upstream}"),
     m("verify", "{hostname: '*', prefix: /verify/, service: 'verified:8443', tls: ca-only}"),
     m("plain-https", "{hostname: '*', prefix: /https/, service: 'https://open'}"),
     m("v2-true", "{hostname: '*', prefix: /v2tls/, service: legacy, tls: true}", version="v2"),
     secret("client-cert"), secret("upstream-ca", key=False, b64=True))
case("tls-termination-contexts",
     obj("Listener", "https-8443", "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("TLSContext", "strict", "{hosts: [a.example.com], secret: a-cert, ca_secret: client-ca, cert_required: true, alpn_protocols: 'h2,http/1.1', min_tls_version: v1.2, max_tls_version: v1.3, cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256], ecdh_curves: [X25519]}"),
     obj("Host", "a", "{hostname: a.example.com, tlsSecret: {name: a-cert}, tlsContext: {name: strict}}"),
     obj("Host", "b", "{hostname: b.example.com, tlsSecret: {name: b-cert}, tls: {alpnProtocols: h2, minTlsVersion: v1.3}, requestPolicy: {insecure: {action: Reject}}}"),
     obj("Host", "c", "{hostname: c.example.com, tlsSecret: {name: b-cert}}"),
     obj("TLSContext", "c-context", "{alpn_protocols: [http/1.1]}"),
     m("a", "{hostname: a.example.com, prefix: /, service: a}"),
     m("b", "{hostname: b.example.com, prefix: /, service: b}"),
     secret("a-cert"), secret("b-cert", b64=True), secret("client-ca", key=False))
case("tls-wildcard-host",
     obj("Listener", "https-8443", "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "star", "{hostname: '*', tlsSecret: {name: star-cert}, requestPolicy: {insecure: {action: Route}}}"),
     obj("Host", "specific", "{hostname: 'api.example.com:8443', tlsSecret: {name: star-cert}, requestPolicy: {insecure: {action: Redirect}}}"),
     m("api", "{hostname: '*', prefix: /api/, service: api}"),
     secret("star-cert"))
case("listener-protocols",
     obj("Listener", "proxy", "{port: 8080, protocol: HTTPPROXY, securityModel: XFP, l7Depth: 2, statsPrefix: edge, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "proxy-tls", "{port: 8443, protocol: HTTPSPROXY, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "stack", "{port: 9443, protocolStack: [PROXY, TLS, HTTP, TCP], securityModel: SECURE, http2MaxConcurrentStreams: 100, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "h", "{hostname: h.example.com, tlsSecret: {name: h-cert}, requestPolicy: {insecure: {action: Route}}}"),
     m("h", "{hostname: h.example.com, prefix: /, service: h}"),
     secret("h-cert"))
case("host-binding",
     obj("Listener", "self", "{port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: SELF}}}", ns="team"),
     obj("Listener", "labelled", "{port: 8081, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}, selector: {matchLabels: {public: 'yes'}}}}"),
     obj("Host", "team-host", "{hostname: team.example.com, requestPolicy: {insecure: {action: Route}}}", ns="team"),
     obj("Host", "public-host", "{hostname: public.example.com, requestPolicy: {insecure: {action: Route}}}", labels="{public: 'yes'}"),
     m("all", "{hostname: '*', prefix: /, service: all}"))
case("insecure-actions",
     L_XFP_8080,
     obj("Listener", "insecure-9000", "{port: 9000, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "reject", "{hostname: reject.example.com, requestPolicy: {insecure: {action: Reject, additionalPort: 8080}}}"),
     obj("Host", "route", "{hostname: route.example.com, requestPolicy: {insecure: {action: Route}}}"),
     m("m", "{hostname: '*', prefix: /m/, service: m}"),
     m("acme", "{hostname: '*', prefix: /.well-known/acme-challenge/, service: acme}"))
case("cluster-sharing", BASE,
     m("one", "{hostname: '*', prefix: /one/, service: shared}"),
     m("two", "{hostname: '*', prefix: /two/, service: shared}"),
     m("three", "{hostname: '*', prefix: /three/, service: shared, connect_timeout_ms: 5000}"),
     m("long", "{hostname: '*', prefix: /long/, service: a-very-long-service-name-for-testing-cluster-names.example.com}"))
case("ambassador-id", BASE.replace("spec: {port", "spec: {ambassador_id: [blue], port").replace('spec: {hostname: "*"', 'spec: {ambassador_id: blue, hostname: "*"'),
     m("mine", "{ambassador_id: [blue, green], hostname: '*', prefix: /mine/, service: mine}"),
     m("auto", "{ambassador_id: _automatic_, hostname: '*', prefix: /auto/, service: auto}"),
     m("default-id", "{hostname: '*', prefix: /default/, service: def}"),
     m("empty", "{ambassador_id: [], hostname: '*', prefix: /empty/, service: empty}"),
     options={"ambassador_id": "blue"})
case("v2-conversion",
     obj("Listener", "http-8080", "{port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "v2host", "{hostname: v2.example.com, selector: {matchLabels: {v: '2'}}, requestPolicy: {insecure: {action: Route}}}", version="v2"),
     obj("Host", "plain", "{hostname: '*', requestPolicy: {insecure: {action: Route}}}"),
     m("no-host", "{prefix: /v2/, service: v2, headers: {x-present: true}, cors: {origins: 'https://a.com, https://b.com'}}", version="v2"),
     m("labelled", "{prefix: /labelled/, service: lab}", labels="{v: '2'}"))
case("module-settings", BASE,
     obj("Module", "ambassador", "{config: {server_name: legate-edge, use_remote_address: false, diagnostics: {enabled: true}, liveness_probe: {enabled: false}, listener_idle_timeout_ms: 30000, max_request_headers_kb: 96, merge_slashes: true, strip_matching_host_port: true, reject_requests_with_escaped_slashes: true, suppress_envoy_headers: true, buffer_limit_bytes: 65536, enable_http10: true, preserve_external_request_id: true, enable_ipv6: true, envoy_log_type: json, envoy_log_format: {status: '%RESPONSE_CODE%', path: '%REQ(:PATH)%'}, envoy_log_path: /tmp/access.log, xff_num_trusted_hops: 1, ip_allow: [{peer: 127.0.0.1}], bogus_key: 1}}"),
     obj("Module", "tls", "{config: {}}"),
     m("m", "{hostname: '*', prefix: /m/, service: m}"))
case("same-name-namespaces",
     obj("Listener", "edge", "{port: 8080, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}", ns="a"),
     obj("Listener", "edge", "{port: 8081, protocol: HTTP, securityModel: INSECURE, hostBinding: {namespace: {from: ALL}}}", ns="b"),
     m("m", "{hostname: '*', prefix: /m/, service: m}"))
case("default-listeners", m("m", "{hostname: '*', prefix: /m/, service: m}"), options={"default_listeners": True})
case("unattached-and-no-listener",
     m("orphan", "{prefix: /orphan/, service: orphan}"),
     m("hosted", "{hostname: '*', prefix: /hosted/, service: hosted}"))
case("tcp-on-http-listeners",
     obj("Listener", "https-8443", "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "web", "{hostname: web.example.com, tlsSecret: {name: web-cert}}"),
     obj("Host", "db", "{hostname: db.example.com, tlsSecret: {name: db-cert}}"),
     obj("TCPMapping", "db", "{port: 8443, host: db.example.com, service: 'db:5432', idle_timeout_ms: 60000, tls: true}"),
     obj("TCPMapping", "three-a", "{port: 7000, service: 'a:7000'}"),
     obj("TCPMapping", "three-b", "{port: 7000, service: 'b:7000'}"),
     obj("TCPMapping", "three-c", "{port: 7000, service: 'c:7000'}"),
     m("web", "{hostname: web.example.com, prefix: /, service: web}"),
     secret("web-cert"), secret("db-cert"))
# Each TLS chain's route table holds only the vhosts of its own Host(s); the cleartext chain
# holds every Host. A `*` Host with TLS is the catch-all chain, with only the `*` vhost.
case("sni-host-separation",
     obj("Listener", "https-8443", "{port: 8443, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Host", "alpha", "{hostname: alpha.example.com, tlsSecret: {name: alpha-cert}}"),
     obj("Host", "beta", "{hostname: beta.example.com, tlsSecret: {name: beta-cert}}"),
     obj("Host", "fallback", "{hostname: '*', tlsSecret: {name: fallback-cert}, requestPolicy: {insecure: {action: Route}}}"),
     m("alpha", "{hostname: alpha.example.com, prefix: /app/, service: alpha}"),
     m("beta", "{hostname: beta.example.com, prefix: /app/, service: beta}"),
     m("any", "{hostname: '*', prefix: /any/, service: any}"),
     secret("alpha-cert"), secret("beta-cert"), secret("fallback-cert"))
case("sni-shared-chain",
     obj("Listener", "https-8443", "{port: 8443, protocol: HTTPS, securityModel: SECURE, hostBinding: {namespace: {from: ALL}}}"),
     obj("TLSContext", "shared", "{hosts: [x.example.com, 'x.example.com:8443'], secret: x-cert}"),
     obj("Host", "x", "{hostname: x.example.com, tlsSecret: {name: x-cert}, tlsContext: {name: shared}}"),
     obj("Host", "x-port", "{hostname: 'x.example.com:8443', tlsSecret: {name: x-cert}, tlsContext: {name: shared}}"),
     m("x", "{hostname: '*', prefix: /, service: x}"),
     secret("x-cert"))

# ---------------------------------------------------------------- bad-input corpus: each case
# has one broken resource; `ok` (and anything else valid) must still be served.
case("bad-01-missing-prefix", BASE, OK, m("broken", "{hostname: '*', service: x}"))
case("bad-02-missing-service", BASE, OK, m("broken", "{hostname: '*', prefix: /x/}"))
case("bad-03-unparsable-service", BASE, OK, m("broken", "{hostname: '*', prefix: /x/, service: 'x:notaport'}"),
     m("scheme", "{hostname: '*', prefix: /y/, service: 'ftp://y'}"))
case("bad-04-regex-prefix", BASE, OK, m("broken", "{hostname: '*', prefix: '^/(unclosed', prefix_regex: true, service: x}"))
case("bad-05-regex-header", BASE, OK, m("broken", "{hostname: '*', prefix: /x/, regex_headers: {x-id: '[z-a]'}, service: x}"))
case("bad-06-listener-port-conflict", BASE, OK,
     obj("Listener", "http-8080-again", "{port: 8080, protocol: HTTPS, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"))
case("bad-07-duplicate-name", BASE, OK, m("ok", "{hostname: '*', prefix: /dup/, service: dup}").replace("Mapping", "Mapping"))
case("bad-08-host-missing-secret", BASE, OK,
     obj("Host", "tls-host", "{hostname: secure.example.com, tlsSecret: {name: nowhere}}"))
case("bad-09-tlscontext-no-cert", BASE, OK,
     obj("TLSContext", "empty", "{hosts: [x.example.com], alpn_protocols: h2}"),
     m("uses-empty", "{hostname: '*', prefix: /tls/, service: x, tls: empty}"))
case("bad-10-star-in-host", BASE, OK, m("broken", "{host: '*.example.com', prefix: /x/, service: x}"))
case("bad-11-weights-over-100", BASE, OK,
     m("w1", "{hostname: '*', prefix: /w/, service: w1, weight: 70}"),
     m("w2", "{hostname: '*', prefix: /w/, service: w2, weight: 50}"),
     m("w3", "{hostname: '*', prefix: /x/, service: w3, weight: 101}"))
case("bad-12-hostless-tcp-on-http", BASE, OK,
     obj("TCPMapping", "grab-all", "{port: 8080, service: 'tcp:9000'}"))
case("bad-13-retry-on", BASE, OK, m("broken", "{hostname: '*', prefix: /x/, service: x, retry_policy: {retry_on: sometimes}}"))
case("bad-14-wrong-type", BASE, OK, m("broken", "{hostname: '*', prefix: /x/, service: x, timeout_ms: fast}"))
case("bad-15-listener-missing-security", BASE, OK,
     obj("Listener", "nomodel", "{port: 9090, protocol: HTTP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "nobinding", "{port: 9091, protocol: HTTP, securityModel: XFP}"))
case("bad-16-listener-protocol", BASE, OK,
     obj("Listener", "gopher", "{port: 9090, protocol: GOPHER, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "quic", "{port: 9443, protocolStack: [TLS, HTTP, UDP], securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"),
     obj("Listener", "neither", "{port: 9444, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}"))
case("bad-17-ring-hash", BASE, OK,
     m("broken", "{hostname: '*', prefix: /x/, service: x, load_balancer: {policy: ring_hash, header: x-user}}"),
     m("broken-rr", "{hostname: '*', prefix: /y/, service: y, load_balancer: {policy: round_robin, source_ip: true}}"))
case("bad-18-unsupported-fields", BASE, OK,
     m("outlier", "{hostname: '*', prefix: /x/, service: x, outlier_detection: {consecutive_5xx: 5}}"),
     m("overrides", "{hostname: '*', prefix: /y/, service: y, error_response_overrides: [{on_status_code: 404, body: {text_format: nope}}]}"))
case("bad-19-missing-tls-context", BASE, OK, m("broken", "{hostname: '*', prefix: /x/, service: x, tls: nowhere}"))
case("bad-20-group-conflict", BASE, OK,
     m("first", "{hostname: '*', prefix: /g/, service: g1, connect_timeout_ms: 1000}"),
     m("second", "{hostname: '*', prefix: /g/, service: g2, connect_timeout_ms: 2000}"),
     m("shadow-a", "{hostname: '*', prefix: /g/, service: s1, connect_timeout_ms: 1000, shadow: true}"),
     m("shadow-b", "{hostname: '*', prefix: /g/, service: s2, connect_timeout_ms: 1000, shadow: true}"))
case("bad-21-not-an-object", BASE, OK, "just a string\n", "apiVersion: getambassador.io/v3alpha1\nmetadata: {name: kindless}\nspec: {}\n",
     "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {namespace: default}\nspec: {prefix: /n/, service: n}\n",
     "apiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: nospec}\n")
case("bad-22-secret-not-pem", BASE, OK,
     "apiVersion: v1\nkind: Secret\nmetadata: {name: junk, namespace: default}\ntype: kubernetes.io/tls\nstringData: {tls.crt: hello, tls.key: world}\n",
     "apiVersion: v1\nkind: Secret\nmetadata: {name: badb64, namespace: default}\ntype: kubernetes.io/tls\ndata: {tls.crt: '!!!'}\n",
     obj("Host", "uses-junk", "{hostname: junk.example.com, tlsSecret: {name: junk}}"))
case("bad-23-context-cert-mismatch", BASE, OK,
     obj("TLSContext", "other", "{secret: other-cert}"),
     obj("Host", "mismatch", "{hostname: m.example.com, tlsSecret: {name: mine-cert}, tlsContext: {name: other}}"),
     obj("Host", "both", "{hostname: b.example.com, tlsSecret: {name: mine-cert}, tlsContext: {name: other}, tls: {min_tls_version: v1.2}}"),
     obj("Host", "bad-version", "{hostname: v.example.com, tlsSecret: {name: mine-cert}, tls: {min_tls_version: v9}}"),
     secret("other-cert"), secret("mine-cert"))
case("bad-24-dns-family", BASE, OK, m("broken", "{hostname: '*', prefix: /x/, service: x, enable_ipv4: false, enable_ipv6: false}"))
case("bad-25-per-try-timeout", BASE, OK, m("broken", "{hostname: '*', prefix: /x/, service: x, retry_policy: {retry_on: 5xx, per_try_timeout: soon}}"),
     m("unknown-fields", "{hostname: '*', prefix: /u/, service: u, not_a_field: 1, cors: {origins: [a], wat: 2}}"))
case("bad-26-listener-nothing-bound", BASE, OK,
     obj("Listener", "lonely", "{port: 9000, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: SELF}}}", ns="empty"),
     obj("Listener", "tcp-lonely", "{port: 9001, protocol: TCP, securityModel: SECURE, hostBinding: {namespace: {from: ALL}}}"))
case("bad-27-duplicate-hostname", BASE, OK,
     obj("Host", "any-again", "{hostname: '*', requestPolicy: {insecure: {action: Redirect}}}", ns="other"))
case("bad-28-tcp-no-termination", BASE, OK,
     obj("TCPMapping", "sni", "{port: 9443, host: nobody.example.com, service: 'svc:443'}"),
     obj("TCPMapping", "ok-tcp", "{port: 9000, service: 'plain:9000'}"),
     obj("TCPMapping", "heavy", "{port: 9000, service: 'heavy:9000', weight: 200}"))
case("bad-29-bad-hostname", BASE, OK,
     obj("Host", "space", "{hostname: 'bad host'}"),
     m("bad-glob", "{hostname: 'a b', prefix: /x/, service: x}"),
     m("no-slash", "{hostname: '*', prefix: relative, service: x}"))
case("bad-30-module-invalid", BASE, OK,
     obj("Module", "ambassador", "{config: {retry_policy: {retry_on: never}, server_name: ignored}}"))
case("bad-31-mapping-group-redirect-mix", BASE, OK,
     m("r1", "{hostname: '*', prefix: /mix/, service: r.example.com, host_redirect: true}"),
     m("r2", "{hostname: '*', prefix: /mix/, service: backend}"))
# Zeros Envoy refuses (and with them a whole update) are reported here instead: a zero
# connect timeout fails its Mapping closed, a Listener with 0 concurrent streams and a Module
# with max_request_headers_kb 0 are invalid.
case("bad-34-zero-values", BASE, OK,
     m("no-connect", "{hostname: '*', prefix: /nc/, service: nc, connect_timeout_ms: 0}"),
     obj("Listener", "h2-zero", "{port: 9090, protocol: HTTP, securityModel: XFP, http2MaxConcurrentStreams: 0, hostBinding: {namespace: {from: ALL}}}"),
     obj("Module", "ambassador", "{config: {max_request_headers_kb: 0}}"))

# ---------------------------------------------------------------- AuthService / RateLimitService
# An HTTP AuthService with every option; Mappings that bypass it, redirect, or carry context
# extensions (a warning: only gRPC auth services receive them).
L_XFP_8443 = obj("Listener", "xfp-8443", "{port: 8443, protocol: HTTP, securityModel: XFP, hostBinding: {namespace: {from: ALL}}}")
case("svc-auth-http", BASE, OK, L_XFP_8443,
     obj("Host", "secure", "{hostname: 'secure.example.com'}"),
     obj("AuthService", "auth", "{auth_service: 'auth:3000', path_prefix: /extauth, timeout_ms: 2500, allowed_request_headers: [X-Tenant, cookie], allowed_authorization_headers: [X-User], add_auth_headers: {X-From: legate}, include_body: {max_bytes: 8192, allow_partial: true}, allow_request_body: true, status_on_error: {code: 503}, failure_mode_allow: true, add_linkerd_headers: true, connect_timeout_ms: 1500, stats_name: authstats}", ns="apps"),
     m("public", "{hostname: '*', prefix: /public/, service: web, bypass_auth: true}"),
     m("moved", "{hostname: '*', prefix: /moved/, service: 'https://new.example.com', host_redirect: true}"),
     m("ctx", "{hostname: '*', prefix: /ctx/, service: web, auth_context_extensions: {tier: gold}}"),
     m("secure", "{hostname: secure.example.com, prefix: /s/, service: web}"))
# gRPC auth over TLS: context extensions reach it; HTTP-only fields are warned about.
case("svc-auth-grpc", BASE, OK,
     obj("AuthService", "grpc-auth", "{auth_service: 'https://authz.example.com:8443', proto: grpc, protocol_version: v3, path_prefix: /ignored, circuit_breakers: [{max_connections: 50}]}"),
     m("ctx", "{hostname: '*', prefix: /ctx/, service: web, auth_context_extensions: {tier: gold, region: eu}}"),
     m("public", "{hostname: '*', prefix: /public/, service: web, bypass_auth: true}"))
# Every label form, the Module's default labels (prepended to every group of their domain,
# and the only descriptor of label-less Mappings), v2 shorthands, v0_ratelimit_ groups (no
# defaults), labels of another domain (warned), omit_if_not_present → skip_if_absent.
case("svc-ratelimit", BASE, OK,
     obj("Module", "ambassador", "{config: {default_label_domain: edge, default_labels: {edge: {defaults: [{remote_address: {key: remote_address}}]}}}}"),
     obj("RateLimitService", "rls", "{service: 'rls:8081', timeout_ms: 100, failure_mode_deny: true, grpc: {use_resource_exhausted_code: true}}"),
     m("all-forms", "{hostname: '*', prefix: /all/, service: web, labels: {edge: [{g1: [{source_cluster: {key: source_cluster}}, {destination_cluster: {key: destination_cluster}}, {remote_address: {key: remote_address}}, {generic_key: {value: api}}, {generic_key: {key: tier, value: gold}}, {request_headers: {key: user, header_name: x-user, omit_if_not_present: true}}]}, {v0_ratelimit_legacy: [{request_headers: {key: plan, header_name: x-plan}}]}]}}"),
     m("v2-forms", "{hostname: '*', prefix: /v2/, service: web, labels: {edge: [{short: [source_cluster, remote_address, literal, {x-user: {header: x-user, omit_if_not_present: false}}, {generic_key: flat}]}]}}", version="v2"),
     m("other-domain", "{hostname: '*', prefix: /other/, service: web, labels: {ambassador: [{g: [{generic_key: {value: x}}]}]}}"),
     m("moved", "{hostname: '*', prefix: /moved/, service: 'https://new.example.com', host_redirect: true}"))
# Both services at once: filter order cors → ext_authz → ratelimit → router.
case("svc-auth-and-ratelimit", BASE, OK,
     obj("AuthService", "auth", "{auth_service: 'auth:3000', proto: grpc}"),
     obj("RateLimitService", "rls", "{service: 'rls:8081', domain: ambassador}"),
     m("limited", "{hostname: '*', prefix: /limited/, service: web, labels: {ambassador: [{per-ip: [{remote_address: {key: remote_address}}]}]}}"))
# A misconfigured AuthService fails closed (every route but the probes answers 500), and a
# second AuthService is reported and ignored.
case("bad-35-auth-protocol-v2", BASE, OK,
     obj("AuthService", "a-first", "{auth_service: 'auth:3000', proto: grpc, protocol_version: v2}"),
     obj("AuthService", "b-second", "{auth_service: 'other:3000'}"),
     m("public", "{hostname: '*', prefix: /public/, service: web, bypass_auth: true}"))
case("bad-36-auth-bad-proto", BASE, OK,
     obj("AuthService", "auth", "{auth_service: 'auth:3000', proto: thrift}"))
case("bad-37-auth-bad-status", BASE, OK,
     obj("AuthService", "auth", "{auth_service: 'auth:3000', status_on_error: {code: 299}}"))
case("bad-38-auth-missing-tls-context", BASE, OK,
     obj("AuthService", "auth", "{auth_service: 'auth:3000', tls: nowhere}"))
# A misconfigured RateLimitService is reported and left out (no filter, no rate limits); a
# second one is reported and ignored; an invalid label specifier drops its whole group.
case("bad-39-ratelimit-protocol-v2", BASE, OK,
     obj("RateLimitService", "a-rls", "{service: 'rls:8081', protocol_version: v2}"),
     m("limited", "{hostname: '*', prefix: /limited/, service: web, labels: {ambassador: [{g: [{remote_address: {key: remote_address}}]}]}}"))
case("bad-40-ratelimit-two-and-bad-labels", BASE, OK,
     obj("RateLimitService", "a-rls", "{service: 'rls:8081'}"),
     obj("RateLimitService", "b-rls", "{service: 'other:8081'}"),
     m("limited", "{hostname: '*', prefix: /limited/, service: web, labels: {ambassador: [{bad: [{remote_address: {key: remote_address}}, {query_parameter: {key: q}}]}, {good: [{generic_key: {value: ok}}]}, {two: [], keys: []}]}}"))
# ---------------------------------------------------------------- LogService / TracingService
TCP_L = obj("TCPMapping", "db", "{port: 5432, service: 'db:5432'}")
case("logservice-drivers", BASE, OK, TCP_L,
     obj("LogService", "als-http", "{service: 'als:9001', driver: http, flush_interval_time: 5, flush_interval_byte_size: 1024, "
         "driver_config: {additional_log_headers: [{header_name: X-Request-Id}, {header_name: x-only-req, during_response: false, during_trailer: false}, {header_name: grpc-status, during_request: false}]}}"),
     obj("LogService", "als-tcp", "{service: 'https://als-tls', driver: tcp, log_name: edge, stats_name: als_tls}", ns="logs"),
     obj("LogService", "als-default", "{service: 'als:9001', protocol_version: v3}", ns="logs"))
case("logservice-v2", BASE, OK,
     obj("LogService", "als", "{service: 'als:9001', v3ProtocolVersion: v3, driver: http, grpc: false}", version="v2"))
case("tracing-zipkin", BASE, OK,
     obj("TracingService", "zipkin", "{service: 'zipkin:9411', driver: zipkin, sampling: {random: 25, overall: 50}, "
         "custom_tags: [{tag: env, environment: {name: POD_NS, default_value: unknown}}, {tag: team, literal: {value: edge}}], "
         "tag_headers: [x-user, team], config: {trace_id_128bit: false, shared_span_context: false, collector_cluster: mine, access_token_file: /x}}"),
     obj("TracingService", "zz-second", "{service: 'otel:4317', driver: opentelemetry}", ns="zz"))
case("tracing-opentelemetry", BASE, OK,
     obj("TracingService", "otel", "{service: 'otel.monitoring:4317', driver: opentelemetry, config: {service_name: edge}, sampling: {client: 0}}"))
case("tracing-datadog", BASE, OK,
     obj("TracingService", "dd", "{service: 'datadog-agent.monitoring:8126', driver: datadog, config: {service_name: edge, propagation_modes: [B3]}}"))
case("bad-41-logservice", BASE, OK,
     obj("LogService", "a-v2", "{service: 'als:9001', protocol_version: v2}"),
     obj("LogService", "b-no-service", "{driver: http}"),
     obj("LogService", "c-zero-flush", "{service: 'als:9001', flush_interval_time: 0}"),
     obj("LogService", "d-tcp-headers", "{service: 'als:9001', driver: tcp, driver_config: {additional_log_headers: [{header_name: x}]}}"),
     obj("LogService", "e-empty-header", "{service: 'als:9001', driver: http, driver_config: {additional_log_headers: [{during_request: true}]}}"),
     obj("LogService", "f-driver", "{service: 'als:9001', driver: udp}"),
     obj("LogService", "g-service", "{service: 'als:notaport'}"),
     obj("LogService", "h-type", "{service: 'als:9001', flush_interval_time: soon}"),
     obj("LogService", "i-good", "{service: 'als:9001', driver: http}"))
case("bad-42-tracingservice", BASE, OK,
     obj("TracingService", "a-lightstep", "{service: 'ls:443', driver: lightstep}"),
     obj("TracingService", "b-no-driver", "{service: 'zipkin:9411'}"),
     obj("TracingService", "c-sampling", "{service: 'zipkin:9411', driver: zipkin, sampling: {random: 150}}"),
     obj("TracingService", "d-v1", "{service: 'zipkin:9411', driver: zipkin, config: {collector_endpoint_version: HTTP_JSON_V1}}"),
     obj("TracingService", "e-tag", "{service: 'zipkin:9411', driver: zipkin, custom_tags: [{tag: t, literal: {value: a}, request_header: {name: b}}]}"),
     obj("TracingService", "f-no-service", "{driver: datadog}"),
     obj("TracingService", "g-config-type", "{service: 'zipkin:9411', driver: zipkin, config: {trace_id_128bit: maybe}}"),
     obj("TracingService", "h-good", "{service: 'zipkin:9411', driver: zipkin}"),
     obj("TracingService", "i-later", "{service: 'dd:8126', driver: datadog}"))

if __name__ == "__main__":
    import json, shutil
    for name, (text, options) in CASES.items():
        d = os.path.join(ROOT, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "input.yaml"), "w") as f:
            f.write(text)
        if options:
            with open(os.path.join(d, "options.json"), "w") as f:
                json.dump(options, f, indent=2)
                f.write("\n")
    print(len(CASES), "cases")
