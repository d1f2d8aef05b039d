#!/usr/bin/env python3
"""UDP benchmark: Bascule's UDP proxy beside NGINX `stream` (UDP, reuseport),
both in front of the same DNS server, with dnsperf.

Three scenarios per proxy, on loopback:
- DNS at a fixed rate: dnsperf at `--rate` queries/s (default 5,000):
  completed queries/s, loss %, average and p99 latency (from dnsperf -v,
  every query's latency), CPU of the proxy per 10k queries/s;
- DNS at saturation: dnsperf with 20 clients and 500 queries outstanding,
  no rate limit: completed queries/s, loss %, and the proxy's CPU per
  10k queries/s;
- 64-byte echo: dnsperf's 64-byte queries from 4 sockets (long-lived
  flows) to a UDP echo server, as fast as the load core goes: datagrams/s
  through the proxy (two per query) and datagrams/s per proxy core
  (datagrams/s divided by the cores the proxy used).

Both proxies run DNS as a DNS balancer does (`responses = 1` /
`proxy_responses 1`: a flow ends once each query asked has its answer).
At the fixed rate each query is answered before its socket sends the
next, so every query is a flow of its own (a socket opened and closed
per query); at saturation dnsperf's 20 sockets always have queries
outstanding, so their flows last, in both proxies. dnsperf, the DNS server
(Debian's dnsmasq, with one host record) and the echo server share core
0; the proxy runs alone on core 1 with one worker. Rounds are
interleaved, medians reported, every process stopped by PID.

    python3 bench/udp.py            # 3 rounds of 10 s per scenario
    python3 bench/udp.py --quick    # 1 round of 3 s

Needs: dnsperf, dnsmasq (dnsmasq-base), nginx with its stream module,
taskset, and a release build of bascule (built here). Writes
bench/results-udp.md.
"""

import re
import statistics
import sys
import subprocess
import tempfile
from pathlib import Path

from run import (LOAD_CORE, PROXY_CORE, Process, arguments, build_bascule, free_port,
                 interleaved, require, versions)

NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
DNSMASQ = next((p for p in ("/usr/sbin/dnsmasq", "/usr/bin/dnsmasq") if Path(p).exists()), "dnsmasq")
NAME = "bench.example.test"


def wait_for_dns(port, timeout=30.0):
    """Until a query through `port` is answered."""
    import socket
    import time
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
        bytes([len(label)]) + label.encode() for label in NAME.split(".")) + b"\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            s.sendto(query, ("127.0.0.1", port))
            try:
                if s.recv(512)[:2] == b"\x12\x34":
                    return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"no DNS answer through 127.0.0.1:{port}")


def start_dns(workdir):
    port = free_port()
    argv = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={port}", "--pid-file=",
            "--log-facility=-", "--dns-forward-max=10000", f"--host-record={NAME},192.0.2.10"]
    process = Process("dnsmasq", argv, LOAD_CORE, workdir)
    wait_for_dns(port)
    return process, port


ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
receive, send = s.recvfrom, s.sendto
while True:
    data, peer = receive(2048)
    send(data, peer)
"""
# A 64-byte query: 12 header bytes, a 48-byte name, type and class.
ECHO_NAME = "a" * 41 + ".test"


def start_echo(workdir):
    """A UDP echo server (dnsperf takes an echoed query as its answer)."""
    script = workdir / "echo.py"
    script.write_text(ECHO)
    port = free_port()
    process = Process("echo", [sys.executable, str(script), str(port)], LOAD_CORE, workdir)
    return process, port


def bascule(workdir, ports, binary):
    conf = workdir / "bascule-udp.toml"
    conf.write_text(f"""
[[listeners]]
name = "dns"
address = "127.0.0.1:{ports.dns}"
mode = "udp"
responses = 1
idle-timeout = "5s"

  [[listeners.routes]]
  pool = "dns"

[[listeners]]
name = "echo"
address = "127.0.0.1:{ports.echo}"
mode = "udp"
idle-timeout = "5s"

  [[listeners.routes]]
  pool = "echo"

[pools.dns]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{ports.dns_backend}" }}]

[pools.echo]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{ports.echo_backend}" }}]
""")
    return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}


def nginx_stream(workdir, ports, _binary):
    conf = workdir / "nginx-udp.conf"
    conf.write_text(f"""
load_module {NGINX_STREAM_MODULE};
worker_processes 1;
daemon off;
pid {workdir}/nginx-udp.pid;
error_log stderr error;
events {{ worker_connections 65536; }}
worker_rlimit_nofile 131072;
stream {{
    server {{
        listen 127.0.0.1:{ports.dns} udp reuseport;
        proxy_pass 127.0.0.1:{ports.dns_backend};
        proxy_responses 1;
        proxy_timeout 5s;
    }}
    server {{
        listen 127.0.0.1:{ports.echo} udp reuseport;
        proxy_pass 127.0.0.1:{ports.echo_backend};
        proxy_timeout 5s;
    }}
}}
""")
    return ["nginx", "-c", str(conf), "-p", str(workdir)], {}


PROXIES = {"bascule": bascule, "nginx stream": nginx_stream}


def dnsperf(port, seconds, workdir, rate=None, verbose=False, name=NAME, clients=20):
    data = workdir / f"queries-{name}.txt"
    data.write_text(f"{name} A\n")
    argv = ["taskset", "-c", LOAD_CORE, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
            "-d", str(data), "-l", str(seconds), "-t", "2"]
    argv += ["-Q", str(rate), "-q", "1000"] if rate else ["-c", str(clients), "-q", "500"]
    if verbose:
        argv.append("-v")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    average = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000
    result = {"qps": qps, "loss": 100.0 * (sent - completed) / sent if sent else 0.0,
              "avg_ms": average}
    if verbose:
        latencies = sorted(float(m) * 1000 for m in re.findall(r"NOERROR \S+ \S+ ([\d.]+)", out))
        result["p99_ms"] = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    return result


class Ports:
    """The proxy's two listeners and the servers behind them."""

    def __init__(self, dns_backend, echo_backend):
        self.dns, self.echo = free_port(), free_port()
        self.dns_backend, self.echo_backend = dns_backend, echo_backend


