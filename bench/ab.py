#!/usr/bin/env python3
"""Two Bascule builds side by side: the same config and load through each,
interleaved and pinned as `bench/run.py` (wrk and the NGINX backend on core
0, the proxy alone on core 1 with one worker), for a before/after figure
taken within one run on this noisy machine.

    cp target/release/bascule /tmp/before      # at the old commit
    cargo build --release -p bascule           # at the new one
    python3 bench/ab.py /tmp/before target/release/bascule
    python3 bench/ab.py A B --rounds 5 --seconds 10 --header-filter

Needs: nginx, wrk (Debian packages), taskset.
"""

import sys
from pathlib import Path

import run


def main():
    def extra(parser):
        parser.add_argument("before", type=Path)
        parser.add_argument("after", type=Path)
        parser.add_argument("--header-filter", action="store_true",
                            help="route through the built-in headers filter too")
    args = run.arguments(__doc__, "results-ab.md", extra)
    run.require(("nginx", "wrk", "taskset"), __file__)
    binaries = {"before": args.before.resolve(), "after": args.after.resolve()}
    start = run.bascule("builtin:round-robin", args.header_filter)

    def measure(name, _start, workdir, backend_port, _binary, seconds):
        port = run.free_port()
        argv, env = start(workdir, port, backend_port, binaries[name])
        process = run.Process(name, argv, run.PROXY_CORE, workdir, env)
        try:
            run.wait_for_port(port)
            run.wrk(port, "/small", run.CONNECTIONS, 1)  # warm-up
            cpu_before = process.cpu_seconds()
            result = run.wrk(port, "/small", run.CONNECTIONS, seconds)
            cores = (process.cpu_seconds() - cpu_before) / seconds
            result["cpu_per_10k"] = cores / (result["rps"] / 10_000)
            return result
        finally:
            process.stop()

    results = run.interleaved_with_backend(args, {name: None for name in binaries}, None,
                                           measure)
    lines = [f"{args.rounds} interleaved round(s) of {args.seconds} s; medians; "
             "`GET /small`, 64 connections, one worker on its own core.", "",
             "| build | req/s | p50 / p99 ms | CPU cores per 10k req/s |", "|---|---|---|---|"]
    for name, path in binaries.items():
        r = results[name]
        lines.append(f"| {name} (`{path}`) | {run.median(r, 'rps'):,.0f} "
                     f"| {run.median(r, 'p50'):.2f} / {run.median(r, 'p99'):.2f} "
                     f"| {run.median(r, 'cpu_per_10k'):.4f} |")
    cost = (run.median(results["after"], "cpu_per_10k")
            / run.median(results["before"], "cpu_per_10k") - 1) * 100
    rps = (run.median(results["after"], "rps") / run.median(results["before"], "rps") - 1) * 100
    lines += ["", f"after / before: CPU per request {cost:+.1f}%, req/s {rps:+.1f}%"]
    report = "\n".join(lines)
    args.output.write_text(report + "\n")
    print(report, file=sys.stdout)


if __name__ == "__main__":
    main()
