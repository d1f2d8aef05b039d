#!/usr/bin/env python3
"""Memory per stalled reader: Bascule beside HAProxy and NGINX.

    python3 bench/stalled.py            # 3 rounds
    python3 bench/stalled.py --quick    # 1 round

1,000 clients each request a 4 MiB response through the proxy and never
read it. The table gives the proxy's resident memory growth per client
(VmRSS summed over its process tree, 3 s after the last request, minus the
figure before). Same pinning as run.py: the NGINX backend on core 0, the
proxy alone on core 1 with one worker. Needs nginx, haproxy, taskset; the
current bascule is built here (release).
"""

import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared measuring code)

CLIENTS = 1000
BODY = 4 * 1024 * 1024

PROXIES = {
    "bascule": run.bascule("builtin:round-robin"),
    "haproxy": run.haproxy,
    "nginx": run.nginx_proxy,
}


def stalled_kib_per_client(name, start, workdir, backend_port, binary):
    port = run.free_port()
    argv, env = start(workdir, port, backend_port, binary)
    process = run.Process(f"stalled-{name}", argv, run.PROXY_CORE, workdir, env)
    try:
        run.wait_for_port(port)
        run.wrk(port, "/small", 4, 1)  # warm-up: pools, allocator
        time.sleep(0.5)
        return run.rss_growth_per_client(process, lambda: stalled_client(port), CLIENTS, 3)
    finally:
        process.stop()


def stalled_client(port):
    """A client that asks for the big response and never reads it."""
    client = socket.create_connection(("127.0.0.1", port))
    # A small receive window, so that the proxy, not this kernel
    # buffer, holds what the client does not read.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\n\r\n")
    return client

def main():
    args = run.arguments(__doc__, "results-stalled.md")
    run.require(("nginx", "haproxy", "taskset"), __file__)
    binary = run.build_bascule()
    results = {name: [] for name in PROXIES}
    with tempfile.TemporaryDirectory(prefix="bascule-stalled-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        backend, backend_port = run.start_backend(workdir)
        (workdir / "docroot" / "big").write_bytes(b"x" * BODY)
        try:
            for round_number in range(1, args.rounds + 1):
                print(f"round {round_number}/{args.rounds}", file=sys.stderr)
                for name, start in PROXIES.items():
                    print(f"  {name}", file=sys.stderr)
                    results[name].append(
                        stalled_kib_per_client(name, start, workdir, backend_port, binary))
        finally:
            backend.stop()
    lines = [
        f"{CLIENTS} clients each requesting {BODY // (1024 * 1024)} MiB and reading nothing; "
        f"{args.rounds} round(s), medians; RSS growth of the proxy per client.",
        "",
        "| proxy | KiB per stalled reader | rounds |",
        "|---|---|---|",
    ]
    for name, values in results.items():
        rounds = " · ".join(f"{v:.0f}" for v in values)
        lines.append(f"| {name} | {statistics.median(values):.0f} | {rounds} |")
    report = "\n".join(lines)
    args.output.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
