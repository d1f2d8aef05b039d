#!/usr/bin/env python3
"""Memory per idle connection: Bascule beside HAProxy and NGINX.

    python3 bench/idle.py              # 3 rounds, 5,000 connections
    python3 bench/idle.py --quick      # 1 round

Two scenarios, each proxy alone on core 1 with one worker:
- **keep-alive**: 5,000 HTTP/1.1 clients each send one request through the
  proxy (answered by an NGINX backend), read the answer, and stay connected
  without sending anything more;
- **tcp**: 5,000 TCP connections through the proxy (`mode = "tcp"`, HAProxy
  `mode tcp`, NGINX `stream`) to a backend that accepts and never writes,
  each idle after the connect;
- **websocket**: 5,000 WebSocket handshakes through the proxy (Bascule's
  default `upgrades`, HAProxy's tunnel mode, NGINX with `Upgrade` and
  `Connection` passed on) to a backend that answers `101` and holds the
  connection, each idle after its `101`.

The table gives the proxy's resident memory growth per connection (VmRSS
summed over its process tree, 2 s after the last connection, minus the
figure before the first one, after a warm-up). Kernel socket memory is
not in it: it is the same for every proxy. Needs nginx (with the stream
module), haproxy, taskset; the current bascule is built here (release).
"""

import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the shared measuring code)

CONNECTIONS = 5000
NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


# --- the proxies -------------------------------------------------------------

def bascule(mode):
    def start(workdir, port, backend_port, binary):
        conf = workdir / f"bascule-idle-{mode}.toml"
        conf.write_text(f"""
[[listeners]]
name = "idle"
address = "127.0.0.1:{port}"
mode = "{mode}"

  [[listeners.routes]]
  pool = "backend"

[pools.backend]
balancer = "builtin:round-robin"
backends = [{{ address = "127.0.0.1:{backend_port}" }}]
""")
        return [str(binary), "--workers", "1", "run", "-c", str(conf)], {"RUST_LOG": "error"}
    return start


def nginx_websocket(workdir, port, backend_port, _binary):
    conf = workdir / "nginx-idle-websocket.conf"
    body = f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 120s;
        }}
    }}"""
    conf.write_text(run.nginx_conf(workdir, "nginx-idle-websocket", body, connections=16384))
    return ["nginx", "-c", str(conf), "-p", str(workdir)], {}


def haproxy(mode):
    def start(workdir, port, backend_port, _binary):
        conf = workdir / f"haproxy-idle-{mode}.cfg"
        conf.write_text(f"""
global
    nbthread 1
    maxconn 9000
defaults
    mode {mode}
    {'option http-keep-alive' if mode == 'http' else ''}
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    {'timeout http-keep-alive 120s' if mode == 'http' else ''}
    {'timeout tunnel 120s' if mode == 'http' else ''}
frontend idle
    bind 127.0.0.1:{port}
    default_backend backend
backend backend
    {'http-reuse always' if mode == 'http' else ''}
    server s1 127.0.0.1:{backend_port}
""")
        return ["haproxy", "-db", "-f", str(conf)], {}
    return start


def nginx(mode):
    def start(workdir, port, backend_port, _binary):
        conf = workdir / f"nginx-idle-{mode}.conf"
        name = f"nginx-idle-{mode}"
        if mode == "http":
            body = "    keepalive_timeout 120s;\n" + run.nginx_proxy_server(port, backend_port)
            conf.write_text(run.nginx_conf(workdir, name, body, connections=16384))
        else:
            conf.write_text(f"""
load_module {NGINX_STREAM_MODULE};
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {workdir}/{name}.pid;
error_log stderr error;
events {{ worker_connections 16384; }}
stream {{ server {{ listen 127.0.0.1:{port}; proxy_pass 127.0.0.1:{backend_port}; proxy_timeout 120s; }} }}
""")
        return ["nginx", "-c", str(conf), "-p", str(workdir)], {}
    return start


PROXIES = {
    "keep-alive": {
        "bascule": bascule("http"),
        "haproxy": haproxy("http"),
        "nginx": nginx("http"),
    },
    "tcp": {
        "bascule": bascule("tcp"),
        "haproxy": haproxy("tcp"),
        "nginx stream": nginx("tcp"),
    },
    "websocket": {
        "bascule": bascule("http"),
        "haproxy": haproxy("http"),
        "nginx": nginx_websocket,
    },
}


# --- a TCP backend that accepts and holds -----------------------------------

class SilentBackend:
    """Accepts connections and keeps them open without a byte."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=8192)
        self.port = self.listener.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.greet(connection)
            self.held.append(connection)

    def greet(self, connection):
        """What a new connection gets before it is held: nothing."""

    def release(self):
        for connection in self.held:
            connection.close()
        self.held.clear()

    def stop(self):
        self.listener.close()
        self.release()


