#!/usr/bin/env python3
"""Whole-proxy cost of a large route table and of the rate limiter.

The same small request (`GET /small`, `Host: www.example.com`) through each
proxy with one route, and with 100 mixed routes where it takes the last:
25 routes for other hosts, 25 path prefixes, 25 path regexes and 24 header
tests on its own host, then the catch-all (the table of `cargo bench
--bench routes`). Bascule also runs the 100 routes with a `[limits.NAME]`
rate limit on the route it takes (a rate it never reaches: the cost of the
check, not of refusals). NGINX and HAProxy run their nearest equivalents:
server blocks, prefix and regex locations and a header `map`; ACLs in
order. Pinned and interleaved as `bench/run.py` (wrk and the NGINX backend
on core 0, the proxy alone on core 1, one worker).

    python3 bench/routes.py            # 3 rounds of 10 s
    python3 bench/routes.py --quick    # 1 round of 3 s

Needs: nginx, haproxy, wrk (Debian packages), taskset; builds bascule.
"""

import run

HOST = "www.example.com"


def mixed_table():
    """The 99 routes the request fails, as (kind, value): another host,
    a path prefix, a path regex, or an `x-variant` value tested on its own
    host. Every proxy renders the same list."""
    kinds = ("host", "prefix", "regex", "variant")
    values = (lambda n: f"other{n}.example.com", lambda n: f"/prefix{n}/",
              lambda n: f"/items/{n}/[a-z]+", str)
    return [(kinds[n % 4], values[n % 4](n)) for n in range(99)]


# --- Bascule -------------------------------------------------------------------

def bascule_routes(mixed, limited):
    """A route table of 1 route, or 100 mixed ones; `limited` attaches a
    rate limit to the route the request takes."""
    def start(workdir, port, backend_port, binary):
        condition = {
            "host": lambda v: f'host = "{v}"',
            "prefix": lambda v: f'path-prefix = "{v}"',
            "regex": lambda v: f'path-regex = "{v}"',
            "variant": lambda v: f'host = "{HOST}"\n  headers = [{{ name = "x-variant", value = "{v}" }}]',
        }
        routes = [condition[kind](value) + '\n  pool = "backend"'
                  for kind, value in (mixed_table() if mixed else [])]
        last = 'pool = "backend"' + ('\n  limit = "bench"' if limited else "")
        routes.append(last)
        table = "".join(f"\n  [[listeners.routes]]\n  {route}\n" for route in routes)
        limit = ("\n[limits.bench]\nrate = 10000000\nburst = 10000000\n" if limited else "")
        label = ("100" if mixed else "1") + ("-limited" if limited else "")
        conf = workdir / f"bascule-routes-{label}.toml"
        conf.write_text(f"""
[[listeners]]
name = "bench"
address = "127.0.0.1:{port}"
{table}
[pools.backend]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{backend_port}" }}]
{limit}""")
        return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}
    return start


# --- NGINX ---------------------------------------------------------------------

def nginx_routes(mixed):
    def start(workdir, port, backend_port, _binary):
        proxy = ("proxy_pass http://backend; proxy_http_version 1.1; "
                 'proxy_set_header Connection "";')
        servers, locations, variants = [], [], []
        for kind, value in mixed_table() if mixed else []:
            if kind == "host":
                servers.append(f"server {{ listen 127.0.0.1:{port}; server_name {value}; "
                               f"location / {{ {proxy} }} }}")
            elif kind == "prefix":
                locations.append(f"location {value} {{ {proxy} }}")
            elif kind == "regex":
                locations.append(f"location ~ ^{value}$ {{ {proxy} }}")
            else:
                variants.append(f'"{value}" 1;')
        variant_map = ("map $http_x_variant $variant { default 0; " + " ".join(variants) + " }"
                       if variants else "")
        body = f"""
    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 128; }}
    {variant_map}
    {" ".join(servers)}
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name {HOST};
        {" ".join(locations)}
        location / {{ {proxy} }}
    }}"""
        label = "100" if mixed else "1"
        conf = workdir / f"nginx-routes-{label}.conf"
        conf.write_text(run.nginx_conf(workdir, f"nginx-routes-{label}", body))
        return ["nginx", "-c", str(conf), "-p", str(workdir)], {}
    return start


# --- HAProxy -------------------------------------------------------------------

