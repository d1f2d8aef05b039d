#!/usr/bin/env python3
"""Instructions per proxied request, counted by callgrind: a repeatable
figure for before/after comparisons of the hot path (wall-clock numbers on a
shared 2-vCPU machine move by ±15% between runs; instruction counts do not).

Runs the release `bascule` under `valgrind --tool=callgrind` twice, in front
of one NGINX backend on loopback, sending N and then N + 2000 keep-alive
requests from one client; the difference over 2000 is the cost of one
request (startup and plugin loading cancel out). Userspace only: the
kernel's share of the work (about half, see BENCHMARKS.md) is not counted.

    python3 bench/instructions.py            # prints instructions per request
    python3 bench/instructions.py --top 25   # and the functions that grew most
    python3 bench/instructions.py --header-filter   # with the headers filter
    python3 bench/instructions.py --binary OLD/bascule   # a saved build, for before/after
    python3 bench/instructions.py --routes 100           # bench/routes.py's 100 mixed routes
    python3 bench/instructions.py --routes 100-limited   # and its rate limit

Needs: valgrind, nginx (Debian packages), a release build (built here).
"""

import argparse
import http.client
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import routes  # noqa: E402  (the route-table benchmark's configs)
import run  # noqa: E402  (the whole-proxy benchmark: backend, ports, processes)

EXTRA_REQUESTS = 2000
BASE_REQUESTS = 100


def requests(port, count, host):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(count):
        connection.request("GET", "/small", headers={"Host": host})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"proxy answered {response.status}")
    connection.close()


def config(header_filter, table):
    """The start function for the chosen config, and the request's host."""
    if table == "1":
        return run.bascule("builtin:round-robin", header_filter), "example.test"
    return routes.bascule_routes(True, table == "100-limited"), routes.HOST


def callgrind(binary, workdir, backend_port, count, out, header_filter, table):
    port = run.free_port()
    start, host = config(header_filter, table)
    argv, env = start(workdir, port, backend_port, binary)
    process = run.Process(
        "callgrind",
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
        run.PROXY_CORE, workdir, env,
    )
    try:
        run.wait_for_port(port, timeout=120)
        requests(port, count, host)
    finally:
        process.stop()
    time.sleep(0.5)
    summary = re.search(r"^summary: (\d+)", Path(out).read_text(), re.M)
    return int(summary.group(1))


def by_function(out):
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", str(out)],
                          capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if match and "PROGRAM TOTALS" not in line:
            costs[match.group(2)] = int(match.group(1).replace(",", ""))
    return costs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--top", type=int, default=0, help="show the N functions whose own (exclusive) cost per request is highest")
    parser.add_argument("--header-filter", action="store_true",
                        help="route through the built-in headers filter too (as bench/run.py's filter row)")
    parser.add_argument("--routes", choices=("1", "100", "100-limited"), default="1",
                        help="the route table: bench/run.py's one route, or bench/routes.py's "
                             "100 mixed routes (the request takes the last), with its rate limit")
    parser.add_argument("--binary", type=Path, help="measure this bascule binary instead of building the tree's")
    args = parser.parse_args()
    binary = args.binary.resolve() if args.binary else run.build_bascule()
    with tempfile.TemporaryDirectory(prefix="bascule-callgrind-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        backend, backend_port = run.start_backend(workdir)
        try:
            base_out, full_out = workdir / "base.out", workdir / "full.out"
            base = callgrind(binary, workdir, backend_port, BASE_REQUESTS, base_out,
                             args.header_filter, args.routes)
            full = callgrind(binary, workdir, backend_port, BASE_REQUESTS + EXTRA_REQUESTS,
                             full_out, args.header_filter, args.routes)
            print(f"instructions per proxied request: {(full - base) / EXTRA_REQUESTS:,.0f}")
            if args.top:
                before, after = by_function(base_out), by_function(full_out)
                growth = sorted(((after[k] - before.get(k, 0)) / EXTRA_REQUESTS, k) for k in after)
                for cost, name in reversed(growth[-args.top:]):
                    name = re.sub(r"/root/.cargo/registry/src/[^/]+/", "", name)
                    print(f"{cost:10,.0f}  {name[:140]}")
        finally:
            backend.stop()


if __name__ == "__main__":
    main()
