#!/usr/bin/env python3
"""HTTP/2 and gRPC: Bascule beside NGINX and HAProxy, h2load as the client.

    python3 bench/h2.py            # 3 interleaved rounds of 10 s
    python3 bench/h2.py --quick    # 1 round of 3 s

Two scenarios, each proxy alone on core 1 with one worker, h2load and the
NGINX backends on core 0:
- **h2 over TLS**: h2load with 16 connections and `-m 10` (10 concurrent
  streams each) over TLS 1.3 (ECDSA P-256, ALPN h2) to the proxy, which
  forwards plaintext HTTP/1.1 to the backend: HTTP/2 req/s per core;
- **gRPC unary**: 16 h2c connections, `-m 10`, each request a gRPC unary
  call (`POST`, `content-type: application/grpc`, a 5-byte-framed message),
  forwarded over HTTP/2 (h2c) to an NGINX backend answering with
  `content-type: application/grpc` and `grpc-status: 0` (h2load checks no
  gRPC framing, so the reply is not a framed message): calls/s per core, the path
  where the proxy multiplexes many clients' streams on its upstream
  connections.
The table gives req/s, the proxy's CPU cores per 10k req/s, and the
requests h2load saw fail or answered 4xx/5xx (counted, not fatal: a peer's
occasional 502 should not void the run). Needs nginx,
haproxy, h2load (nghttp2-client), openssl, taskset; the current bascule is
built here (release).
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared measuring code)
import tls  # noqa: E402  (the certificate)

def grpc_backend(workdir):
    """NGINX answering every h2c request like a gRPC server would."""
    port = run.free_port()
    conf = workdir / "grpc-backend.conf"
    conf.write_text(run.nginx_conf(workdir, "grpc-backend", f"""
    http2_max_requests 1000000;
    server {{
        listen 127.0.0.1:{port} http2 reuseport;
        location / {{
            default_type application/grpc;
            add_header grpc-status 0;
            return 200 "ok";
        }}
    }}"""))
    process = run.Process("grpc-backend", ["nginx", "-c", str(conf), "-p", str(workdir)],
                          run.LOAD_CORE, workdir)
    run.wait_for_port(port)
    return process, port


def bascule(workdir, ports, backends, binary):
    conf = workdir / "bascule-h2.toml"
    conf.write_text(f"""
[[listeners]]
name = "h2"
address = "127.0.0.1:{ports['h2']}"

  [[listeners.routes]]
  pool = "http1"

  [listeners.tls]
  certificates = [{{ cert = "{workdir / 'tls.pem'}", key = "{workdir / 'tls.key'}" }}]
  min-version = "1.3"
  alpn = ["h2"]

[[listeners]]
name = "grpc"
address = "127.0.0.1:{ports['grpc']}"

  [[listeners.routes]]
  pool = "grpc"

[pools.http1]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{backends['h2']}" }}]

