#!/usr/bin/env python3
"""Probe-driven health transitions per second: 1,000 backends, each probed
every second, each answering its health check alternately 200 and 503, with
both thresholds at 1, so that every probe is a transition.

    python3 bench/health.py                       # 1,000 backends, 1 s, 30 s
    python3 bench/health.py --interval 100ms --timeout 90ms --seconds 20

Bascule runs alone on core 1 with one worker (`--workers 1`: the probers of
the whole process share it); the backends are one asyncio process on core 0.
The table gives probes and transitions per second (from
`bascule_health_probes_total` and `bascule_backend_health_transitions_total`),
the CPU Bascule used per probe, and the share of one core it used. Needs
taskset; builds the release binary when missing (`--binary` to pick one).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared measuring code)

ROOT = run.ROOT


def serve_backends(count, ready):
    """Runs `count` flapping health endpoints; fills `ready` with ports."""

    async def main():
        async def handle(reader, writer, state):
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                writer.close()
                return
            state[0] = not state[0]
            status = b"200 OK" if state[0] else b"503 Service Unavailable"
            writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            try:
                await writer.drain()
            finally:
                writer.close()

        servers = []
        for _ in range(count):
            state = [False]
            server = await asyncio.start_server(
                lambda r, w, s=state: handle(r, w, s), "127.0.0.1", 0, backlog=64
            )
            servers.append(server)
        ready.extend(server.sockets[0].getsockname()[1] for server in servers)
        await asyncio.Event().wait()

    asyncio.run(main())


def metric_sum(admin, name):
    body = urllib.request.urlopen(f"http://{admin}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", type=int, default=1000)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--timeout", default="500ms", help="probe timeout, at most the interval")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--binary", default=str(ROOT / "target/release/bascule"))
    args = parser.parse_args()
    binary = Path(args.binary)
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "bascule"], cwd=ROOT, check=True)

    os.sched_setaffinity(0, {int(run.LOAD_CORE)})
    ports = []
    threading.Thread(target=serve_backends, args=(args.backends, ports), daemon=True).start()
    while len(ports) < args.backends:
        time.sleep(0.05)

    admin = f"127.0.0.1:{run.free_port()}"
    backends = ",\n  ".join(f'{{ name = "b{i}", address = "127.0.0.1:{port}" }}' for i, port in enumerate(ports))
    config = f"""
[[listeners]]
name = "web"
address = "127.0.0.1:{run.free_port()}"

  [[listeners.routes]]
  pool = "main"

[pools.main]
balancer = "builtin:round-robin"
backends = [
  {backends}
]

  [pools.main.health]
  interval = "{args.interval}"
  timeout = "{args.timeout}"
  healthy-threshold = 1
  unhealthy-threshold = 1

[admin]
address = "{admin}"
"""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = workdir / "health.toml"
        path.write_text(config)
        proxy = run.Process("bascule", [str(binary), "--workers", "1", "run", "-c", str(path)],
                            run.PROXY_CORE, workdir, {"RUST_LOG": "error"})
        if os.environ.get("PERF"):
            subprocess.Popen(["perf", "record", "-g", "-o", "/tmp/health.perf", "-p", str(proxy.pid), "--", "sleep", "15"])
        try:
            run.wait_for_port(int(admin.rsplit(":", 1)[1]))
            time.sleep(5)  # every prober past its first, jittered, probe
            start = time.monotonic()
            probes0 = metric_sum(admin, "bascule_health_probes_total")
            changes0 = metric_sum(admin, "bascule_backend_health_transitions_total")
            cpu0 = proxy.cpu_seconds()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - start
            probes = metric_sum(admin, "bascule_health_probes_total") - probes0
            changes = metric_sum(admin, "bascule_backend_health_transitions_total") - changes0
            cpu = proxy.cpu_seconds() - cpu0
            rss = proxy.memory_kib("VmRSS")
        finally:
            proxy.stop()
    print(f"| backends | interval | probes/s | transitions/s | CPU per probe | one core | RSS |")
    print(f"|---|---|---|---|---|---|---|")
    print(
        f"| {args.backends} | {args.interval} | {probes / elapsed:,.0f} | {changes / elapsed:,.0f} | "
        f"{cpu / max(probes, 1) * 1e6:.1f} µs | {cpu / elapsed * 100:.1f}% | {rss / 1024:.1f} MiB |"
    )


if __name__ == "__main__":
    sys.exit(main())