def measure(name, start, workdir, backends, binary, seconds, rate):
    ports = Ports(*backends)
    argv, env = start(workdir, ports, binary)
    process = Process(name.split()[0], argv, PROXY_CORE, workdir, env)

    def cores_during(run):
        before = process.cpu_seconds()
        result = run()
        return result, (process.cpu_seconds() - before) / seconds

    try:
        wait_for_dns(ports.dns)
        wait_for_dns(ports.echo)
        dnsperf(ports.dns, 1, workdir, rate=rate)  # warm-up
        fixed, cores = cores_during(
            lambda: dnsperf(ports.dns, seconds, workdir, rate=rate, verbose=True))
        fixed["cpu_per_10k"] = cores / (fixed["qps"] / 10_000) if fixed["qps"] else 0.0
        saturated, cores = cores_during(lambda: dnsperf(ports.dns, seconds, workdir))
        saturated["cpu_per_10k"] = (cores / (saturated["qps"] / 10_000)
                                    if saturated["qps"] else 0.0)
        echo, cores = cores_during(
            lambda: dnsperf(ports.echo, seconds, workdir, name=ECHO_NAME, clients=4))
        echo["datagrams"] = 2 * echo["qps"]
        echo["per_core"] = echo["datagrams"] / cores if cores else 0.0
        return {"fixed": fixed, "saturated": saturated, "echo": echo,
                "rss_mib": process.memory_kib("VmRSS") / 1024}
    finally:
        process.stop()


def main():
    def extra(parser):
        parser.add_argument("--rate", type=int, default=5000, help="fixed query rate")
    args = arguments(__doc__, "results-udp.md", extra)
    require(("dnsperf", "nginx", "taskset"), __file__)
    binary = build_bascule()
    with tempfile.TemporaryDirectory(prefix="bascule-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        dns, dns_port = start_dns(workdir)
        echo, echo_port = start_echo(workdir)
        try:
            wait_for_dns(echo_port)
            _, results = interleaved(
                args.rounds, PROXIES, lambda: None,
                lambda name, start: measure(name, start, workdir, (dns_port, echo_port),
                                            binary, args.seconds, args.rate))
        finally:
            echo.stop()
            dns.stop()
    med = lambda runs, *keys: statistics.median(  # noqa: E731
        _dig(run, keys) for run in runs)
    lines = [
        f"{args.rounds} interleaved round(s) of {args.seconds} s per scenario; medians. dnsperf, "
        f"dnsmasq and the echo server on core {LOAD_CORE}, the proxy alone on core {PROXY_CORE} "
        f"with one worker. DNS at {args.rate:,} q/s: a flow per query; at saturation: flows last "
        "(queries always outstanding). Echo: 64-byte datagrams on 4 long-lived flows.",
        "",
        f"| proxy | DNS {args.rate:,} q/s: completed | loss % | avg / p99 ms "
        "| CPU cores per 10k q/s | DNS saturation: q/s | loss % | CPU cores per 10k q/s "
        "| echo: datagrams/s | echo: datagrams/s per core | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        lines.append(
            f"| {name} | {med(runs, 'fixed', 'qps'):,.0f} | {med(runs, 'fixed', 'loss'):.2f} "
            f"| {med(runs, 'fixed', 'avg_ms'):.3f} / {med(runs, 'fixed', 'p99_ms'):.3f} "
            f"| {med(runs, 'fixed', 'cpu_per_10k'):.3f} | {med(runs, 'saturated', 'qps'):,.0f} "
            f"| {med(runs, 'saturated', 'loss'):.2f} | {med(runs, 'saturated', 'cpu_per_10k'):.3f} "
            f"| {med(runs, 'echo', 'datagrams'):,.0f} | {med(runs, 'echo', 'per_core'):,.0f} "
            f"| {med(runs, 'rss_mib'):.1f} |")
    ratio = lambda *keys: (med(results["bascule"], *keys)  # noqa: E731
                           / med(results["nginx stream"], *keys))
    lines += [
        "",
        f"- Bascule / NGINX stream, DNS saturation q/s: {ratio('saturated', 'qps'):.2f}×",
        "- Bascule / NGINX stream, DNS queries per core (inverse CPU per query): "
        f"fixed rate {1 / ratio('fixed', 'cpu_per_10k'):.2f}×, "
        f"saturation {1 / ratio('saturated', 'cpu_per_10k'):.2f}×",
        f"- Bascule / NGINX stream, echo datagrams/s per core: {ratio('echo', 'per_core'):.2f}×",
        "",
        versions(binary)]
    report = "\n".join(lines)
    args.output.write_text(report + "\n")
    print(report)


def _dig(value, keys):
    for key in keys:
        value = value[key]
    return value


if __name__ == "__main__":
    main()
