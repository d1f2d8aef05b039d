#!/usr/bin/env python3
"""L4 benchmark: Bascule's TCP proxy beside HAProxy `mode tcp` and NGINX `stream`.

Two scenarios per proxy, all on loopback:
- bulk: one iperf3 stream through the proxy for N seconds (Gbit/s received);
- short connections: wrk with `Connection: close`, so every request is a new
  TCP connection through the proxy to an NGINX backend (connections/s).

Load generators and backends share core 0; the proxy runs alone on core 1
with one worker thread. Rounds are interleaved (each round measures every
proxy once), the table reports medians, and every process this script
starts is stopped by PID when it ends.

    python3 bench/l4.py              # 3 rounds of 10 s per scenario
    python3 bench/l4.py --quick      # 1 round of 3 s: a smoke run

Needs: haproxy, nginx with its stream module (Debian: libnginx-mod-stream),
iperf3, wrk, taskset, and a release build of bascule (built here).
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import (LOAD_CORE, PROXY_CORE, Process, arguments, build_bascule, free_port,
                 interleaved, median, require, start_backend, to_ms, wait_for_port)

SHORT_CONNECTIONS = 64
NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


# --- the proxies: each forwards `bulk` to iperf3 and `short` to NGINX ----------

def bascule(zero_copy):
    def start(workdir, ports, binary):
        conf = workdir / f"bascule-tcp-{zero_copy}.toml"
        listeners = "".join(f"""
[[listeners]]
name = "{name}"
address = "127.0.0.1:{ports[name]}"
mode = "tcp"
zero-copy = {str(zero_copy).lower()}

  [[listeners.routes]]
  pool = "{name}"

[pools.{name}]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{ports[name + '-backend']}" }}]
""" for name in ("bulk", "short"))
        conf.write_text(listeners)
        return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}
    return start


def haproxy(splice):
    def start(workdir, ports, _binary):
        conf = workdir / f"haproxy-tcp-{splice}.cfg"
        sections = "".join(f"""
frontend {name}
    bind 127.0.0.1:{ports[name]}
    default_backend {name}
backend {name}
    server s1 127.0.0.1:{ports[name + '-backend']}
""" for name in ("bulk", "short"))
        conf.write_text(f"""
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    {"option splice-auto" if splice else ""}
    timeout connect 5s
    timeout client 60s
    timeout server 60s
{sections}""")
        return ["haproxy", "-db", "-f", str(conf)], {}
    return start


def nginx_stream(workdir, ports, _binary):
    conf = workdir / "nginx-stream.conf"
    servers = "".join(
        f"    server {{ listen 127.0.0.1:{ports[name]}; "
        f"proxy_pass 127.0.0.1:{ports[name + '-backend']}; }}\n"
        for name in ("bulk", "short"))
    conf.write_text(f"""
