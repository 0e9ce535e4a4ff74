"""Running a rendered action: no shell, a clean environment, a deadline and an output cap.

Why these rules, each of which closes a door the allowlist alone leaves open:

* **No shell** (``shell=False`` everywhere, argv passed as a list): a parameter is one argv element
  whatever characters it holds; there is no second parser to trick.
* **Program resolution**: an absolute ``argv[0]`` is used as is; a bare name (only ``systemctl``,
  written by ``allowlist.render``) is looked up with ``find_program`` on a fixed system ``PATH``,
  never the agent's inherited one — so a writable directory early in someone's ``PATH`` cannot
  substitute the program. Relative paths are refused.
* **Clean minimal environment** (``PATH`` and a UTF-8 locale, ``cwd=/``, stdin from /dev/null): no
  agent secret or proxy setting leaks into a child, and scripts behave the same under any service
  manager.
* **Timeout kills the whole process group**: every child starts in its own session
  (``start_new_session=True``); on timeout ``os.killpg(SIGKILL)`` takes its grandchildren too, so a
  hung ``sleep`` under a script cannot outlive the command. A child that *exits normally* leaves
  anything it started in the background alone (that is how scripts start daemons).
* **Output cap**: stdout and stderr share one pipe, read incrementally; past the cap bytes are
  read and dropped (so the child never blocks on a full pipe) and the result says ``truncated``.
  An ``http`` action reads its answer up to the cap and closes the connection.
* **http actions** go through the agent's own client (``agent/http.py``): no proxy from the
  environment, no redirect followed, the host checked by the parser that connects (loopback only),
  the whole exchange within ``timeout_s``.

Outcomes are values (``ExecResult``), never exceptions: an action that cannot start is an
``error`` result with a clear message, e.g. systemd actions on a host where PID 1 is not systemd.

``subprocess`` and psutil are imported by the first action that needs them, not with the executor:
an agent with actions configured mostly waits, and the two cost it 1.2 MiB resident.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from infragent.agent import acting
from infragent.agent.allowlist import LOOPBACK_HOSTS, HttpCall, Invocation, ProcessCall
from infragent.agent.http import HttpClient, HttpError, split_url

if TYPE_CHECKING:
    import subprocess

    import psutil

logger = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: sd_booted(3): this directory exists iff the host was booted with systemd as PID 1.
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")
_READ_CHUNK = 65536
_POLL_S = 0.05

ExecStatus = Literal["ok", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one action did; an action that cannot start is an ``error`` result, not an exception."""

    status: ExecStatus
    exit_code: int | None
    output: str
    duration_ms: int
    truncated: bool = False


