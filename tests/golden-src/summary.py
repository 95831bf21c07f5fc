#!/usr/bin/env python3
"""Prints a compact view of a golden ir.json, for reviewing by eye."""
import json, sys
def sm(m):
    k, v = next(iter(m.items())) if isinstance(m, dict) else (m, "")
    return f"{k}:{v}"
for path in sys.argv[1:]:
    ir = json.load(open(path))
    print("==", path)
    for l in ir["listeners"]:
        print(f"L {l['name']} {l['address']}:{l['port']} proxy={l['proxy_protocol']} buf={l['per_connection_buffer_limit_bytes']}")
        for c in l["filter_chains"]:
            a = c["action"]
            if "http" in a:
                h = a["http"]
                act = f"hcm {h['stat_prefix']} rt={h['route_table']} xff={h['xff_num_trusted_hops']} ura={h['use_remote_address']}"
            else:
                t = a["tcp"]
                act = f"tcp {t['stat_prefix']} {[(w['name'], w['weight']) for w in t['clusters']]} idle={t['idle_timeout_ms']}"
            tls = c["tls"]
            tl = f" tls(cert={tls['certificate']} val={tls['validation']} alpn={tls['alpn_protocols']} min={tls['min_version']} max={tls['max_version']} req={tls['require_client_certificate']})" if tls else ""
            print(f"  C {c['name']} sni={c['server_names']} match_tls={c['match_tls']}{tl} -> {act}")
    for t in ir["route_tables"]:
        print(f"T {t['name']}")
        for v in t["virtual_hosts"]:
            print(f"  V {v['name']} {v['domains']}")
            for r in v["routes"]:
                m = r["match"]
                parts = [sm(m["path"])]
                if not m["case_sensitive"]: parts.append("ci")
                for h in m["headers"]: parts.append(f"H[{h['name']}={sm(h['matcher'])}]")
                for q in m["query_parameters"]: parts.append(f"Q[{q['name']}={sm(q['matcher'])}]")
                if m["runtime_fraction"]: parts.append(f"RF{m['runtime_fraction']['percent']}")
                a = r["action"]
                if "forward" in a:
                    f = a["forward"]
                    act = "-> " + ",".join(c["name"] for c in f["clusters"])
                    for k in ["prefix_rewrite", "regex_rewrite", "host_rewrite", "timeout_ms", "idle_timeout_ms", "retry"]:
                        if f[k] is not None: act += f" {k}={f[k]}"
                    if f["upgrades"]: act += f" up={f['upgrades']}"
                    if f["mirrors"]: act += f" mirror={f['mirrors']}"
                elif "redirect" in a:
                    act = f"REDIRECT {a['redirect']}"
                else:
                    act = str(a)
                extra = ""
                for k in ["request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"]:
                    if r[k]: extra += f" {k}={r[k]}"
                if r["cors"]: extra += f" cors={r['cors']}"
                print(f"    R {r['name']}: {' '.join(parts)} {act}{extra}")
    for c in ir["clusters"]:
        d = c["discovery"]
        k, v = next(iter(d.items()))
        eps = [f"{e['address']}:{e['port']}" for e in v] if isinstance(v, list) else v
        opts = []
        for key in ["alt_stat_name", "lb_policy", "connect_timeout_ms", "circuit_breakers", "tls", "http2", "dns_family", "respect_dns_ttl", "idle_timeout_ms", "max_connection_duration_ms", "tcp_keepalive"]:
            val = c[key]
            if val not in (None, False, [], "round_robin", 3000, "v4_only"): opts.append(f"{key}={val}")
        print(f"K {c['name']} {k} {eps} {' '.join(opts)}")
    for s in ir["secrets"]:
        print(f"S {s['name']} {list(s['kind'].keys())[0]}")