class WebSocketBackend(SilentBackend):
    """Answers each WebSocket handshake with `101` and holds the connection."""

    def greet(self, connection):
        import base64
        import hashlib
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = connection.recv(4096)
            if not chunk:
                break
            head += chunk
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        connection.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


# --- measuring ---------------------------------------------------------------

def open_exchanging(port, request, complete, status):
    """A connection to `port` that sent `request` and read an answer up to
    where `complete(answer)` holds, starting with `status`."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(request)
    answer = b""
    while not complete(answer):
        chunk = client.recv(4096)
        if not chunk:
            raise RuntimeError(f"connection closed after {answer!r}")
        answer += chunk
    if not answer.startswith(status):
        raise RuntimeError(f"proxy answered {answer[:40]!r}")
    return client


def open_keep_alive(port):
    return open_exchanging(port, b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n",
                           lambda answer: answer.endswith(b"ok\n"), b"HTTP/1.1 200")


def open_websocket(port):
    handshake = (b"GET /chat HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    return open_exchanging(port, handshake, lambda answer: b"\r\n\r\n" in answer,
                           b"HTTP/1.1 101")


def open_tcp(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def kib_per_connection(scenario, name, start, workdir, backend_port, binary):
    port = run.free_port()
    argv, env = start(workdir, port, backend_port, binary)
    process = run.Process(f"idle-{scenario}-{name}".replace(" ", "-"), argv, run.PROXY_CORE,
                          workdir, env)
    opener = {"keep-alive": open_keep_alive, "tcp": open_tcp, "websocket": open_websocket}[scenario]
    try:
        run.wait_for_port(port)
        for _ in range(50):  # warm-up: pools, allocator
            opener(port).close()
        time.sleep(1.0)
        return run.rss_growth_per_client(process, lambda: opener(port), CONNECTIONS, 2.0)
    finally:
        process.stop()

def main():
    args = run.arguments(__doc__, "results-idle.md", lambda parser: parser.add_argument(
        "--only", choices=list(PROXIES), help="one scenario"))
    run.require(("nginx", "haproxy", "taskset"), __file__)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 3 * CONNECTIONS:
        sys.exit(f"bench: needs {3 * CONNECTIONS} open files, the limit is {hard}")
    binary = run.build_bascule()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bascule-idle-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        http_backend, http_port = run.start_backend(workdir)
        tcp_backend = SilentBackend()
        ws_backend = WebSocketBackend()
        try:
            for _ in range(args.rounds):
                for scenario, proxies in PROXIES.items():
                    if args.only and scenario != args.only:
                        continue
                    backend_port = {"keep-alive": http_port, "tcp": tcp_backend.port,
                                    "websocket": ws_backend.port}[scenario]
                    for name, start in proxies.items():
                        kib = kib_per_connection(scenario, name, start, workdir, backend_port,
                                                 binary)
                        rows.setdefault((scenario, name), []).append(kib)
                        tcp_backend.release()
                        ws_backend.release()
                        print(f"{scenario:10} {name:14} {kib:6.1f} KiB per connection",
                              flush=True)
        finally:
            tcp_backend.stop()
            ws_backend.stop()
            http_backend.stop()
    lines = [f"{args.rounds} round(s), {CONNECTIONS:,} idle connections per proxy; median "
             "VmRSS growth per connection. The proxy alone on core 1 with one worker.", "",
             "| scenario | proxy | KiB per idle connection |", "|---|---|---|"]
    for (scenario, name), values in rows.items():
        lines.append(f"| {scenario} | {name} | {statistics.median(values):.1f} |")
    report = "\n".join(lines)
    args.output.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
