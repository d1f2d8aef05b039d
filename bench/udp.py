#!/usr/bin/env python3
"""UDP benchmark: Bascule's UDP proxy beside NGINX `stream` (UDP, reuseport),
both in front of the same DNS server, with dnsperf.

Two scenarios per proxy, on loopback:
- fixed rate: dnsperf at `--rate` queries/s (default 5,000): completed
  queries/s, loss %, average and p99 latency (from dnsperf -v, every
  query's latency), CPU of the proxy per 10k queries/s;
- saturation: dnsperf with 20 clients and 500 queries outstanding, no
  rate limit: completed queries/s and loss %.

Every query is its own flow (`responses = 1` / `proxy_responses 1`), as
a DNS balancer runs. dnsperf and the DNS server (Debian's dnsmasq, with
one host record) share core 0; the proxy runs alone on core 1 with one
worker. Rounds are interleaved, medians reported, every process stopped
by PID.

    python3 bench/udp.py            # 3 rounds of 10 s per scenario
    python3 bench/udp.py --quick    # 1 round of 3 s

Needs: dnsperf, dnsmasq (dnsmasq-base), nginx with its stream module,
taskset, and a release build of bascule (built here). Writes
bench/results-udp.md.
"""

import re
import statistics
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


def bascule(workdir, port, dns_port, binary):
    conf = workdir / "bascule-udp.toml"
    conf.write_text(f"""
[[listeners]]
name = "dns"
address = "127.0.0.1:{port}"
mode = "udp"
responses = 1
idle-timeout = "5s"

  [[listeners.routes]]
  pool = "dns"

[pools.dns]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{dns_port}" }}]
""")
    return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}


def nginx_stream(workdir, port, dns_port, _binary):
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
        listen 127.0.0.1:{port} udp reuseport;
        proxy_pass 127.0.0.1:{dns_port};
        proxy_responses 1;
        proxy_timeout 5s;
    }}
}}
""")
    return ["nginx", "-c", str(conf), "-p", str(workdir)], {}


PROXIES = {"bascule": bascule, "nginx stream": nginx_stream}


def dnsperf(port, seconds, workdir, rate=None, verbose=False):
    data = workdir / "queries.txt"
    data.write_text(f"{NAME} A\n")
    argv = ["taskset", "-c", LOAD_CORE, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
            "-d", str(data), "-l", str(seconds), "-t", "2"]
    argv += ["-Q", str(rate), "-q", "1000"] if rate else ["-c", "20", "-q", "500"]
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


def measure(name, start, workdir, dns_port, binary, seconds, rate):
    port = free_port()
    argv, env = start(workdir, port, dns_port, binary)
    process = Process(name.split()[0], argv, PROXY_CORE, workdir, env)
    try:
        wait_for_dns(port)
        dnsperf(port, 1, workdir, rate=rate)  # warm-up
        cpu_before = process.cpu_seconds()
        fixed = dnsperf(port, seconds, workdir, rate=rate, verbose=True)
        cores = (process.cpu_seconds() - cpu_before) / seconds
        fixed["cpu_per_10k"] = cores / (fixed["qps"] / 10_000) if fixed["qps"] else 0.0
        saturated = dnsperf(port, seconds, workdir)
        return {"fixed": fixed, "saturated": saturated,
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
        try:
            _, results = interleaved(
                args.rounds, PROXIES, lambda: None,
                lambda name, start: measure(name, start, workdir, dns_port, binary,
                                            args.seconds, args.rate))
        finally:
            dns.stop()
    med = lambda runs, *keys: statistics.median(  # noqa: E731
        _dig(run, keys) for run in runs)
    lines = [
        f"{args.rounds} interleaved round(s) of {args.seconds} s per scenario; medians. dnsperf "
        f"and dnsmasq on core {LOAD_CORE}, the proxy alone on core {PROXY_CORE} with one worker; "
        "every query its own flow.",
        "",
        f"| proxy | {args.rate:,} q/s: completed q/s | loss % | avg / p99 ms "
        "| CPU cores per 10k q/s | saturation: q/s | loss % | RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        lines.append(
            f"| {name} | {med(runs, 'fixed', 'qps'):,.0f} | {med(runs, 'fixed', 'loss'):.2f} "
            f"| {med(runs, 'fixed', 'avg_ms'):.3f} / {med(runs, 'fixed', 'p99_ms'):.3f} "
            f"| {med(runs, 'fixed', 'cpu_per_10k'):.3f} | {med(runs, 'saturated', 'qps'):,.0f} "
            f"| {med(runs, 'saturated', 'loss'):.2f} | {med(runs, 'rss_mib'):.1f} |")
    ours = med(results["bascule"], "saturated", "qps")
    theirs = med(results["nginx stream"], "saturated", "qps")
    lines += ["", f"- Bascule / NGINX stream, saturation q/s: {ours / theirs:.2f}×", "",
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
