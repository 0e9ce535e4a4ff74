"""The children the fault suite starts: the service it breaks and heals, and the bounded hogs.

``service``: a tiny HTTP server (GET /health -> 200) that writes its pid to a pidfile. If the file
``crashloop`` exists in its state dir when it starts, it dies 0.3 s later (a crash loop: every
restart dies again within 1 s). Started by the suite at first and by the agent's ``restart``
action after that, always with the same argv.

``cpu``: busy loops on N processes for at most S seconds. ``leak``: allocates and touches memory
in steps up to a cap, under an address-space limit (``RLIMIT_AS``), then holds it for S seconds.
``fill``: writes a file of N bytes (``RLIMIT_FSIZE`` caps it), then exits.
Every child bounds itself: a suite killed with SIGKILL leaves nothing running for long.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200 if self.path in ("/", "/health") else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(port: int, pidfile: Path, state: Path, lifetime_s: float) -> None:
    class _Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    server = _Server(("127.0.0.1", port), _Handler)
    tmp = pidfile.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(pidfile)
    if (state / "crashloop").exists():
        threading.Timer(0.3, lambda: os._exit(3)).start()
    # bounded: a service orphaned by a killed suite stops by itself
    threading.Timer(lifetime_s, lambda: os._exit(0)).start()
    server.serve_forever()


def write_pid(pidfile: Path | None) -> None:
    if pidfile is not None:
        tmp = pidfile.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(pidfile)


def cpu(workers: int, seconds: float) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (int(seconds * workers) + 5, int(seconds * workers) + 10))
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            _spin(seconds)
            os._exit(0)
        children.append(pid)
    _spin(seconds)
    for pid in children:
        os.waitpid(pid, 0)


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


def leak(cap_mib: int, step_mib: int, hold_s: float) -> None:
    limit = (cap_mib + 128) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    blocks = []
    for _ in range(cap_mib // step_mib):
        block = bytearray(step_mib * 1024 * 1024)
        block[::4096] = b"\x01" * len(range(0, len(block), 4096))  # every page touched: resident
        blocks.append(block)
        time.sleep(0.05)
    time.sleep(hold_s)


def fill(path: Path, size: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, size + 4096))
    chunk = b"\0" * (1 << 20)
    with path.open("wb") as f:
        written = 0
        while written < size:
            f.write(chunk[: min(len(chunk), size - written)])
            written += min(len(chunk), size - written)
        f.flush()
        os.fsync(f.fileno())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("service")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--pidfile", type=Path, required=True)
    s.add_argument("--state", type=Path, required=True)
    s.add_argument("--lifetime", type=float, default=900.0)
    c = sub.add_parser("cpu")
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--seconds", type=float, default=60.0)
    c.add_argument("--pidfile", type=Path)
    m = sub.add_parser("leak")
    m.add_argument("--cap-mib", type=int, default=1024)
    m.add_argument("--step-mib", type=int, default=64)
    m.add_argument("--hold", type=float, default=60.0)
    m.add_argument("--pidfile", type=Path)
    f = sub.add_parser("fill")
    f.add_argument("--path", type=Path, required=True)
    f.add_argument("--size", type=int, required=True)
    args = parser.parse_args(argv)
    if args.what == "service":
        serve(args.port, args.pidfile, args.state, args.lifetime)
    elif args.what == "cpu":
        write_pid(args.pidfile)
        cpu(args.workers, args.seconds)
    elif args.what == "leak":
        write_pid(args.pidfile)
        leak(args.cap_mib, args.step_mib, args.hold)
    else:
        fill(args.path, args.size)
    sys.exit(0)


if __name__ == "__main__":
    main()
