#!/usr/bin/env python3
"""Plugins in each language: what a call costs, what an instance holds, and
what the whole proxy serves with each language's canary router.

    make examples                       # builds the routers and installs the toolchains
    python3 bench/languages.py          # 3 interleaved rounds of 10 s
    python3 bench/languages.py --quick  # 1 round of 3 s

1. Per call, offline (`bascule plugin run --bench`, release build, 10,000
   calls, median of the rounds): `select` of each canary router in
   examples/, `on-request` and `interpret` of the projects `bascule plugin
   new` makes in each language (the same logic in every language: a
   header checked and one set; a status judged); and each instance's
   linear memory after the calls.
2. Whole proxy: wrk (64 connections, small responses, `x-canary: 0` on
   every request, so each `select` reads a header) through Bascule with
   each router, proxy alone on core 1 with one worker, wrk and the NGINX
   backend on core 0; rounds interleaved across the languages. req/s,
   p99, CPU per 10k req/s, and each language's req/s over Rust's.

Needs what `make examples` installs, nginx, wrk and taskset. Writes
bench/results-languages.md.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared measuring code)

EXAMPLES = run.ROOT / "examples"
LANGUAGES = ("rust", "c", "python", "js")
NAMES = {"rust": "Rust", "c": "C", "python": "Python", "js": "JavaScript"}
ROUTERS = {lang: EXAMPLES / "canary-router" / lang / "canary_router.wasm" for lang in LANGUAGES}
TOOLS = Path.home() / ".cache" / "bascule" / "tools" / "bin"


def scaffolds(binary, workdir):
    """A `plugin new` filter and interpreter per language, built; their
    .wasm files by (language, kind)."""
    env = {"PATH": f"{TOOLS}:{os.environ['PATH']}", "CARGO_TARGET_DIR": str(run.ROOT / "target/examples"),
           "COMPONENTIZE_JS": str(EXAMPLES / "node_modules/.bin/componentize-js")}
    built = {}
    for lang in LANGUAGES:
        for kind in ("filter", "health"):
            name = f"bench-{kind}-{lang}"
            subprocess.run([str(binary), "plugin", "new", name, "--lang", lang, "--kind", kind,
                            "--dir", str(workdir)], check=True, capture_output=True)
            subprocess.run([str(workdir / name / "build.sh")], check=True, capture_output=True,
                           env={**os.environ, **env})
            built[(lang, kind)] = workdir / name / f"{name.replace('-', '_')}.wasm"
    return built


def offline_bench(binary, plugin, args):
    """`plugin run --bench`: (ns per call, instance KiB)."""
    out = subprocess.run([str(binary), "plugin", "run", str(plugin), *args, "--bench", "--quiet"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "RUST_LOG": "error"}).stdout
    found = re.search(r": (\d+) ns per call; instance memory (\d+) KiB", out)
    return float(found.group(1)), int(found.group(2))


def router_config(port, backend_port, router):
    return f"""
[[listeners]]
name = "bench"
address = "127.0.0.1:{port}"

  [[listeners.routes]]
  pool = "backend"

