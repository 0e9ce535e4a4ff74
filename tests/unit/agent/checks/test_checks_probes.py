"""Every probe against real things on loopback: a uvicorn server, sockets, processes, commands."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from infragent.agent.checks import CheckResult, parse_check, run_check
from infragent.agent.checks.config import SystemdCheck
from infragent.agent.checks.probes import HTTP_BODY_CAP, probe_systemd
from infragent.agent.http import split_url
from support.servers import serve


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    release = threading.Event()

    async def ok(request: Request) -> Response:
        return PlainTextResponse("status: healthy")

    async def root(request: Request) -> Response:
        return PlainTextResponse(f"root {request.url.query}")

    async def big(request: Request) -> Response:
        # Past the probe's body cap: the marker at the end must never be read.
        return PlainTextResponse("x" * (2 * HTTP_BODY_CAP) + "END")

    async def chunked(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b"y" * 4096
            yield b"END"

        return StreamingResponse(parts())

    async def broken(request: Request) -> Response:
        return PlainTextResponse("oops", status_code=503)

    async def slow(request: Request) -> Response:
        # Slow until the test module ends, so the probe's timeout is what ends the request.
        while not release.is_set():
            await asyncio.sleep(0.02)
        return PlainTextResponse("late")

    app = Starlette(
        routes=[
            Route("/", root),
            Route("/ok", ok),
            Route("/broken", broken),
            Route("/slow", slow),
            Route("/big", big),
            Route("/chunked", chunked),
        ]
    )
    with serve(app) as url:
        yield url
        release.set()


def closed_port() -> int:
    """A loopback port nobody listens on: bind to get a free one, then close it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def check(**raw: object) -> CheckResult:
    return run_check(parse_check({"name": "t", **raw}))


def systemd_check(unit: str) -> SystemdCheck:
    parsed = parse_check({"type": "systemd", "name": "t", "unit": unit})
    assert isinstance(parsed, SystemdCheck)
    return parsed


def test_http_up(base_url: str) -> None:
    result = check(type="http", url=f"{base_url}/ok", body_regex=r"status: \w+")
    assert result.status == "up", result.error
    assert result.latency_ms is not None and result.latency_ms > 0


def test_http_unexpected_status(base_url: str) -> None:
    result = check(type="http", url=f"{base_url}/broken")
    assert (result.status, result.error) == ("down", "HTTP 503, expected 200-399")
    assert check(type="http", url=f"{base_url}/broken", expect_status="503").status == "up"


def test_http_body_mismatch(base_url: str) -> None:
    result = check(type="http", url=f"{base_url}/ok", body_regex="^ready$")
    assert (result.status, result.error) == ("down", "body does not match /^ready$/")


def test_http_timeout(base_url: str) -> None:
    started = time.monotonic()
    result = check(type="http", url=f"{base_url}/slow", timeout_s=0.3)
    assert (result.status, result.error) == ("down", "timeout after 0.3s")
    assert time.monotonic() - started < 2.0


def test_http_connection_refused() -> None:
    result = check(type="http", url=f"http://127.0.0.1:{closed_port()}/")
    assert result.status == "down"
    assert result.error is not None and result.error.startswith("ConnectError")


def test_http_root_url_and_query(base_url: str) -> None:
    """A URL with no path asks for ``/``; the query goes with it, the fragment never does."""
    assert check(type="http", url=base_url, body_regex="^root $").status == "up"
    assert check(type="http", url=f"{base_url}?probe=1#frag", body_regex="^root probe=1$").status == "up"


@pytest.mark.parametrize("path", ["/big", "/chunked"])
def test_http_body_is_read_up_to_the_cap_only(base_url: str, path: str) -> None:
    """A huge health page costs at most the cap: the regex sees its start, never what follows."""
    assert check(type="http", url=f"{base_url}{path}", body_regex="^[xy]{100}").status == "up"
    beyond = check(type="http", url=f"{base_url}{path}", body_regex="END")
    assert (beyond.status, beyond.error) == ("down", "body does not match /END/")


@pytest.mark.parametrize(
    ("url", "origin", "target"),
    [
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080), "/"),
        ("http://h/a/b?c=1#frag", ("http", "h", 80), "/a/b?c=1"),
        ("https://[::1]:9/x", ("https", "::1", 9), "/x"),
        ("http://h?q", ("http", "h", 80), "/?q"),
        ("http://h/a b\r\nX: y", ("http", "h", 80), "/a%20b%0D%0AX:%20y"),
    ],
)
def test_split_url(url: str, origin: tuple[str, str, int], target: str) -> None:
    parsed, path = split_url(url)
    assert ((parsed.scheme, parsed.host, parsed.port), path) == (origin, target)