def haproxy_routes(mixed):
    def start(workdir, port, backend_port, _binary):
        acl = {
            "host": lambda v: f"hdr(host) -i {v}",
            "prefix": lambda v: f"path_beg {v}",
            "regex": lambda v: f"path_reg ^{v}$",
            "variant": lambda v: f"req.hdr(x-variant) -m str {v}",
        }
        rules = []
        for n, (kind, value) in enumerate(mixed_table() if mixed else []):
            rules.append(f"    acl r{n} {acl[kind](value)}")
            if kind == "variant":
                rules.append(f"    acl h{n} hdr(host) -i {HOST}")
            rules.append(f"    use_backend other if r{n}" + (f" h{n}" if kind == "variant" else ""))
        config = run.HAPROXY_HTTP + f"""frontend bench
    bind 127.0.0.1:{port}
{chr(10).join(rules)}
    default_backend backend
backend backend
    http-reuse always
    server s1 127.0.0.1:{backend_port}
backend other
    http-reuse always
    server s1 127.0.0.1:{backend_port}
"""
        label = "100" if mixed else "1"
        conf = workdir / f"haproxy-routes-{label}.cfg"
        conf.write_text(config)
        return ["haproxy", "-db", "-f", str(conf)], {}
    return start


PROXIES = {
    "bascule, 1 route": bascule_routes(False, False),
    "bascule, 100 routes": bascule_routes(True, False),
    "bascule, 100 routes + rate limit": bascule_routes(True, True),
    "nginx, 1 route": nginx_routes(False),
    "nginx, 100 routes": nginx_routes(True),
    "haproxy, 1 route": haproxy_routes(False),
    "haproxy, 100 routes": haproxy_routes(True),
}


def measure(name, start, workdir, backend_port, binary, seconds):
    port = run.free_port()
    argv, env = start(workdir, port, backend_port, binary)
    process = run.Process(name.split(",")[0], argv, run.PROXY_CORE, workdir, env)
    headers = (f"Host: {HOST}",)
    try:
        run.wait_for_port(port)
        run.wrk(port, "/small", run.CONNECTIONS, 1, headers)  # warm-up
        cpu_before = process.cpu_seconds()
        result = run.wrk(port, "/small", run.CONNECTIONS, seconds, headers)
        cores = (process.cpu_seconds() - cpu_before) / seconds
        result["cpu_per_10k"] = cores / (result["rps"] / 10_000) if result["rps"] else 0.0
        return result
    finally:
        process.stop()


def table(results, seconds, rounds):
    lines = [
        f"{rounds} interleaved round(s) of {seconds} s; medians. `GET /small` with "
        f"`Host: {HOST}`, 64 connections; wrk and the NGINX backend on core "
        f"{run.LOAD_CORE}, the proxy alone on core {run.PROXY_CORE} with one worker.",
        "",
        "| proxy | req/s | p50 / p99 ms | CPU cores per 10k req/s |",
        "|---|---|---|---|",
    ]
    for name, rounds_of in results.items():
        lines.append(
            f"| {name} | {run.median(rounds_of, 'rps'):,.0f} "
            f"| {run.median(rounds_of, 'p50'):.2f} / {run.median(rounds_of, 'p99'):.2f} "
            f"| {run.median(rounds_of, 'cpu_per_10k'):.3f} |"
        )

    def cost(more, base):
        """CPU per request of `more` over `base`, in percent."""
        a = run.median(results[more], "cpu_per_10k")
        b = run.median(results[base], "cpu_per_10k")
        return (a / b - 1) * 100

    lines += [
        "",
        "CPU per request over the same proxy with one route:",
        "",
        f"- Bascule, 100 routes: {cost('bascule, 100 routes', 'bascule, 1 route'):+.1f}%",
        f"- Bascule, 100 routes + rate limit: "
        f"{cost('bascule, 100 routes + rate limit', 'bascule, 1 route'):+.1f}%",
        f"- NGINX, 100 routes: {cost('nginx, 100 routes', 'nginx, 1 route'):+.1f}%",
        f"- HAProxy, 100 routes: {cost('haproxy, 100 routes', 'haproxy, 1 route'):+.1f}%",
    ]
    return "\n".join(lines)


def main():
    args = run.arguments(__doc__, "results-routes.md")
    run.require(("nginx", "haproxy", "wrk", "taskset"), __file__)
    binary = run.build_bascule()
    results = run.interleaved_with_backend(args, PROXIES, binary, measure)
    report = "\n\n".join([table(results, args.seconds, args.rounds), run.versions(binary)])
    args.output.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
