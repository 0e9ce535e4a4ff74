"""The I/O half of health checks: one probe per check type, each returning a ``CheckResult``.

Why probes never raise for an unhealthy target: "connection refused" is an answer, not an error,
and the state machine needs it as data. Each probe enforces its own ``timeout_s`` (socket, HTTP
and subprocess timeouts) so that the runner's threads are bounded. Nothing here runs a shell.
``subprocess`` (0.5 MiB resident) is imported by the first systemd or command probe only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from infragent.agent.checks import procfs
from infragent.agent.checks.config import (
    CheckConfig,
    CommandCheck,
    HttpCheck,
    ProcessCheck,
    SystemdCheck,
    TcpCheck,
    format_status_ranges,
)
from infragent.agent.executor import find_program
from infragent.agent.http import HttpClient, HttpError, open_socket, split_url
from infragent.health import CheckResult

if TYPE_CHECKING:
    import subprocess

#: How much of an HTTP body a ``body_regex`` is matched against; a health page is small.
HTTP_BODY_CAP = 64 * 1024
#: ``sd_booted()``'s test: this directory exists only when systemd is PID 1.
SYSTEMD_RUN_DIR = Path("/run/systemd/system")


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def probe_http(check: HttpCheck) -> CheckResult:
    """Up when the status is expected and, if asked, the body matches; redirects are not followed.

    The agent's own client (``agent/http.py``), not httpx: a check costs what its request costs.
    No proxy is consulted (a health check targets this host or its network directly), the whole
    exchange, body included, must fit in ``timeout_s``, and at most ``HTTP_BODY_CAP`` bytes of
    the body are read.
    """
    start = time.perf_counter()
    origin, target = split_url(check.url)  # the config has checked the URL's form
    client = HttpClient(origin, timeout_s=check.timeout_s, body_cap=HTTP_BODY_CAP)
    try:
        response = client.request(check.method, target, headers={"Connection": "close"})
    except HttpError as exc:
        return CheckResult("down", _elapsed_ms(start), _transport_failure(exc, client, check.timeout_s))
    finally:
        client.close()
    latency = _elapsed_ms(start)
    status = response.status
    if not any(low <= status <= high for low, high in check.expect_status):
        return CheckResult(
            "down", latency, f"HTTP {status}, expected {format_status_ranges(check.expect_status)}"
        )
    if check.body_regex is not None:
        text = response.body.decode("utf-8", errors="replace")
        if re.search(check.body_regex, text) is None:
            return CheckResult("down", latency, f"body does not match /{check.body_regex}/")
    return CheckResult("up", latency)


def _transport_failure(exc: HttpError, client: HttpClient, timeout_s: float) -> str:
    """One line for a request that got no answer: a timeout, no connection, or a broken answer."""
    if isinstance(exc.__cause__, TimeoutError):
        return f"timeout after {timeout_s:g}s"
    if client.connects == 0:  # the connection itself failed: refused, unreachable, unknown name
        return f"ConnectError: {exc}"
    return f"{type(exc).__name__}: {exc}"


def probe_tcp(check: TcpCheck) -> CheckResult:
    """Up when a TCP connection opens within ``timeout_s``; we close it straight away.

    ``open_socket``, not ``socket.create_connection``: the latter hands getaddrinfo a ``str`` and so
    loads the ``idna`` codec with ``unicodedata`` (0.1 to 0.4 MiB resident) even for ``127.0.0.1``.
    """
    start = time.perf_counter()
    try:
        with open_socket(check.host, check.port, check.timeout_s):
            pass
    except TimeoutError:
        return CheckResult("down", _elapsed_ms(start), f"timeout after {check.timeout_s:g}s")
    except ConnectionRefusedError:
        return CheckResult("down", _elapsed_ms(start), f"connection refused by {check.host}:{check.port}")
    except OSError as exc:
        return CheckResult("down", _elapsed_ms(start), f"{check.host}:{check.port}: {exc}")
    return CheckResult("up", _elapsed_ms(start))


def probe_process(check: ProcessCheck, *, proc_root: Path = procfs.PROC_ROOT) -> CheckResult:
    """Up when a live (non-zombie) process has that name, or the pidfile's pid is alive.

    Read from ``/proc`` directly (``procfs.py``): a probe every 10 s costs well under a
    millisecond when the process runs, instead of psutil's full scan of every process.
    """
    start = time.perf_counter()
    if not (proc_root / "self").is_dir():  # not Linux, or /proc not mounted: nothing to look at
        return CheckResult("unavailable", None, f"no process table at {proc_root} on this host")
    pid, error = locate_process(check, proc_root=proc_root)
    if pid is None:
        return CheckResult("down", _elapsed_ms(start), error)
    return CheckResult("up", _elapsed_ms(start))


def locate_process(check: ProcessCheck, *, proc_root: Path = procfs.PROC_ROOT) -> tuple[int | None, str]:
    """The live pid the check is about, or None and why not (the words of a ``down`` result)."""
    if check.process_name is not None:
        found = procfs.find_process(check.process_name, proc_root)
        return found, "" if found is not None else f"no running process named {check.process_name!r}"
    assert check.pidfile is not None  # the config guarantees one of the two
    try:
        pid = int(Path(check.pidfile).read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return None, f"pidfile {check.pidfile} does not exist"
    except (OSError, ValueError) as exc:
        return None, f"pidfile {check.pidfile} unreadable: {exc}"
    if pid <= 0 or not procfs.is_alive(pid, proc_root):
        return None, f"pid {pid} from {check.pidfile} is not running"
    return pid, ""


def probe_systemd(
    check: SystemdCheck,
    *,
    which: Callable[[str], str | None] = find_program,
    run_dir: Path = SYSTEMD_RUN_DIR,
) -> CheckResult:
    """``systemctl is-active --quiet UNIT``: exit 0 is up, anything else down.

    ``unavailable`` when systemctl is missing or systemd is not PID 1 (containers, WSL): there
    the unit's state is unknowable, and calling it "down" would raise a false outage.
    """
    start = time.perf_counter()
    systemctl = which("systemctl")
    if systemctl is None:
        return CheckResult("unavailable", None, "systemctl not found on this host")
    if not run_dir.is_dir():
        return CheckResult("unavailable", None, f"systemd is not running on this host (no {run_dir})")
    import subprocess

    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell; the unit name is validated
            [systemctl, "is-active", "--quiet", check.unit],
            capture_output=True,
            timeout=check.timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return CheckResult("down", _elapsed_ms(start), f"systemctl timed out after {check.timeout_s:g}s")
    except OSError as exc:
        return CheckResult("unavailable", None, f"cannot run systemctl: {exc}")
    stderr = completed.stderr.decode("utf-8", errors="replace").strip()
    if "not been booted with systemd" in stderr or "Failed to connect to bus" in stderr:
        return CheckResult("unavailable", None, f"systemd is not reachable: {stderr.splitlines()[0]}")
    if completed.returncode == 0:
        return CheckResult("up", _elapsed_ms(start))
    return CheckResult(
        "down", _elapsed_ms(start), f"unit {check.unit} is not active (systemctl exit {completed.returncode})"
    )


def probe_command(check: CommandCheck) -> CheckResult:
    """Exit code 0 is up. On timeout the whole process group is killed, grandchildren included.

    Output goes to a temporary file, not a pipe: a chatty command cannot fill our memory, and a
    grandchild holding the pipe open cannot make us wait past the timeout.
    """
    start = time.perf_counter()
    import subprocess
    import tempfile  # with shutil, bz2 and lzma (0.4 MB resident): only command checks pay for it

    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(  # noqa: S603 - argv from the operator's config, no shell
                list(check.argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return CheckResult("down", _elapsed_ms(start), f"cannot run {check.argv[0]}: {exc}")
        try:
            returncode = process.wait(timeout=check.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return CheckResult("down", _elapsed_ms(start), f"timeout after {check.timeout_s:g}s")
        latency = _elapsed_ms(start)
        if returncode == 0:
            return CheckResult("up", latency)
        output.seek(0)
        text = output.read(check.output_cap_bytes).decode("utf-8", errors="replace").strip()
        return CheckResult("down", latency, f"exit {returncode}" + (f": {text}" if text else ""))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone: nothing left to kill
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_check(check: CheckConfig) -> CheckResult:
    """Dispatch to the probe for the check's type."""
    if isinstance(check, HttpCheck):
        return probe_http(check)
    if isinstance(check, TcpCheck):
        return probe_tcp(check)
    if isinstance(check, ProcessCheck):
        return probe_process(check)
    if isinstance(check, SystemdCheck):
        return probe_systemd(check)
    return probe_command(check)
