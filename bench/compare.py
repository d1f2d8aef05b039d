#!/usr/bin/env python3
"""Two Bascule builds side by side: the current tree against a baseline binary.

    python3 bench/compare.py --baseline PATH/TO/OLD/bascule   # 3 rounds of 10 s
    python3 bench/compare.py --baseline PATH --quick            # 1 round of 3 s
    python3 bench/compare.py --baseline OLD --current NEW --no-ramp --rounds 5 --seconds 8

Measures, interleaved (each round runs the baseline, then the current build):
1. `bench/run.py`'s scenarios for `builtin:round-robin`: small responses at
   64 connections (req/s, p50, p99, CPU per 10k req/s), 4 KiB, one connection.
2. A slow-start ramp over 1,000 backends with `builtin:consistent-hash`:
   p99 at 64 connections in steady state, then during the ramp that a reload
   adding the 1,000th backend starts (`slow-start = "10s"`, a new backend set
   every 500 ms, each one a ring of 160,000 virtual nodes to rebuild).

Same setup as run.py: wrk and the NGINX backend on core 0, the proxy alone
on core 1 with one worker. Needs nginx, wrk, taskset; the current build is
made here (release) unless `--current` names a binary. `--no-ramp` measures
the request scenarios only, and prints the CPU cost per request of the
current build over the baseline.
"""

import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared measuring code)

RAMP_BACKENDS = 1000
RAMP_WINDOW_S = 10


def ramp_config(port, backend_port, backends):
    # One NGINX address behind 1,000 names: the ring hashes names, so the
    # table is as large as with 1,000 machines.
    listed = ",\n  ".join(
        f'{{ name = "b{i}", address = "127.0.0.1:{backend_port}" }}' for i in range(backends))
    return f"""
[[listeners]]
name = "bench"
address = "127.0.0.1:{port}"

  [[listeners.routes]]
  pool = "ring"

[pools.ring]
balancer = "builtin:consistent-hash"
slow-start = "{RAMP_WINDOW_S}s"
backends = [
  {listed}
]
"""


def measure_ramp(name, binary, workdir, backend_port, seconds):
    port = run.free_port()
    conf = workdir / f"ramp-{name}.toml"
    conf.write_text(ramp_config(port, backend_port, RAMP_BACKENDS - 1))
    process = run.Process(f"ramp-{name}", [str(binary), "--workers", "1", "run", "-c", str(conf)],
                          run.PROXY_CORE, workdir, {"RUST_LOG": "error"})
    try:
        run.wait_for_port(port)
        run.wrk(port, "/small", run.CONNECTIONS, 1)  # warm-up
        steady = run.wrk(port, "/small", run.CONNECTIONS, seconds)
        conf.write_text(ramp_config(port, backend_port, RAMP_BACKENDS))
        process.proc.send_signal(signal.SIGHUP)
        # The ramp lasts RAMP_WINDOW_S; measure inside it.
        ramping = run.wrk(port, "/small", run.CONNECTIONS, min(seconds, RAMP_WINDOW_S - 1))
        return {"steady": steady, "ramping": ramping}
    finally:
        process.stop()


def main():
    def options(parser):
        parser.add_argument("--baseline", type=Path, required=True,
                            help="a bascule binary built from the tree to compare against")
        parser.add_argument("--current", type=Path,
                            help="the binary to compare (default: build the tree)")
        parser.add_argument("--no-ramp", action="store_true",
                            help="skip the slow-start ramp scenario")
    args = run.arguments(__doc__, "results-compare.md", options)
    baseline = args.baseline.resolve()
    if not baseline.is_file():
        sys.exit(f"bench: no bascule binary at {baseline}")
    run.require(("nginx", "wrk", "taskset"), __file__)
    current = args.current.resolve() if args.current else run.build_bascule()
    builds = {"baseline": baseline, "current": current}
    start = run.bascule("builtin:round-robin")

    whole, ramps = {n: [] for n in builds}, {n: [] for n in builds}
    with tempfile.TemporaryDirectory(prefix="bascule-compare-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        backend, backend_port = run.start_backend(workdir)
        try:
            for round_number in range(1, args.rounds + 1):
                print(f"round {round_number}/{args.rounds}", file=sys.stderr)
                for name, binary in builds.items():
                    print(f"  {name}", file=sys.stderr)
                    whole[name].append(run.measure_proxy(
                        f"bascule-{name}", start, workdir, backend_port, binary, args.seconds))
                    if not args.no_ramp:
                        ramps[name].append(
                            measure_ramp(name, binary, workdir, backend_port, args.seconds))
        finally:
            backend.stop()

    med = run.median
    lines = [
        f"{args.rounds} interleaved round(s) of {args.seconds} s; medians. wrk and the NGINX "
        f"backend on core {run.LOAD_CORE}, bascule alone on core {run.PROXY_CORE}, one worker.",
        "",
        "| build | small req/s | small p50 / p99 ms | CPU cores per 10k req/s | 4 KiB req/s "
        "| 1 conn p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in whole.items():
        lines.append(
            f"| {name} | {med(r, 'small', 'rps'):,.0f} "
            f"| {med(r, 'small', 'p50'):.2f} / {med(r, 'small', 'p99'):.2f} "
            f"| {med(r, 'small', 'cpu_per_10k'):.3f} | {med(r, '4k', 'rps'):,.0f} "
            f"| {med(r, '1 conn', 'p50'):.3f} / {med(r, '1 conn', 'p99'):.3f} |")
    cost = med(whole["current"], "small", "cpu_per_10k") / med(
        whole["baseline"], "small", "cpu_per_10k") - 1
    lines += ["", f"current / baseline, CPU per small request: {cost * 100:+.1f}%"]
    if args.no_ramp:
        ramps = {}
    else:
        lines += [
        "",
        f"Slow-start ramp over {RAMP_BACKENDS} backends, `builtin:consistent-hash`, "
        f"64 connections:",
        "",
        "| build | steady req/s | steady p99 ms | ramping req/s | ramping p99 ms |",
        "|---|---|---|---|---|",
        ]
    for name, r in ramps.items():
        lines.append(
            f"| {name} | {med(r, 'steady', 'rps'):,.0f} | {med(r, 'steady', 'p99'):.2f} "
            f"| {med(r, 'ramping', 'rps'):,.0f} | {med(r, 'ramping', 'p99'):.2f} |")
    lines += ["", f"- baseline: {baseline}", f"- current: {current}"]
    report = "\n".join(lines)
    args.output.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