def find_program(program: str, path: str = SAFE_PATH) -> str | None:
    """The executable file ``program`` names on ``path``, like ``shutil.which``, or None.

    Why not ``shutil.which``: importing ``shutil`` loads ``bz2`` and ``lzma`` (0.3 MB resident,
    measured), and the agent only needs this lookup.
    """
    if "/" in program:
        found = os.path.isfile(program) and os.access(program, os.X_OK)
        return program if found else None
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class _Capture:
    """Keeps the first ``cap`` bytes of output and remembers whether more arrived."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > max(room, 0):
            self.truncated = True

    def text(self) -> str:
        text = self.data.decode("utf-8", "replace")
        return text + f"\n[output truncated at {self.cap} bytes]" if self.truncated else text


class Executor:
    """Runs ``Invocation``s; one instance per agent, safe to call from several threads."""

    def __init__(
        self,
        *,
        path: str = SAFE_PATH,
        env: Mapping[str, str] | None = None,
        systemd_dir: Path = SYSTEMD_RUNTIME_DIR,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._env = dict(env) if env is not None else {"PATH": path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        self._systemd_dir = systemd_dir
        self._monotonic = monotonic
        self._started: list[subprocess.Popen[bytes]] = []

    def close(self) -> None:
        """Reap finished children; processes started by ``process`` actions keep running."""
        self._reap()

    def run(self, call: Invocation) -> ExecResult:
        with acting.action():  # an exit it causes is not a crash (``agent/acting.py``)
            return self._run(call)

    def _run(self, call: Invocation) -> ExecResult:
        self._reap()
        if isinstance(call, HttpCall):
            return self._run_http(call)
        if isinstance(call, ProcessCall):
            return self._restart_process(call)
        if call.kind == "systemd" and not self._systemd_dir.is_dir():
            return ExecResult(
                "error",
                None,
                f"systemd is not running on this host (no {self._systemd_dir}; PID 1 is not systemd):"
                f" cannot run {' '.join(call.argv)}",
                0,
            )
        return self.run_argv(call.argv, call.timeout_s, call.output_cap_bytes)

    def run_argv(self, argv: Sequence[str], timeout_s: float, output_cap_bytes: int) -> ExecResult:
        """Run ``argv`` without a shell; kill its process group at ``timeout_s``."""
        started = self._monotonic()
        if not argv:
            return ExecResult("error", None, "empty argument vector", 0)
        program = self._resolve(argv[0])
        if program is None:
            return ExecResult("error", None, f"program {argv[0]!r} not found (or not absolute)", 0)
        import subprocess

        try:
            proc = subprocess.Popen(  # noqa: S603 - argv from the allowlist, no shell
                [program, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return ExecResult("error", None, f"cannot start {program}: {exc}", self._ms(started))
        capture = _Capture(output_cap_bytes)
        deadline = started + timeout_s
        timed_out = not self._read_until_exit(proc, capture, deadline)
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - self._monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True  # closed its output but kept running
        if timed_out:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            logger.warning("%s timed out after %.1f s; process group killed", program, timeout_s)
            output = capture.text() + f"\n[killed after {timeout_s:g} s timeout]"
            return ExecResult("timeout", None, output, self._ms(started), capture.truncated)
        code = proc.returncode
        status: ExecStatus = "ok" if code == 0 else "error"
        return ExecResult(status, code, capture.text(), self._ms(started), capture.truncated)

    def _read_until_exit(self, proc: subprocess.Popen[bytes], capture: _Capture, deadline: float) -> bool:
        """Read output until EOF or until the child has exited and gone quiet; False on timeout."""
        assert proc.stdout is not None
        with proc.stdout, selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            fd = proc.stdout.fileno()
            while True:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                if selector.select(timeout=min(remaining, _POLL_S)):
                    chunk = os.read(fd, _READ_CHUNK)
                    if not chunk:
                        return True
                    capture.add(chunk)
                elif proc.poll() is not None:
                    # Exited, but something it left behind still holds the pipe: stop reading.
                    return True

    def _resolve(self, program: str) -> str | None:
        if "/" in program:
            return program if os.path.isabs(program) else None
        return find_program(program, self._path)

    def _restart_process(self, call: ProcessCall) -> ExecResult:
        """Signal the running instance, wait (then SIGKILL), and start a fresh one detached."""
        import subprocess

        import psutil

        started = self._monotonic()
        deadline = started + call.timeout_s
        targets = _find_processes(call)
        notes: list[str] = []
        for proc in targets:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(call.stop_signal)
                notes.append(f"sent {call.stop_signal.name} to pid {proc.pid}")
        if targets:
            wait_s = max(0.0, min(call.stop_timeout_s, deadline - self._monotonic()))
            _, alive = psutil.wait_procs(targets, timeout=wait_s)
            for proc in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
                    notes.append(f"pid {proc.pid} did not stop; sent SIGKILL")
            _, alive = psutil.wait_procs(alive, timeout=max(0.0, min(2.0, deadline - self._monotonic())))
            if alive:
                notes.append(f"pids {[p.pid for p in alive]} still running; not starting another")
                return ExecResult("error", None, "\n".join(notes), self._ms(started))
        else:
            notes.append("no running instance found")
        try:
            child = subprocess.Popen(  # noqa: S603 - argv from the allowlist, no shell
                list(call.start),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=self._env,
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            notes.append(f"cannot start {call.start[0]}: {exc}")
            return ExecResult("error", None, "\n".join(notes), self._ms(started))
        self._started.append(child)
        grace = max(0.0, min(call.start_grace_s, deadline - self._monotonic()))
        try:
            code = child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            notes.append(f"started pid {child.pid}")
            return ExecResult("ok", None, "\n".join(notes), self._ms(started))
        notes.append(f"started pid {child.pid}, but it exited with code {code} within {grace:g} s")
        status: ExecStatus = "ok" if code == 0 else "error"
        return ExecResult(status, code, "\n".join(notes), self._ms(started))

    def _run_http(self, call: HttpCall) -> ExecResult:
        """One request on a fresh connection; the answer's status and (capped) body are the output."""
        started = self._monotonic()
        try:
            origin, target = split_url(call.url)
        except ValueError as exc:
            return ExecResult("error", None, f"refusing malformed URL {call.url}: {exc}", 0)
        if origin.host.lower() not in LOOPBACK_HOSTS:
            return ExecResult("error", None, f"refusing non-loopback URL {call.url}", 0)
        client = HttpClient(origin, timeout_s=call.timeout_s, body_cap=call.output_cap_bytes)
        try:
            response = client.request(call.method, target, headers={"Connection": "close"})
        except HttpError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                return ExecResult("timeout", None, f"{call.method} {call.url}: {exc}", self._ms(started))
            kind = "ConnectError" if client.connects == 0 else type(exc).__name__
            output = f"{call.method} {call.url}: {kind}: {exc}"
            return ExecResult("error", None, output, self._ms(started))
        finally:
            client.close()
        capture = _Capture(call.output_cap_bytes)
        capture.data += response.body
        capture.truncated = response.truncated
        code = response.status
        status: ExecStatus = "ok" if 200 <= code < 300 else "error"
        output = f"HTTP {code}\n{capture.text()}"
        return ExecResult(status, None, output, self._ms(started), capture.truncated)

    def _reap(self) -> None:
        """Collect exit statuses of processes started by ``process`` actions (no zombies)."""
        self._started = [p for p in self._started if p.poll() is None]

    def _ms(self, started: float) -> int:
        return round((self._monotonic() - started) * 1000)


def _find_processes(call: ProcessCall) -> list[psutil.Process]:
    """The instance(s) to stop: the pidfile's pid, or every process with exactly this name.

    A pidfile older than its process means the pid was reused by something else: not ours.
    """
    import psutil

    if call.pidfile is not None:
        try:
            text = Path(call.pidfile).read_text().strip()
            mtime = os.stat(call.pidfile).st_mtime
            proc = psutil.Process(int(text))
            if proc.create_time() > mtime + 1.0:
                logger.warning("pidfile %s is stale (pid %s was reused); ignoring it", call.pidfile, text)
                return []
        except (OSError, ValueError, psutil.Error):
            return []
        return [proc]
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == call.match and proc.pid != os.getpid():
            found.append(proc)
    return found
