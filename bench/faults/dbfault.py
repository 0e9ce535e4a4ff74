"""The database restarted mid-incident: a private PostgreSQL the suite owns, never the shared one.

``initdb`` in a temp dir (run as the ``postgres`` user when the suite runs as root: PostgreSQL
refuses to run as root), ``pg_ctl start`` on a free loopback port with its socket in the same dir,
a stack (server + responder, agent, service) on it; then the service is SIGKILLed and, 50 ms
later, the database is stopped with ``-m immediate`` (a crash: no checkpoint, connections cut) and
started again 2 s after. The agent's ``app_down`` and the responder's run must survive it: the
service is healed and the run verified. ``close`` stops the database and deletes its files.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import book
from scenarios import Outcome, Say, measure, restore, runs_ended, runs_since, settle, signal_pid
from stack import Stack, free_port, wait_until

BIN = Path(os.environ.get("INFRAGENT_BENCH_PG_BIN", "/usr/local/bin"))


class PrivatePostgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="infragent-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.log = self.dir / "pg.log"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str, timeout_s: float = 60) -> None:
        subprocess.run([*self._as, *argv], check=True, timeout=timeout_s, capture_output=True)

    def init(self) -> None:
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def database_restart(work: Path, say: Say) -> Outcome:
    out = Outcome("database restarted mid-incident", remediable=True)
    pg = PrivatePostgres()
    stack: Stack | None = None
    try:
        pg.init()
        stack = Stack(work, pg.url, say=say)
        stack.up()
        settle(stack)
        pid = stack.service_pid()
        assert pid is not None
        t0, t_kill = time.time(), time.monotonic()
        signal_pid(pid, signal.SIGKILL)
        time.sleep(0.05)  # the app_down is on its way, a run about to start or started
        pg.stop("immediate")
        time.sleep(2.0)
        pg.start()
        try:
            wait_until(stack.healthy, 60, "the service healed after the database restart", 0.01)
            wait_until(lambda: runs_ended(stack, t0), 60, "the run to end", 0.2)  # type: ignore[arg-type]
            out.healed = any(r["verified_at"] for r in runs_since(stack, t0))
            out.note = "" if out.healed else "restarted but not verified"
        except TimeoutError as exc:
            out.note = str(exc)
        measure(stack, t0, out, {book.RESTART})
        say(
            f"  database restart: healed={out.healed} MTTR {out.mttr_s} s ({time.monotonic() - t_kill:.2f} s)"
        )
        restore(stack)
    except (subprocess.SubprocessError, OSError, TimeoutError) as exc:
        out.note = f"could not run: {exc}"
    finally:
        if stack is not None:
            stack.close()
        pg.close()
    return out