def test_tcp_open_and_closed() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert check(type="tcp", host="127.0.0.1", port=port).status == "up"
    closed = closed_port()
    result = check(type="tcp", host="127.0.0.1", port=closed)
    assert (result.status, result.error) == ("down", f"connection refused by 127.0.0.1:{closed}")


def test_process_by_name() -> None:
    assert check(type="process", process_name=psutil.Process().name()).status == "up"
    result = check(type="process", process_name="no-such-process-infragent")
    assert (result.status, result.error) == ("down", "no running process named 'no-such-process-infragent'")


def test_process_by_pidfile(tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile.write_text(f"{child.pid}\n")
        assert check(type="process", pidfile=str(pidfile)).status == "up"
    finally:
        child.kill()
        child.wait()
    result = check(type="process", pidfile=str(pidfile))
    assert (result.status, result.error) == ("down", f"pid {child.pid} from {pidfile} is not running")


def test_process_pidfile_missing_or_garbage(tmp_path: Path) -> None:
    missing = check(type="process", pidfile=str(tmp_path / "none.pid"))
    assert missing.status == "down" and "does not exist" in (missing.error or "")
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not a pid")
    unreadable = check(type="process", pidfile=str(garbage))
    assert unreadable.status == "down" and "unreadable" in (unreadable.error or "")


def test_command_exit_codes() -> None:
    assert check(type="command", argv=["true"]).status == "up"
    failed = check(type="command", argv=["false"])
    assert (failed.status, failed.error) == ("down", "exit 1")
    script = "import sys; print('disk is full' * 3); sys.exit(2)"
    result = check(type="command", argv=[sys.executable, "-c", script], output_cap_bytes=11)
    assert (result.status, result.error) == ("down", "exit 2: disk is ful")


def test_command_timeout_kills_and_returns_quickly() -> None:
    started = time.monotonic()
    result = check(type="command", argv=["sleep", "5"], timeout_s=0.5)
    assert (result.status, result.error) == ("down", "timeout after 0.5s")
    assert time.monotonic() - started < 2.0


def test_command_not_found() -> None:
    result = check(type="command", argv=["/nonexistent/infragent-check"])
    assert result.status == "down" and "cannot run /nonexistent/infragent-check" in (result.error or "")


def test_systemd_on_this_host_is_clear_about_what_it_cannot_know() -> None:
    result = check(type="systemd", unit="ssh.service")
    if os.path.isdir("/run/systemd/system"):
        assert result.status in {"up", "down"}
    else:
        assert result.status == "unavailable"
        assert result.error == "systemd is not running on this host (no /run/systemd/system)"


def test_systemd_without_systemctl() -> None:
    unit = systemd_check("ssh.service")
    result = probe_systemd(unit, which=lambda _: None)
    assert (result.status, result.error) == ("unavailable", "systemctl not found on this host")


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs the systemctl binary")
def test_systemd_real_systemctl_call(tmp_path: Path) -> None:
    """Pretend systemd is booted so that systemctl really runs; without a bus it must not say "up"."""
    unit = systemd_check("infragent-no-such.service")
    result = probe_systemd(unit, run_dir=tmp_path)
    assert result.status in {"down", "unavailable"}
    assert result.error
    if not os.path.isdir("/run/systemd/system"):
        assert result.status == "unavailable" and "systemd is not reachable" in result.error


def test_command_timeout_kills_grandchildren_too(tmp_path: Path) -> None:
    """A wrapper script that forks must not leave its child running (or hold us past the timeout)."""
    pid_path = tmp_path / "grandchild.pid"
    script = (
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"pathlib.Path({str(pid_path)!r}).write_text(str(child.pid))\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    result = check(type="command", argv=[sys.executable, "-c", script], timeout_s=1.0)
    assert (result.status, result.error) == ("down", "timeout after 1s")
    assert time.monotonic() - started < 3.0
    grandchild = int(pid_path.read_text())
    deadline = time.monotonic() + 5.0
    while True:  # killed; it may linger as a zombie until its new parent reaps it
        try:
            if psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        assert time.monotonic() < deadline, "grandchild survived the timeout"
        time.sleep(0.01)