[pools.grpc]
balancer = "builtin:round-robin"
protocol = "h2"
backends = [{{ address = "127.0.0.1:{backends['grpc']}" }}]
""")
    return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}


def nginx(workdir, ports, backends, _binary):
    conf = workdir / "nginx-h2.conf"
    conf.write_text(run.nginx_conf(workdir, "nginx-h2", f"""
    http2_max_requests 1000000;
    upstream http1 {{ server 127.0.0.1:{backends['h2']}; keepalive 128; }}
    upstream grpc {{ server 127.0.0.1:{backends['grpc']}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{ports['h2']} ssl http2;
        ssl_certificate {workdir / 'tls.pem'};
        ssl_certificate_key {workdir / 'tls.key'};
        ssl_protocols TLSv1.3;
        location / {{
            proxy_pass http://http1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{ports['grpc']} http2;
        location / {{ grpc_pass grpc://grpc; }}
    }}"""))
    return ["nginx", "-c", str(conf), "-p", str(workdir)], {}


def haproxy(workdir, ports, backends, _binary):
    conf = workdir / "haproxy-h2.cfg"
    conf.write_text(run.HAPROXY_HTTP + f"""
frontend h2
    bind 127.0.0.1:{ports['h2']} ssl crt {workdir / 'tls-combined.pem'} ssl-min-ver TLSv1.3 alpn h2
    default_backend http1
frontend grpc
    bind 127.0.0.1:{ports['grpc']} proto h2
    default_backend grpc
backend http1
    http-reuse always
    server s1 127.0.0.1:{backends['h2']}
backend grpc
    http-reuse always
    server s1 127.0.0.1:{backends['grpc']} proto h2
""")
    return ["haproxy", "-db", "-f", str(conf)], {}


PROXIES = {"bascule": bascule, "nginx": nginx, "haproxy": haproxy}


def h2load(url, seconds, extra=()):
    output = subprocess.run(
        ["taskset", "-c", run.LOAD_CORE, "h2load", "-t1", "-c16", "-m10", f"-D{seconds}",
         *extra, url],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output).group(1))
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    failed = re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed",
                       output)
    bad = int(status.group(3)) + int(status.group(4)) + int(failed.group(1))
    return rps, bad


def scenarios(workdir, ports):
    body = workdir / "grpc-request.bin"
    body.write_bytes(b"\x00\x00\x00\x00\x05hello")
    grpc = ["-d", str(body), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    return {
        "h2-tls": lambda seconds: h2load(f"https://127.0.0.1:{ports['h2']}/small", seconds),
        "grpc": lambda seconds: h2load(
            f"http://127.0.0.1:{ports['grpc']}/bench.Echo/Unary", seconds, grpc),
    }


def measure(name, start, workdir, backends, binary, seconds):
    ports = {"h2": run.free_port(), "grpc": run.free_port()}
    argv, env = start(workdir, ports, backends, binary)
    process = run.Process(name, argv, run.PROXY_CORE, workdir, env)
    try:
        for port in ports.values():
            run.wait_for_port(port)
        results = {}
        for scenario, load in scenarios(workdir, ports).items():
            load(1)
            before = process.cpu_seconds()
            rps, bad = load(seconds)
            cores = (process.cpu_seconds() - before) / seconds
            results[scenario] = {"rps": rps, "errors": bad,
                                 "cpu_per_10k": cores / (rps / 10_000) if rps else 0.0}
        return results
    finally:
        process.stop()


def main():
    args = run.arguments(__doc__, "results-h2.md")
    run.require(["nginx", "haproxy", "h2load", "openssl", "taskset"], "bench/h2.py")
    binary = run.build_bascule()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tls.certificate(workdir)
        backend, http1_port = run.start_backend(workdir)
        grpc, grpc_port = grpc_backend(workdir)
        backends = {"h2": http1_port, "grpc": grpc_port}
        try:
            _, results = run.interleaved(
                args.rounds, PROXIES, lambda: None,
                lambda name, start: measure(name, start, workdir, backends, binary, args.seconds))
        finally:
            backend.stop()
            grpc.stop()
    lines = [
        f"{args.rounds} interleaved round(s) of {args.seconds} s; medians. h2load -c16 -m10 and "
        "the NGINX backends on core 0, the proxy alone on core 1, one worker.",
        "",
        "| proxy | h2 over TLS req/s | CPU cores per 10k req/s | gRPC unary calls/s (h2c → h2c) "
        "| CPU cores per 10k calls | failed or 4xx/5xx (all rounds) |",
        "|---|---|---|---|---|---|",
    ]
    for name, rounds in results.items():
        errors = sum(result[scenario]["errors"] for result in rounds for scenario in result)
        lines.append(
            f"| {name} | {run.median(rounds, 'h2-tls', 'rps'):,.0f} | "
            f"{run.median(rounds, 'h2-tls', 'cpu_per_10k'):.3f} | "
            f"{run.median(rounds, 'grpc', 'rps'):,.0f} | "
            f"{run.median(rounds, 'grpc', 'cpu_per_10k'):.3f} | {errors} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
