"""Run Debian's single-node VictoriaMetrics on loopback, in a temp dir, for remote-write tests.

Why the real binary: the exporter's job is to be accepted by a real Prometheus-compatible store
(protobuf framing, snappy block format, label rules, status codes), which only a real one checks.

Why these flags, all checked against ``victoria-metrics -help`` of 1.79.5 (the Debian package):

* ``-httpListenAddr=127.0.0.1:0``: loopback only (the default ``:8428`` is every interface), on a
  port the kernel picks, so no other process can take it between a choice and the bind. 1.79 binds
  port 0 but logs the address it was given (``starting http server at http://127.0.0.1:0/``), not
  the port it got, so the port is read from the process's own listening socket (psutil, i.e.
  ``/proc/<pid>/net/tcp``); the HTTP listener is its only TCP listener with the flags below.
* ``-storageDataPath`` in the test's temp dir, ``-retentionPeriod=1d``: nothing outlives the test.
* ``-search.latencyOffset=0``: by default the newest 30 s are hidden from ``query_range``.
* ``-search.disableCache``: a query must see what the test just wrote, not a cached answer.
* ``-memory.allowedBytes=256MiB``: cache sizing, so a CI box is not told it may use 60 % of RAM.
* ``-selfScrapeInterval=0``: self-scraping off (the default, stated so it stays off).
* ``-envflag.enable`` is left false (the default), so no ``INFRAGENT_``/other variable changes a flag.

Outbound connections: 1.79 makes none unless told to — it has no telemetry or update check; it
connects out only for ``-promscrape.config`` targets, a URL given as ``-relabelConfig``, and
``-vmalert.proxyURL``, none of which is set; the Graphite/InfluxDB/OpenTSDB listeners stay off
(empty addresses). A run shows one socket: the loopback listener.

Stopped by its PID (``Popen.terminate``, SIGTERM, then SIGKILL after 10 s) when the context exits.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

BINARY = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
MISSING_REASON = (
    f"VictoriaMetrics not installed ({BINARY} missing): "
    "apt-get install victoria-metrics (.ci/run installs it in CI)"
)
FLAGS = (
    "-retentionPeriod=1d",
    "-search.latencyOffset=0",
    "-search.disableCache",
    "-memory.allowedBytes=256MiB",
    "-selfScrapeInterval=0",
    "-loggerLevel=WARN",
)


def available() -> bool:
    return Path(BINARY).is_file()


@dataclass(frozen=True)
class Victoria:
    """A running instance: ``url`` is its base URL; ``write_url`` takes remote write 1.0."""

    url: str
    pid: int
    data_dir: Path

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def force_flush(self) -> None:
        """Make everything received so far searchable (it is buffered for up to a second otherwise)."""
        with httpx.Client(timeout=10) as client:
            client.get(f"{self.url}/internal/force_flush").raise_for_status()

    def export(self, match: str) -> list[dict[str, Any]]:
        """``/api/v1/export``: every stored series matching ``match``, all samples, one dict each."""
        with httpx.Client(timeout=10) as client:
            response = client.post(f"{self.url}/api/v1/export", data={"match[]": match})
        response.raise_for_status()
        return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]

    def query_range(self, query: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
        """``/api/v1/query_range`` result (the ``data.result`` list)."""
        with httpx.Client(timeout=10) as client:
            response = client.post(
                f"{self.url}/api/v1/query_range",
                data={"query": query, "start": str(start), "end": str(end), "step": step},
            )
        response.raise_for_status()
        result: list[dict[str, Any]] = orjson.loads(response.content)["data"]["result"]
        return result


def _listening_port(proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> int:
    """The loopback port ``proc`` listens on, once it does (its one TCP listener, see above)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"VictoriaMetrics exited with {proc.returncode}; log:\n{log.read_text()}")
        try:
            sockets = psutil.Process(proc.pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue  # exited just now: the poll above says how
        listening = [c for c in sockets if c.status == psutil.CONN_LISTEN and c.laddr.ip == "127.0.0.1"]
        if listening:
            return int(listening[0].laddr.port)
        time.sleep(0.02)
    raise RuntimeError(f"VictoriaMetrics did not listen in {timeout_s}s; log:\n{log.read_text()}")


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    """Return once ``/health`` answers OK; raise if the process exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"VictoriaMetrics exited with {proc.returncode}; log:\n{log.read_text()}")
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # listening, not serving yet
            time.sleep(0.02)
    raise RuntimeError(f"VictoriaMetrics did not become healthy in {timeout_s}s; log:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def run_victoria(tmp: Path, timeout_s: float = 30.0) -> Iterator[Victoria]:
    """Start VictoriaMetrics under ``tmp`` on a port of the kernel's choosing and yield it; stop it
    by its PID on exit."""
    data_dir = tmp / "victoria-data"
    log = tmp / "victoria.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BINARY, "-httpListenAddr=127.0.0.1:0", f"-storageDataPath={data_dir}", *FLAGS],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{_listening_port(proc, log, timeout_s)}"
        _wait_healthy(proc, url, log, timeout_s)
        yield Victoria(url=url, pid=proc.pid, data_dir=data_dir)
    finally:
        _stop(proc)
