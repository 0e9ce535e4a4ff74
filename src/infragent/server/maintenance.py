"""Metric store upkeep in the server: compaction every minute, retention every hour, in one thread.

Why in the server and not a cron job: a single-binary install has nothing else to run it, and both
jobs are safe to run from several processes — compaction takes a PostgreSQL advisory lock (a second
server skips the pass) or the SQLite writer lock, retention is idempotent. ``infragent metrics
compact`` runs the same code by hand (a first catch-up after an upgrade, say).

Why one thread that loops ``compact`` until a call finds nothing: each call is bounded (about
200,000 chunks), so the thread checks for shutdown between calls and stops within one call's time.
Compaction first runs one interval after start-up, retention after its interval or 10 minutes,
whichever is sooner (so a server restarted often still applies retention), then every interval; a
failure is logged and counted, and the loop goes on. Intervals of 0 turn a job off. Counts go to
the app's ``/metrics`` (``infragent_compaction_*``, ``infragent_maintenance_*``, docs/configuration.md).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from infragent.config import Settings
from infragent.store.metrics import RetentionResult, SqlMetricStore
from infragent.store.metrics.compaction import CompactionResult, compact

logger = logging.getLogger(__name__)

TASKS = ("compaction", "retention")


class MaintenanceStats:
    """The counters the loop adds to (registered on the app's registry, or a private one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry(auto_describe=True)
        self.points = Counter(
            "infragent_compaction_points", "Data points rewritten into compacted chunks.", registry=r
        )
        self.chunks = Counter(
            "infragent_compaction_chunks",
            "Chunks read (stage=in) and written (stage=out) by compaction.",
            ["stage"],
            registry=r,
        )
        self.bytes = Counter(
            "infragent_compaction_bytes",
            "Chunk payload bytes read (stage=in) and written (stage=out) by compaction.",
            ["stage"],
            registry=r,
        )
        self.seconds = Counter("infragent_compaction_seconds", "Time spent in compaction passes.", registry=r)
        self.runs = Counter(
            "infragent_maintenance_runs", "Maintenance runs finished, by task.", ["task"], registry=r
        )
        self.errors = Counter(
            "infragent_maintenance_errors", "Maintenance runs that failed, by task.", ["task"], registry=r
        )
        self.retention_chunks = Counter(
            "infragent_retention_deleted_chunks",
            "Chunks removed by retention (archived as hourly rollups first).",
            registry=r,
        )
        for stage in ("in", "out"):
            self.chunks.labels(stage)
            self.bytes.labels(stage)
        for task in TASKS:
            self.runs.labels(task)
            self.errors.labels(task)

    def compacted(self, result: CompactionResult) -> None:
        self.points.inc(result.points)
        self.chunks.labels("in").inc(result.chunks_in)
        self.chunks.labels("out").inc(result.chunks_out)
        self.bytes.labels("in").inc(result.bytes_in)
        self.bytes.labels("out").inc(result.bytes_out)
        self.seconds.inc(result.seconds)


class Maintenance:
    """Runs ``compact`` and ``apply_retention`` on a schedule in a daemon thread (``start``/``stop``)."""

    def __init__(
        self,
        metrics: SqlMetricStore,
        *,
        compact_interval_s: float = 60.0,
        retention_interval_s: float = 3600.0,
        compact_delay_s: float = 600.0,
        stats: MaintenanceStats | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.compact_interval_s = compact_interval_s
        self.retention_interval_s = retention_interval_s
        self.compact_delay_s = compact_delay_s
        self.stats = stats or MaintenanceStats()
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.compact_interval_s > 0 or self.retention_interval_s > 0

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="metrics-maintenance", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the thread to stop and wait for it (it finishes the ``compact`` call under way)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("metrics maintenance did not stop within %.0f s", timeout_s)
            self._thread = None

    def compact_all(self) -> CompactionResult:
        """Compact until a pass finds nothing to do (or ``stop`` is called)."""
        total = CompactionResult()
        while not self._stop.is_set():
            result = compact(self.metrics, self.clock(), delay_s=self.compact_delay_s)
            self.stats.compacted(result)
            total = total + result
            if not result.did_work:
                break
        if total.did_work:
            logger.info(
                "compacted %d series-hours: %d chunks -> %d, %d points, %d -> %d bytes in %.1f s",
                total.series_hours,
                total.chunks_in,
                total.chunks_out,
                total.points,
                total.bytes_in,
                total.bytes_out,
                total.seconds,
            )
        return total

    def retain(self) -> RetentionResult:
        result = self.metrics.apply_retention(self.clock())
        self.stats.retention_chunks.inc(result.deleted_chunks)
        if result.deleted_chunks or result.dropped_partitions:
            logger.info(
                "retention removed %d chunks (%d day partitions dropped)",
                result.deleted_chunks,
                result.dropped_partitions,
            )
        return result

    def _loop(self) -> None:
        jobs: list[tuple[str, float, Callable[[], object]]] = [
            ("compaction", self.compact_interval_s, self.compact_all),
            ("retention", self.retention_interval_s, self.retain),
        ]
        start = time.monotonic()
        first = {"compaction": self.compact_interval_s, "retention": min(self.retention_interval_s, 600.0)}
        due = {name: start + first[name] if every > 0 else math.inf for name, every, _ in jobs}
        while not self._stop.is_set():
            for name, every, run in jobs:
                if self._stop.is_set() or time.monotonic() < due[name]:
                    continue
                try:
                    run()
                except Exception:  # a loop boundary: log, count, try again next interval
                    logger.exception("metrics %s failed", name)
                    self.stats.errors.labels(name).inc()
                else:
                    self.stats.runs.labels(name).inc()
                due[name] = time.monotonic() + every
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))


def build_maintenance(
    settings: Settings,
    metrics: SqlMetricStore,
    registry: CollectorRegistry | None,
    clock: Callable[[], float] = time.time,
) -> Maintenance:
    """The loop, from settings, over the app's one metric store (not started: ``start`` does that).

    The same ``SqlMetricStore`` instance as ingest's, handed in by the composition root
    (``server/services.py``): on SQLite compaction must take the writer lock that ingest's group
    commit takes.
    """
    return Maintenance(
        metrics,
        compact_interval_s=settings.metrics_compact_interval_s,
        retention_interval_s=settings.metrics_retention_interval_s,
        compact_delay_s=settings.metrics_compact_delay_s,
        stats=MaintenanceStats(registry),
        clock=clock,
    )
