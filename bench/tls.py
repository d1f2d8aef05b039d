#!/usr/bin/env python3
"""TLS termination: Bascule beside NGINX and HAProxy with the same certificate.

    python3 bench/tls.py            # 3 interleaved rounds of 10 s
    python3 bench/tls.py --quick    # 1 round of 3 s

Every proxy terminates TLS 1.3 with one ECDSA P-256 certificate (made here
with openssl), one worker alone on core 1, and forwards plaintext HTTP/1.1
to an NGINX backend on core 0, where wrk runs too. Two scenarios:
- **keep-alive**: 64 HTTPS connections, small responses (req/s per core);
- **handshakes**: `Connection: close` on every request, so each request is
  a new TCP connection and a full TLS 1.3 handshake (wrk does not resume
  sessions): handshakes per second per core, resumption off;
- **s_time full / resumed**: `openssl s_time -new` and `-reuse` (one
  client, one GET per connection): the proxy's CPU per connection with a
  full handshake and with the session resumed from a TLS 1.3 ticket.
The table gives req/s and CPU cores per 10k req/s of the proxy. Needs nginx,
haproxy, wrk, openssl, taskset; the current bascule is built here (release).
"""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared measuring code)

SCENARIOS = {
    "keep-alive": [],
    "handshakes": ["-H", "Connection: close"],
}


def certificate(workdir):
    key, cert = workdir / "tls.key", workdir / "tls.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True)
    (workdir / "tls-combined.pem").write_text(cert.read_text() + key.read_text())
    return cert, key


def bascule(workdir, port, backend_port, binary):
    conf = workdir / "bascule-tls.toml"
    conf.write_text(f"""
[[listeners]]
name = "bench"
address = "127.0.0.1:{port}"

  [[listeners.routes]]
  pool = "backend"

  [listeners.tls]
  certificates = [{{ cert = "{workdir / 'tls.pem'}", key = "{workdir / 'tls.key'}" }}]
  min-version = "1.3"
  alpn = ["http/1.1"]

[pools.backend]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{backend_port}" }}]
""")
    return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}


def nginx(workdir, port, backend_port, _binary):
    conf = workdir / "nginx-tls.conf"
    server = run.nginx_proxy_server(port, backend_port).replace(
        f"listen 127.0.0.1:{port};",
        f"""listen 127.0.0.1:{port} ssl;
        ssl_certificate {workdir / 'tls.pem'};
        ssl_certificate_key {workdir / 'tls.key'};
        ssl_protocols TLSv1.3;""")
    conf.write_text(run.nginx_conf(workdir, "nginx-tls", server))
    return ["nginx", "-c", str(conf), "-p", str(workdir)], {}


def haproxy(workdir, port, backend_port, _binary):
    conf = workdir / "haproxy-tls.cfg"
    conf.write_text(run.haproxy_config(
        port, backend_port, f"ssl crt {workdir / 'tls-combined.pem'} ssl-min-ver TLSv1.3"))
    return ["haproxy", "-db", "-f", str(conf)], {}


PROXIES = {"bascule": bascule, "nginx": nginx, "haproxy": haproxy}


def wrk(port, headers, seconds):
    output = subprocess.run(
        ["taskset", "-c", run.LOAD_CORE, "wrk", "-t1", f"-c{run.CONNECTIONS}", f"-d{seconds}s",
         *headers, f"https://127.0.0.1:{port}/small"],
        capture_output=True, text=True, check=True).stdout
    import re
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{errors.group(1)} error responses:\n{output}")
    return rps


def s_time(port, mode, seconds):
    """Connections per second by `openssl s_time` (one client, a GET each):
    `-new` makes a full handshake every time, `-reuse` resumes the first
    session (TLS 1.3 tickets)."""
    output = subprocess.run(
        ["taskset", "-c", run.LOAD_CORE, "openssl", "s_time", "-connect", f"127.0.0.1:{port}",
         mode, "-time", str(seconds), "-www", "/small"],
        capture_output=True, text=True, check=True).stdout
    import re
    connections = re.search(r"(\d+) connections in [\d.]+ real seconds", output)
    return int(connections.group(1)) / seconds


def measure(name, start, workdir, backend_port, binary, seconds):
    port = run.free_port()
    argv, env = start(workdir, port, backend_port, binary)
    process = run.Process(name, argv, run.PROXY_CORE, workdir, env)
    try:
        run.wait_for_port(port)
        wrk(port, [], 1)
        results = {}
        for scenario, headers in SCENARIOS.items():
            before = process.cpu_seconds()
            rps = wrk(port, headers, seconds)
            cores = (process.cpu_seconds() - before) / seconds
            results[scenario] = {"rps": rps, "cpu_per_10k": cores / (rps / 10_000) if rps else 0.0}
        for scenario, mode in (("full", "-new"), ("resumed", "-reuse")):
            before = process.cpu_seconds()
            rate = s_time(port, mode, seconds)
            cpu = process.cpu_seconds() - before
            results[scenario] = {"rps": rate, "cpu_us": cpu / (rate * seconds) * 1e6 if rate else 0.0}
        return results
    finally:
        process.stop()


def main():
    args = run.arguments(__doc__, "results-tls.md")
    run.require(["nginx", "haproxy", "wrk", "openssl", "taskset"], "bench/tls.py")
    binary = run.build_bascule()
    results = run.interleaved_with_backend(args, PROXIES, binary, measure, certificate)
    lines = [
        f"{args.rounds} interleaved round(s) of {args.seconds} s; medians. TLS 1.3, ECDSA P-256; "
        "wrk and the NGINX backend on core 0, the proxy alone on core 1, one worker.",
        "",
        "| proxy | keep-alive req/s | CPU cores per 10k req/s | handshakes/s (new connection each) "
        "| CPU cores per 10k handshakes | s_time full: conn/s, proxy µs each "
        "| s_time resumed: conn/s, proxy µs each |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rounds in results.items():
        lines.append(
            f"| {name} | {run.median(rounds, 'keep-alive', 'rps'):,.0f} | "
            f"{run.median(rounds, 'keep-alive', 'cpu_per_10k'):.3f} | "
            f"{run.median(rounds, 'handshakes', 'rps'):,.0f} | "
            f"{run.median(rounds, 'handshakes', 'cpu_per_10k'):.3f} | "
            f"{run.median(rounds, 'full', 'rps'):,.0f}, {run.median(rounds, 'full', 'cpu_us'):.0f} | "
            f"{run.median(rounds, 'resumed', 'rps'):,.0f}, "
            f"{run.median(rounds, 'resumed', 'cpu_us'):.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)


if __name__ == "__main__":
    main()