load_module {NGINX_STREAM_MODULE};
worker_processes 1;
daemon off;
pid {workdir}/nginx-stream.pid;
error_log stderr error;
events {{ worker_connections 16384; }}
stream {{
{servers}}}
""")
    return ["nginx", "-c", str(conf), "-p", str(workdir)], {}


PROXIES = {
    "bascule (splice)": bascule(True),
    "bascule (copy)": bascule(False),
    "haproxy": haproxy(False),
    "haproxy (splice-auto)": haproxy(True),
    "nginx stream": nginx_stream,
}


# --- measuring ---------------------------------------------------------------

def iperf3(port, seconds):
    output = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "iperf3", "-c", "127.0.0.1", "-p", str(port),
         "-t", str(seconds), "-J"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    return json.loads(output)["end"]["sum_received"]["bits_per_second"] / 1e9


def short_connections(port, seconds):
    output = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{SHORT_CONNECTIONS}", f"-d{seconds}s",
         "--latency", "-H", "Connection: close", f"http://127.0.0.1:{port}/small"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    rate = float(output.split("Requests/sec:")[1].split()[0])
    p99 = to_ms(next(line.split()[1] for line in output.splitlines()
                     if line.strip().startswith("99%")))
    return rate, p99


def measure(name, start, workdir, backends, binary, seconds):
    ports = {**backends, "bulk": free_port(), "short": free_port()}
    argv, env = start(workdir, ports, binary)
    process = Process(name.split()[0], argv, PROXY_CORE, workdir, env)
    try:
        wait_for_port(ports["short"])
        time.sleep(1.0)
        result = {"idle_rss_mib": process.memory_kib("VmRSS") / 1024}
        cpu = process.cpu_seconds()
        result["gbps"] = iperf3(ports["bulk"], seconds)
        result["bulk_cpu"] = (process.cpu_seconds() - cpu) / seconds
        cpu = process.cpu_seconds()
        result["conn_rate"], result["conn_p99"] = short_connections(ports["short"], seconds)
        result["short_cpu"] = (process.cpu_seconds() - cpu) / seconds
        result["peak_rss_mib"] = process.memory_kib("VmHWM") / 1024
        return result
    finally:
        process.stop()


# --- reporting ---------------------------------------------------------------

def table(results, direct, seconds, rounds):
    lines = [
        f"{rounds} interleaved round(s) of {seconds} s per scenario; medians. iperf3, wrk "
        f"and the backends on core {LOAD_CORE}, the proxy alone on core {PROXY_CORE} with one "
        "worker thread. Short connections: wrk, 64 connections, `Connection: close` "
        "(one TCP connection through the proxy per request).",
        "",
        "| proxy | bulk Gbit/s | proxy CPU (bulk) | short conn/s | short p99 ms "
        "| proxy CPU (short) | proxy CPU µs per connection | idle RSS MiB | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| direct (no proxy) | {median(direct, 'gbps'):.1f} | – "
        f"| {median(direct, 'conn_rate'):,.0f} | {median(direct, 'conn_p99'):.2f} | – | – | – | – |",
    ]
    for name, r in results.items():
        per_connection = [run["short_cpu"] / run["conn_rate"] * 1e6 for run in r]
        lines.append(
            f"| {name} | {median(r, 'gbps'):.1f} | {median(r, 'bulk_cpu'):.0%} "
            f"| {median(r, 'conn_rate'):,.0f} | {median(r, 'conn_p99'):.2f} "
            f"| {median(r, 'short_cpu'):.0%} | {statistics.median(per_connection):.0f} "
            f"| {median(r, 'idle_rss_mib'):.1f} | {median(r, 'peak_rss_mib'):.1f} |")
    ours = results["bascule (splice)"]
    best_haproxy = max(("haproxy", "haproxy (splice-auto)"),
                       key=lambda name: median(results[name], "gbps"))
    peer = results[best_haproxy]
    lines += [
        "",
        f"- Bascule (splice) / {best_haproxy}, bulk Gbit/s: "
        f"{median(ours, 'gbps') / median(peer, 'gbps'):.2f}×",
        f"- Bascule (splice) / haproxy, short conn/s: "
        f"{median(ours, 'conn_rate') / median(results['haproxy'], 'conn_rate'):.2f}×",
        f"- Bascule (splice) peak RSS − haproxy peak RSS: "
        f"{median(ours, 'peak_rss_mib') - median(results['haproxy'], 'peak_rss_mib'):+.1f} MiB",
    ]
    return "\n".join(lines)


def main():
    args = arguments(__doc__, "results-l4.md")
    require(("nginx", "haproxy", "iperf3", "wrk", "taskset"), __file__)
    if not NGINX_STREAM_MODULE.exists():
        sys.exit("bench: NGINX's stream module is missing (apt install libnginx-mod-stream)")
    binary = build_bascule()

    with tempfile.TemporaryDirectory(prefix="bascule-bench-l4-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        http_backend, http_port = start_backend(workdir)
        iperf_port = free_port()
        iperf_server = Process("iperf3", ["iperf3", "-s", "-p", str(iperf_port)],
                               LOAD_CORE, workdir)
        backends = {"bulk-backend": iperf_port, "short-backend": http_port}
        try:
            wait_for_port(iperf_port)
            def direct_path():
                rate, p99 = short_connections(http_port, args.seconds)
                return {"gbps": iperf3(iperf_port, args.seconds),
                        "conn_rate": rate, "conn_p99": p99}

            direct, results = interleaved(
                args.rounds, PROXIES, direct_path,
                lambda name, start: measure(name, start, workdir, backends, binary, args.seconds))
        finally:
            iperf_server.stop()
            http_backend.stop()

    report = table(results, direct, args.seconds, args.rounds)
    args.output.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
