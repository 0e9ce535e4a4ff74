"""A throwaway PostgreSQL cluster a test owns: its own data directory and port, stopped and started at will.

Why not the shared server at 127.0.0.1:5432: a test that stops the database must not stop it for
every other test running on the machine. This one is made with ``initdb`` in a temporary directory
and served by ``pg_ctl`` on a reserved loopback port (``support.servers.reserve_port``), so a stop and
a start keep the same URL and no other process can take the port in between. PostgreSQL sets
``SO_REUSEADDR`` on its listening socket, which is what lets it share the reservation.

PostgreSQL refuses to run as root; as root the binaries run as the ``postgres`` user (``runuser``),
and the directory is handed to that user. The binaries are Debian's (``/usr/lib/postgresql/N/bin``)
or whatever ``initdb`` is on ``PATH``; without them the test is skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.servers import reserve_port

#: Seconds ``pg_ctl`` may wait for the server to start or stop (a busy 2-core CI machine).
PG_CTL_WAIT_S = 60


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


class PgCluster:
    """One cluster: ``url`` stays valid across ``stop()`` and ``start()``."""

    def __init__(self, bindir: Path, datadir: Path, port: int, as_user: list[str]) -> None:
        self._bindir = bindir
        self.datadir = datadir
        self.port = port
        self._as_user = as_user
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._as_user, str(self._bindir / tool), *args]
        done = subprocess.run(cmd, cwd=self.datadir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.datadir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{done.stdout}{done.stderr}\n{tail}")

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.datadir / "data"), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        """Start and wait until it accepts connections (``pg_ctl -w``): no polling here."""
        options = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.datadir / "data"), "-l", str(self.datadir / "server.log"),
            "-w", "-t", str(PG_CTL_WAIT_S), "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop and wait until it is gone: connections to the port are refused from then on."""
        self._run(
            "pg_ctl", "-D", str(self.datadir / "data"), "-m", mode, "-w", "-t", str(PG_CTL_WAIT_S), "stop"
        )

    def running(self) -> bool:
        return (self.datadir / "data" / "postmaster.pid").exists()


@contextmanager
def throwaway_postgres() -> Iterator[PgCluster]:
    """A started cluster on its own port; stopped and deleted on exit."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed")
    as_user: list[str] = []
    datadir = Path(tempfile.mkdtemp(prefix="infragent-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(datadir)
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(datadir, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        with reserve_port() as port:
            cluster = PgCluster(bindir, datadir, port.port, as_user)
            cluster.init()
            cluster.start()
            try:
                yield cluster
            finally:
                if cluster.running():
                    cluster.stop("immediate")
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
