"""Detection end to end with real processes: servers, an agent, a CPU hog, injected samples, and
the API reads the tests assert on.

Why real processes: the promise under test is that alert timers and incidents survive a server
that dies without a ``finally`` (SIGKILL) and that two servers on one database record each
transition once. Only separate ``infragent server`` processes fail, restart and race the way
production ones do. ``support.agent_proc`` starts them (port reserved for the server's whole life,
so an agent or a feeder keeps one URL across restarts); this module adds what detection needs.

Why a CPU hog *and* injected samples: the hog proves the whole path (agent collector → ingest →
rule → incident) on this machine's real CPU; a restart test must know when the condition started
to hold to check the fire time, so it writes the samples itself (``Feeder``) with chosen values
and timestamps, through the same native ingest API the agent uses.

The CPU level: ``system.cpu.utilization`` summed over the modes other than idle, per host, is the
host's busy fraction. Measured on this 2-core machine: 0.02 to 0.05 idle, 1.00 with one busy loop
per core. ``BUSY_LEVEL`` sits far from both. But it is a shared machine: while other work keeps
both cores busy (other test runs measured 0.9 to 1.0 for minutes), a host-wide metric cannot tell
the hog from the background. So the hog test first waits for a quiet host (``wait_quiet``, read from
what the agent reported) and is skipped, saying so, if the host stays busy.

No sleeps as synchronisation: every wait is ``wait_for`` with a deadline, polling the API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa

from infragent.store.metrics import SqlMetricStore
from infragent.store.schema import alert_rules, alert_transitions, metric_batches, rule_leases
from infragent.store.sql import SqlStore
from infragent.wire import CONTENT_TYPE, MetricBatch, SeriesData, encode_batch
from support.agent_proc import AgentProc, ServerProc
from support.databases import create_client

T = TypeVar("T")

#: The busy fraction the CPU rule fires above: idle measured ≤ 0.05 here, the hog 1.00.
BUSY_LEVEL = 0.8
#: Below this the host counts as quiet, so that what pushes it over ``BUSY_LEVEL`` is the hog.
QUIET_LEVEL = 0.5
#: The evaluation tick the servers run with (``INFRAGENT_RULE_TICK_S``); timing tolerances use it.
TICK_S = 0.5
#: The evaluation lease (``INFRAGENT_RULE_LEASE_S``): short, so a restarted or a second server takes
#: over a SIGKILLed one's tenant within seconds, not the default 15 s.
LEASE_S = 2.0
#: The one node the agent or the feeder reports as.
NODE = "detect-host"


# -- the rule ----------------------------------------------------------------------------------------


def busy_rule(name: str, *, function: str, window: str, for_: str) -> dict[str, Any]:
    """The host's busy fraction over ``window`` above ``BUSY_LEVEL`` for ``for_``, one alert per host:
    ``sum by (host) (function(system.cpu.utilization{cpu.mode!="idle"}[window])) > BUSY_LEVEL``."""
    return {
        "alert": name,
        "kind": "threshold",
        "metric": 'system.cpu.utilization{cpu.mode!="idle"}',
        "function": function,
        "window": window,
        "by": ["host"],
        "combine": "sum",
        "op": ">",
        "value": BUSY_LEVEL,
        "for": for_,
        "severity": "warning",
    }


# -- waiting ----------------------------------------------------------------------------------------


def wait_for(probe: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll ``probe`` until it returns something other than None/False; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


# -- the CPU hog ------------------------------------------------------------------------------------

_BUSY_LOOP = """\
import os, time
os.nice({nice})
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    pass
"""


class CpuHog:
    """One busy loop per core, each a ``python -c`` child with its own hard deadline.

    The loops run at ``nice`` 10: on a quiet host they still take every idle cycle (the host is
    busy: ``nice`` time is not idle), but the agent and the server, at 0, run first whenever they
    need the CPU, so the hog cannot starve the pipeline that measures it (an agent shipping late
    leaves the rule's short window empty, which ends the alert).

    Bounded twice: the loop ends by itself after ``max_s`` even if the test process dies, and
    ``stop()`` (called by ``cpu_hog``'s ``finally``) SIGKILLs whatever still runs.
    """

    def __init__(self, max_s: float, cores: int | None = None, nice: int = 10) -> None:
        self.max_s = max_s
        self.nice = nice
        self.cores = cores or os.cpu_count() or 2
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    def start(self) -> CpuHog:
        code = _BUSY_LOOP.format(seconds=self.max_s, nice=self.nice)
        for _ in range(self.cores):
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", code],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.started_at = time.time()
        return self

    @property
    def running(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            proc.wait(10)
        if self.stopped_at is None and self.started_at is not None:
            self.stopped_at = time.time()


@contextmanager
def cpu_hog(max_s: float = 45.0) -> Iterator[CpuHog]:
    hog = CpuHog(max_s).start()
    try:
        yield hog
    finally:
        hog.stop()


# -- servers, agents, the tenant ------------------------------------------------------------------


class DetectServer(ServerProc):
    """``infragent server`` with rule evaluation settings of its own (a fast tick, a short lease)."""

    def __init__(self, database_url: str, work_dir: Path, **env: str) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(database_url, work_dir)
        self.extra_env = {
            "INFRAGENT_RULES_ENABLED": "true",
            "INFRAGENT_RULE_TICK_S": str(TICK_S),
            "INFRAGENT_RULE_LEASE_S": str(LEASE_S),
            **env,
        }

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        super()._spawn(argv, env | self.extra_env)

    def start(self, timeout_s: float = 30.0) -> DetectServer:
        super().start(timeout_s)
        return self


@dataclass(frozen=True)
class TransitionRow:
    rule: str
    group_key: str
    at: float
    from_status: str
    to_status: str
    incident_id: str | None
    reason: str


class Deployment:
    """One tenant on one database, its server processes, an agent if the test wants one, and the
    reads the assertions make (the API for alerts and incidents; the table for counting rows)."""

    def __init__(self, store: SqlStore, db_url: str, work: Path) -> None:
        self.store = store
        self.db_url = db_url
        self.work = work
        reg = create_client(
            store, "detect@example.com", "Detect", "http://127.0.0.1:9/unused", now=time.time()
        )
        self.client_id = reg.client.id
        self.api_key = reg.api_key
        self.servers: list[DetectServer] = []
        self.agents: list[AgentProc] = []

    def server(self, **env: str) -> DetectServer:
        server = DetectServer(self.db_url, self.work / f"server-{len(self.servers)}", **env)
        self.servers.append(server)
        return server

    def agent(self, server: ServerProc, **env: str) -> AgentProc:
        agent = AgentProc(server.url, self.api_key, self.work / "agent", node_id=NODE, **env)
        self.agents.append(agent)
        return agent

    def api(self, server: ServerProc) -> Api:
        return Api(server.url, self.api_key)

    def transitions(self, rule: str) -> list[TransitionRow]:
        """Every ``alert_transitions`` row of ``rule`` in this tenant, oldest first."""
        query = (
            sa.select(
                alert_rules.c.name,
                alert_transitions.c.group_key,
                alert_transitions.c.at,
                alert_transitions.c.from_status,
                alert_transitions.c.to_status,
                alert_transitions.c.incident_id,
                alert_transitions.c.reason,
            )
            .join(alert_rules, alert_rules.c.id == alert_transitions.c.rule_id)
            .where(alert_transitions.c.client_id == self.client_id, alert_rules.c.name == rule)
            .order_by(alert_transitions.c.at, alert_transitions.c.id)
        )
        with self.store.engine.connect() as conn:
            return [TransitionRow(*row) for row in conn.execute(query)]

    def lease_owner_pid(self) -> int | None:
        """The pid of the server process holding this tenant's evaluation lease now, if any holds it.

        The owner is ``host:pid:nonce`` (``alerting/evaluator.py``); an expired lease holds nothing.
        """
        query = sa.select(rule_leases.c.owner, rule_leases.c.until).where(
            rule_leases.c.client_id == self.client_id
        )
        with self.store.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.until < time.time():
            return None
        return int(row.owner.split(":")[1])

    def stored_batches(self) -> int:
        """Metric batches stored for this tenant: a count that grows with every batch an agent ships."""
        query = (
            sa.select(sa.func.count())
            .select_from(metric_batches)
            .where(metric_batches.c.client_id == self.client_id)
        )
        with self.store.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def busy_fractions(self, since: float) -> list[tuple[float, float]]:
        """The host's busy fraction as the agent reported it since ``since``: per collection, the
        sum of ``system.cpu.utilization`` over every mode but idle (what the CPU rule reads)."""
        metrics = SqlMetricStore(self.store.engine)
        busy: dict[float, float] = {}
        for series in metrics.list_series(self.client_id, host=NODE, name="system.cpu.utilization"):
            if series.labels.get("cpu.mode") != "idle":
                for ts, value in metrics.query_range(
                    self.client_id, NODE, series.name, series.labels, since, time.time() + 60
                ):
                    busy[ts] = busy.get(ts, 0.0) + value
        return sorted(busy.items())

    def wait_quiet(self, timeout_s: float, samples: int = 3) -> None:
        """Wait until the agent's last ``samples`` collections are below ``QUIET_LEVEL``; skip the
        test if the host stays busier than that (other work on a shared machine): a CPU hog cannot
        then be told from the background, and a failure would say nothing about the code."""
        seen: list[tuple[float, float]] = []

        def quiet() -> bool:
            seen[:] = self.busy_fractions(time.time() - 10 * samples)[-samples:]
            return len(seen) == samples and all(v < QUIET_LEVEL for _, v in seen)

        try:
            wait_for(quiet, timeout_s, "a quiet host", interval_s=0.5)
        except TimeoutError:
            pytest.skip(
                f"the host stayed busy for {timeout_s:.0f} s (last busy fractions "
                f"{[round(v, 2) for _, v in seen]}, quiet is < {QUIET_LEVEL}): other work on this "
                "machine would be taken for the CPU hog"
            )

    def logs(self) -> str:
        parts = [f"--- {p.name} {p.log_path}:\n{p.log()}" for p in [*self.servers, *self.agents]]
        return "\n".join(parts)

    def close(self) -> None:
        for agent in self.agents:
            agent.kill()
        for server in self.servers:
            server.close()


@contextmanager
def deployment(store: SqlStore, db_url: str, work: Path) -> Iterator[Deployment]:
    """A ``Deployment`` whose processes are stopped at the end; on a failure their logs are printed
    (pytest shows them with the failure)."""
    d = Deployment(store, db_url, work)
    try:
        yield d
    except (Exception, pytest.fail.Exception):
        print(d.logs())
        raise
    finally:
        d.close()


# -- the API ----------------------------------------------------------------------------------------


class Api:
    """The tenant's view through one server: what an operator's script would call."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def _get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.base}{path}", headers=self.headers, params=params, timeout=10)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()

    def add_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.base}/api/v1/rules", headers=self.headers, json=rule, timeout=10)
        assert r.status_code in (200, 201), f"POST /api/v1/rules: {r.status_code} {r.text}"
        answer: dict[str, Any] = r.json()
        return answer

    def alert(self, rule: str) -> dict[str, Any] | None:
        """The rule's one instance in ``GET /api/v1/alerts`` (the tests' rules group by host, and
        there is one host), if it has one yet."""
        found = [a for a in self._get("/api/v1/alerts") if a["rule"] == rule]
        assert len(found) <= 1, found
        return found[0] if found else None

    def incidents(self, rule: str) -> list[dict[str, Any]]:
        """The incidents ``rule`` opened, every status, oldest first (the default pack's are left out)."""
        body = self._get("/api/v1/incidents", limit=200)
        found = [i for i in body["incidents"] if i["rule_name"] == rule]
        return sorted(found, key=lambda i: float(i["opened_at"]))

    def self_metrics(self) -> dict[str, float]:
        """The server's ``/metrics`` as {sample name with labels: value}."""
        r = httpx.get(f"{self.base}/metrics", timeout=10)
        assert r.status_code == 200, r.text
        values: dict[str, float] = {}
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def incident(self, incident_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._get(f"/api/v1/incidents/{incident_id}")
        return found


# -- injected samples -------------------------------------------------------------------------------


class Feeder:
    """A stand-in agent on a thread: every ``interval_s`` one point of the busy fraction ``level``
    (the test sets it), stamped with the time of sending, sent to the servers in turn through the
    native ingest API, as ``system.cpu.utilization`` with ``cpu.mode`` ``user`` (the busy fraction)
    and ``idle`` (the rest), so the rule's ``cpu.mode!="idle"`` matcher is exercised.

    Pacing is the sender's own (an agent collects on an interval too); nothing waits on it. A batch
    no server took (it is down) stays in ``backlog`` with its timestamp and batch id and goes out
    first when one answers, as the agent's spool does.
    """

    def __init__(self, api_key: str, urls: list[str], interval_s: float = 0.5, level: float = 0.0) -> None:
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": CONTENT_TYPE,
            "Content-Encoding": "gzip",
        }
        self.urls = urls
        self.interval_s = interval_s
        self.level = level
        self.backlog: list[MetricBatch] = []
        #: batches each server took (a backlog flushed to one counts once for it)
        self.sent: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def _batch(self, ts: float, busy: float) -> MetricBatch:
        def series(mode: str, value: float) -> SeriesData:
            return SeriesData(
                "system.cpu.utilization", "1", "gauge", False, {"cpu.mode": mode}, [ts], [value]
            )

        resource = {"host.name": NODE}
        return MetricBatch(
            f"feed-{uuid.uuid4().hex}", NODE, resource, [series("user", busy), series("idle", 1.0 - busy)]
        )

    def _flush(self, url: str) -> bool:
        """Send the backlog, oldest first; False if the server is down or busy (kept for later)."""
        while self.backlog:
            body = encode_batch(self.backlog[0])
            try:
                r = httpx.post(f"{url}/api/v1/metrics", content=body, headers=self.headers, timeout=5)
            except httpx.TransportError:
                return False
            if r.status_code >= 500:
                return False
            assert r.status_code == 200, f"POST /api/v1/metrics: {r.status_code} {r.text}"
            self.backlog.pop(0)
        return True

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            self.backlog.append(self._batch(time.time(), self.level))
            url = self.urls[turn % len(self.urls)]
            try:
                if self._flush(url):
                    self.sent[url] += 1
            except Exception as exc:  # a refused batch is a test failure: kept for ``check``
                self.error = exc
                return
            turn += 1
            self._stop.wait(self.interval_s)

    def check(self) -> None:
        """Raise what stopped the thread, if something did."""
        if self.error is not None:
            raise AssertionError(f"the feeder stopped: {self.error}") from self.error

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