[pools.backend]
balancer = "{router}"
backends = [
  {{ name = "stable-1", address = "127.0.0.1:{backend_port}" }},
  {{ name = "stable-2", address = "127.0.0.1:{backend_port}" }},
  {{ name = "canary-1", address = "127.0.0.1:{backend_port}", metadata = {{ track = "canary" }} }},
]
"""


def measure_router(lang, workdir, backend_port, binary, seconds):
    port = run.free_port()
    conf = workdir / f"router-{lang}.toml"
    conf.write_text(router_config(port, backend_port, ROUTERS[lang]))
    process = run.Process(f"bascule-{lang}", [str(binary), "--workers", "1", "run", "-c", str(conf)],
                          run.PROXY_CORE, workdir, {"RUST_LOG": "error"})
    try:
        run.wait_for_port(port, timeout=120)  # a first compile of Python takes seconds
        headers = ("x-canary: 0",)
        run.wrk(port, "/small", run.CONNECTIONS, 1, headers)  # warm-up
        cpu_before = process.cpu_seconds()
        result = run.wrk(port, "/small", run.CONNECTIONS, seconds, headers)
        cores = (process.cpu_seconds() - cpu_before) / seconds
        result["cpu_per_10k"] = cores / (result["rps"] / 10_000) if result["rps"] else 0.0
        result["rss_mib"] = process.memory_kib("VmRSS") / 1024
        return result
    finally:
        process.stop()


def main():
    args = run.arguments(__doc__, "results-languages.md")
    run.require(("nginx", "wrk", "taskset"), __file__)
    missing = [str(path) for path in ROUTERS.values() if not path.exists()]
    if missing:
        sys.exit(f"bench: run `make examples` first ({', '.join(missing)} missing)")
    binary = run.build_bascule()
    canary = EXAMPLES / "canary-router"
    with tempfile.TemporaryDirectory(prefix="bascule-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        built = scaffolds(binary, workdir)
        probes = workdir / "probes.jsonl"
        probes.write_text('{"status": 200, "latency-ms": 3}\n')
        requests = workdir / "requests.jsonl"
        requests.write_text('{"path": "/", "headers": {"x-canary": "0"}}\n')
        calls = {lang: {"select": [], "on-request": [], "interpret": []} for lang in LANGUAGES}
        for round_number in range(args.rounds):
            print(f"offline round {round_number + 1}/{args.rounds}", file=sys.stderr)
            for lang in LANGUAGES:
                calls[lang]["select"].append(offline_bench(
                    binary, ROUTERS[lang],
                    ["--backends", str(canary / "backends.toml"), "--requests", str(requests)]))
                calls[lang]["on-request"].append(offline_bench(
                    binary, built[(lang, "filter")], ["--requests", str(requests)]))
                calls[lang]["interpret"].append(offline_bench(
                    binary, built[(lang, "health")], ["--probes", str(probes)]))

        backend, backend_port = run.start_backend(workdir)
        try:
            _, proxied = run.interleaved(
                args.rounds, {lang: None for lang in LANGUAGES}, lambda: None,
                lambda lang, _start: measure_router(lang, workdir, backend_port, binary,
                                                    args.seconds))
        finally:
            backend.stop()

    median = statistics.median
    lines = [
        f"Per call: `bascule plugin run --bench` (release build), 10,000 calls, median of "
        f"{args.rounds} round(s). Instance memory: the instance's linear memory after the calls.",
        "",
        "| language | `select` (canary router) | `on-request` (scaffold filter) "
        "| `interpret` (scaffold interpreter) | instance memory (router / filter / interpreter) |",
        "|---|---|---|---|---|",
    ]
    for lang in LANGUAGES:
        c = calls[lang]
        ns = {hook: median(v[0] for v in c[hook]) for hook in c}
        kib = {hook: median(v[1] for v in c[hook]) for hook in c}
        lines.append(
            f"| {NAMES[lang]} | {ns['select'] / 1000:.2f} µs | {ns['on-request'] / 1000:.2f} µs "
            f"| {ns['interpret'] / 1000:.2f} µs "
            f"| {kib['select'] / 1024:.1f} / {kib['on-request'] / 1024:.1f} / "
            f"{kib['interpret'] / 1024:.1f} MiB |")
    rust_rps = median(r["rps"] for r in proxied["rust"])
    lines += [
        "",
        f"Whole proxy: {args.rounds} interleaved round(s) of {args.seconds} s; medians. wrk "
        f"(64 connections, `x-canary: 0`) and the NGINX backend on core {run.LOAD_CORE}, "
        f"Bascule alone on core {run.PROXY_CORE} with one worker.",
        "",
        "| canary router | small req/s | p50 / p99 ms | CPU cores per 10k req/s | RSS MiB "
        "| req/s over Rust's | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    goals = {"rust": "–", "c": "≥ 0.97×", "python": "≥ 0.7×", "js": "≥ 0.5×"}
    for lang in LANGUAGES:
        r = proxied[lang]
        rps = median(x["rps"] for x in r)
        lines.append(
            f"| {NAMES[lang]} | {rps:,.0f} | {median(x['p50'] for x in r):.2f} / "
            f"{median(x['p99'] for x in r):.2f} | {median(x['cpu_per_10k'] for x in r):.3f} "
            f"| {median(x['rss_mib'] for x in r):.1f} | {rps / rust_rps:.3f}× | {goals[lang]} |")
    report = "\n".join(lines) + "\n\n" + run.versions(binary)
    args.output.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
