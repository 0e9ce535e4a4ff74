"""The running host agent: collect on a fixed grid, spool, ship, check, report its own health.

Threads, and why each exists (each one blocks on something different; none polls)::

    collector   every METRICS_INTERVAL on the wall-clock grid (…:00, :10, :20 …, no drift):
                host families + the agent's own series → one MetricBatch → spool.append → wake
    shipper     spool.peek → POST /api/v1/metrics → ack / retry with backoff / pause on a refused
                key or URL (401/403/404: data kept) / dead-letter a malformed batch (400/413/422)
    events      check transitions → POST /api/v1/events at once, retried (bounded queue)
    register    POST /api/v1/agents until it succeeds, then exits; never delays metrics
    commands    pull mode only, when a command handler is given: long-poll, run, report
    push        push mode only, when a command processor is given: uvicorn serving the signed
                ``POST /commands`` on INFRAGENT_PUSH_HOST:INFRAGENT_PUSH_PORT (``agent/push.py``)
    local-api   /health, /health/live, /health/ready, /metrics on 127.0.0.1:8471; where it
                listens (port 0: any free port) goes to ``local-api.json`` in the data dir
    checks      the CheckRunner's scheduler and its probe pool, only when checks are configured

Why the batch goes to the spool before any send: the spool is the only thing that survives a
SIGKILL, so a point exists once ``append`` returned and until the server acknowledges it. With
``journal`` on (``INFRAGENT_AGENT_JOURNAL=1``, a test hook) each appended batch id and its point
count is also written to ``journal.log`` in the data directory, so a test that kills the agent can
compare what was created with what the server stored.

Why one ``books`` lock: the collector's "append + count collected" and the shipper's "ack + count
sent or dead-lettered" each happen under it, and so does ``snapshot``; one ``/metrics`` answer then
always satisfies collected = sent + dead-lettered + dropped + waiting (``agent_buffer_points``),
which is what an operator (and the reliability tests) check.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from infragent import __version__, wire
from infragent.agent.collectors import HostCollector, MetricPoint, resource_attributes
from infragent.agent.collectors.point import counter, gauge
from infragent.agent.collectors.procfs import own_process
from infragent.agent.delivery import Refusals
from infragent.agent.http import HttpClient
from infragent.agent.local_api import (
    PROMETHEUS_CONTENT_TYPE,
    BoundAddress,
    Handler,
    LocalApi,
    Reply,
    Snapshot,
    health_document,
    metric_families,
    publish_address,
    render_prometheus,
    withdraw_address,
)
from infragent.agent.poller import CommandPoller
from infragent.agent.settings import AgentSettings
from infragent.agent.shipper import (
    CommandHandler,
    Connectivity,
    EventSender,
    MetricShipper,
    register,
)
from infragent.agent.spool import DeadLetters, Spool, SpoolError
from infragent.agent.spool.deadletter import FILE_NAME as DEAD_LETTER_FILE
from infragent.backoff import Backoff

if TYPE_CHECKING:
    from infragent.agent.checks import CheckRunner, CheckTransition
    from infragent.agent.commands import CommandProcessor
    from infragent.agent.push import PushServer

logger = logging.getLogger(__name__)

#: How long the first collection waits after priming, so its CPU figures cover a real interval.
FIRST_SAMPLE_S = 0.25
#: gzip level 1, not wire's default 6: on a tick's ~11 KB of msgpack it costs 0.06 ms instead of
#: 0.15 ms for 10 % more bytes (measured), and the agent's CPU budget is 5 ms per 10 s tick.
GZIP_LEVEL = 1


class Agent:
    """Owns the spool, the threads and the counters; ``start()`` then ``stop()``."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        clock: Callable[[], float] = time.time,
        host: HostCollector | None = None,
        command_handler: CommandHandler | None = None,
        push_processor: CommandProcessor | None = None,
        actions: list[dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.host = host if host is not None else HostCollector()
        self._command_handler = command_handler
        self._push_processor = push_processor
        self.push: PushServer | None = None
        self._actions = actions or []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._started = time.monotonic()
        self._run_id = os.urandom(6).hex()
        self._seq = 0
        self.resource = resource_attributes(
            settings.node_id, settings.region, settings.environment, settings.customer_id
        )
        self.spool: Spool | None = None
        self.api: LocalApi | None = None
        self.link = Connectivity(settings.server_url)
        self.refusals = Refusals()
        self.dead_letters = DeadLetters(
            settings.data_dir / DEAD_LETTER_FILE, max_bytes=_dead_letter_bytes(settings)
        )
        self._books = threading.Lock()
        self.shipper: MetricShipper | None = None
        self.events: EventSender | None = None
        self.checks: CheckRunner | None = None
        self._clients: list[HttpClient] = []
        self._threads: list[threading.Thread] = []
        self._journal: int | None = None
        self._ready = False
        self.points_collected = 0
        self.tick_errors = 0
        self.spool_errors = 0
        self._process = own_process()  # psutil.Process() where there is no /proc
        self._cpu_mark: tuple[float, float] | None = None
        self.cpu_percent = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool, bind the local API, start every loop. Raises if either cannot open."""
        s = self.settings
        self.spool = Spool(s.spool_dir, max_bytes=s.buffer_max_size, segment_bytes=_segment_bytes(s))
        if s.journal:
            path = s.data_dir / "journal.log"
            self._journal = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.api = LocalApi(s.health_check_host, s.health_check_port, self.routes())
        self.shipper = MetricShipper(
            self.spool,
            self._client(),
            s.api_key,
            wake=self._wake,
            stop=self._stop,
            link=self.link,
            dead_letters=self.dead_letters,
            refusals=self.refusals,
            backoff=self._backoff(),
            books=self._books,
        )
        self.events = EventSender(
            self._client(),
            s.api_key,
            stop=self._stop,
            refusals=self.refusals,
            dead_letters=self.dead_letters,
            backoff=self._backoff(),
        )
        self._spawn("collector", self._collect_loop)
        self._spawn("shipper", self.shipper.run)
        self._spawn("events", self.events.run)
        self._spawn("register", self._register)
        if self._command_handler is not None and s.command_mode == "pull":
            poller = CommandPoller(
                self._client(timeout_s=45.0),
                s.api_key,
                s.node_id,
                self._command_handler,
                stop=self._stop,
                backoff=self._backoff(),
                refusals=self.refusals,
            )
            self._spawn("commands", poller.run)
        if s.checks:
            from infragent.agent.checks import CheckRunner  # the probes' modules: only with checks

            self.checks = CheckRunner(s.checks, self._on_transition, clock=self._clock)
            self.checks.start()
        push_port = None
        if self._push_processor is not None and s.command_mode == "push":
            from infragent.agent.push import PushServer  # uvicorn and starlette: push mode only

            self.push = PushServer(self._push_processor, s.push_host, s.push_port)
            self.push.start()
            push_port = self.push.address[1]
        self.api.start()
        publish_address(s.data_dir, BoundAddress(os.getpid(), *self.api.address, push_port))
        logger.info(
            "agent %s started: server %s, every %g s, local API on %s:%d",
            s.node_id,
            s.server_url,
            s.metrics_interval,
            *self.api.address,
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every loop, then close the spool; batches not yet acknowledged stay on disk."""
        self._stop.set()
        self._wake.set()
        if self.events is not None:
            self.events.wake()
        for client in self._clients:
            client.abort()  # a long poll or a slow send returns now
        if self.checks is not None:
            self.checks.close()
        if self.push is not None:
            self.push.close(timeout_s)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.api is not None:
            self.api.close()
            withdraw_address(self.settings.data_dir, os.getpid())
        for client in self._clients:
            client.close()
        self._ready = False
        if self.spool is not None:
            self.spool.close()
        if self._journal is not None:
            os.close(self._journal)
            self._journal = None
        logger.info("agent stopped")

    @property
    def ready(self) -> bool:
        return self._ready and not self._stop.is_set()

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    def _backoff(self) -> Backoff:
        return Backoff(base_s=0.5, cap_s=self.settings.retry_max_delay)

    def _client(self, timeout_s: float = 15.0) -> HttpClient:
        client = HttpClient(self.settings.server_url, timeout_s=timeout_s)
        self._clients.append(client)
        return client

    def _spawn(self, name: str, target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, name=f"infragent-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- collection --------------------------------------------------------------------------

    def _collect_loop(self) -> None:
        interval = self.settings.metrics_interval
        self.host.prime()
        self._own_cpu_percent()
        if self._stop.wait(min(FIRST_SAMPLE_S, interval)):
            return
        first = self._clock()
        self.tick(first)  # the first tick is not on the grid: ready within FIRST_SAMPLE_S
        slot = math.floor(first / interval)  # grid points are slot * interval, exactly
        while True:
            slot += 1
            behind = math.floor(self._clock() / interval)
            if behind > slot:  # a tick overran whole intervals (or the clock jumped): skip them
                slot = behind
            due = slot * interval
            while (remaining := due - self._clock()) > 0:
                if self._stop.wait(remaining):
                    return
            if self._stop.is_set():
                return
            self.tick(due)

    def tick(self, now: float) -> int:
        """Collect, batch and spool one tick stamped ``now``; returns the points spooled (0 on error)."""
        try:
            host_points = self.host.collect(now)
            points = host_points + self._own_points(now, host_points)
            if self.checks is not None:
                points += self.checks.points()
            self._seq += 1
            batch_id = f"{self.settings.node_id[:80]}.{self._run_id}.{self._seq}"
            batch = wire.batch_from_points(
                batch_id, self.settings.node_id, self.resource, [(now, p) for p in points]
            )
            count = batch.point_count
            assert self.spool is not None
            payload = wire.encode_batch(batch, compresslevel=GZIP_LEVEL)
            try:
                with self._books:
                    self.spool.append(batch_id, count, payload)
                    self.points_collected += count
            except (SpoolError, OSError):
                self.spool_errors += 1
                logger.exception("cannot spool batch %s (%d points); it is lost", batch_id, count)
                return 0
            if self._journal is not None:
                os.write(self._journal, f"{batch_id} {count}\n".encode())
            self._ready = True
            self._wake.set()
            return count
        except Exception:  # tick boundary: a broken tick is logged and counted; the next one runs
            self.tick_errors += 1
            logger.exception("collection tick failed")
            return 0

    def _own_cpu_percent(self) -> float:
        """The agent's CPU seconds so far; updates ``cpu_percent`` (since the previous call).

        ``os.times`` is one syscall; psutil's ``cpu_times`` parses ``/proc/self/stat`` (30x dearer).
        """
        times = os.times()
        mark = (time.monotonic(), times.user + times.system)
        if self._cpu_mark is not None and mark[0] > self._cpu_mark[0]:
            self.cpu_percent = 100.0 * (mark[1] - self._cpu_mark[1]) / (mark[0] - self._cpu_mark[0])
        self._cpu_mark = mark
        return mark[1]

    def _own_points(self, now: float, host_points: list[MetricPoint]) -> list[MetricPoint]:
        """The agent's own series, plus the figures the default rule pack needs that no rule can
        compute (docs/rules-default-pack.md): a rule compares one series, never a ratio of two.

        ``infragent.agent.buffer.utilization`` (0..1): the spool's fill, for AgentSpoolFull.
        ``infragent.agent.server.reachable`` (1/0): the last send's outcome, for
        AgentCannotReachServer; absent until a first send was tried (nothing is known yet).
        ``infragent.agent.load.per_core``: the 5-minute load average over the logical CPUs, for
        HighLoadPerCore; absent when the host families did not report both this tick.
        """
        cpu_s = self._own_cpu_percent()
        rss = self._process.memory_info().rss
        assert self.spool is not None
        stats = self.spool.stats
        points = [
            gauge("infragent.agent.memory.rss", rss, "By"),
            counter("infragent.agent.cpu.time", cpu_s, "s"),
            gauge("infragent.agent.buffer.size", stats.current_bytes, "By"),
            gauge("infragent.agent.buffer.utilization", stats.current_bytes / stats.max_bytes, "1"),
            counter("infragent.agent.points.dropped", stats.dropped_points, "{point}"),
        ]
        reachable = self.link.status.reachable
        if reachable is not None:
            points.append(gauge("infragent.agent.server.reachable", 1.0 if reachable else 0.0, "1"))
        per_core = load_per_core(host_points)
        if per_core is not None:
            points.append(gauge("infragent.agent.load.per_core", per_core, "1"))
        return points

    @property
    def collector_errors(self) -> dict[str, int]:
        errors = dict(self.host.errors)
        errors["agent"] = self.tick_errors
        return errors

    # -- what the agent reports about itself ---------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The agent's figures; the spool and the point counters are read in one ``books`` hold."""
        link = self.link.status
        assert self.spool is not None
        with self._books:
            stats = self.spool.stats
            collected = self.points_collected
            sent = self.shipper.points_sent if self.shipper else 0
            dead_lettered = self.shipper.points_dead_lettered if self.shipper else 0
        checks = {} if self.checks is None else {n: st.status for n, st in self.checks.states.items()}
        return Snapshot(
            version=__version__,
            uptime_s=self.uptime_s,
            ready=self.ready,
            endpoint=link.endpoint,
            reachable=link.reachable,
            last_success=link.last_success,
            latency_ms=link.latency_ms,
            error=link.error,
            buffer_bytes=stats.current_bytes,
            buffer_max_bytes=stats.max_bytes,
            buffer_records=stats.records,
            buffer_points=stats.points_pending,
            checks=checks,
            cpu_percent=self.cpu_percent,
            rss_bytes=self._process.memory_info().rss,
            points_collected=collected,
            points_sent=sent,
            points_dropped=stats.dropped_points,
            points_dead_lettered=dead_lettered,
            corrupt_records=stats.corrupt_records,
            collector_errors=self.collector_errors,
            events_sent=self.events.sent if self.events else 0,
            refused=self.refusals.reason,
        )

    def routes(self) -> dict[str, Handler]:
        def health() -> Reply:
            return Reply(200, msgspec.json.encode(health_document(self.snapshot())))

        def ready() -> Reply:
            refused = self.refusals.reason
            if refused is not None:  # collecting, but nothing reaches the server: not ready
                reason = f"the server refuses this agent (check its API key and server URL): {refused}"
                return Reply(503, msgspec.json.encode({"status": "not ready", "reason": reason}))
            if self.ready:
                return Reply(200, b'{"status": "ready"}')
            return Reply(503, b'{"status": "not ready", "reason": "no collection spooled yet"}')

        def metrics() -> Reply:
            return Reply(200, render_prometheus(metric_families(self.snapshot())), PROMETHEUS_CONTENT_TYPE)

        return {
            "/health": health,
            "/health/live": lambda: Reply(200, b'{"status": "alive"}'),
            "/health/ready": ready,
            "/metrics": metrics,
        }

    # -- server --------------------------------------------------------------------------------

    def registration(self) -> dict[str, Any]:
        return {
            "node_id": self.settings.node_id,
            "kind": "host",
            "command_mode": self.settings.command_mode,
            "actions": self._actions,
            "labels": self.settings.labels,
        }

    def _register(self) -> None:
        client = self._client()
        register(
            client,
            self.settings.api_key,
            self.registration(),
            stop=self._stop,
            refusals=self.refusals,
            backoff=self._backoff(),
        )
        client.close()  # registration is done: its connection is not kept for the agent's life

    def _on_transition(self, transition: CheckTransition) -> None:
        """Called by the check runner; enqueue only — the event thread sends it at once."""
        assert self.events is not None
        down = transition.kind == "app_down"
        self.events.submit(
            {
                "type": transition.kind,
                "service": transition.check,
                "severity": "critical" if down else "info",
                "data": transition.details(),
                "node_id": self.settings.node_id,
            }
        )


def load_per_core(points: list[MetricPoint]) -> float | None:
    """``system.cpu.load_average.5m / system.cpu.logical.count`` of one tick, or None without both."""
    load = count = None
    for p in points:
        if p.name == "system.cpu.load_average.5m":
            load = p.value
        elif p.name == "system.cpu.logical.count":
            count = p.value
    if load is None or not count or count <= 0:
        return None
    return load / count


def _dead_letter_bytes(settings: AgentSettings) -> int:
    """The dead-letter file rolls over at a tenth of the spool's cap (at least 1 MiB)."""
    return max(1024 * 1024, settings.buffer_max_size // 10)


def _segment_bytes(settings: AgentSettings) -> int:
    """Segments of 1/16 of the cap (at most 4 MiB): dropping the oldest then frees little at a time."""
    return max(16 * 1024, min(4 * 1024 * 1024, settings.buffer_max_size // 16))
