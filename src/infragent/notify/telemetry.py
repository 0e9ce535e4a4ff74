"""The notification metrics on the server's registry (``GET /metrics``).

* ``infragent_notifications_total{outcome}``: what became of each send attempt — ``delivered``,
  ``retry`` (it will be tried again), ``dead`` (dead-lettered: failed for good, or retried past its
  deadline) and ``lost`` (the worker's lease had expired and another took the delivery over: the
  result was not recorded);
* ``infragent_notification_deliveries_pending``: deliveries not yet delivered or dead (pending or
  being sent), read at scrape time like the server's other backlog gauges (``server/telemetry.py``
  explains why: one query per scrape, never stale, dropped from the scrape if the database fails);
* ``infragent_notification_send_seconds``: how long one channel send took.

A registry per server (not the global one), so several servers in one process (the tests) do not
collide; the outcome label is a closed set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

OUTCOMES = ("delivered", "retry", "dead", "lost")
#: Send latency buckets: a loopback webhook takes a millisecond, a slow SMTP server seconds.
SEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Pending(Collector):
    def __init__(self, read: Callable[[], int]) -> None:
        self.read = read

    def describe(self) -> Iterable[Metric]:
        return []  # no reads at registration: the store may not be reachable yet

    def collect(self) -> Iterable[Metric]:
        try:
            value = self.read()
        except Exception:  # a scrape must not fail because the database did
            logger.warning("/metrics: cannot read the pending notification count", exc_info=True)
            return
        gauge = GaugeMetricFamily(
            "infragent_notification_deliveries_pending",
            "Notification deliveries waiting to be sent or being sent.",
        )
        gauge.add_metric([], value)
        yield gauge


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.outcomes = Counter(
            "infragent_notifications",
            "Notification send attempts by outcome (delivered, retry, dead, lost).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.outcomes.labels(outcome)
        self.send_seconds = Histogram(
            "infragent_notification_send_seconds",
            "Seconds one channel send took.",
            buckets=SEND_BUCKETS,
            registry=self.registry,
        )
        self._pending: _Pending | None = None

    def bind_pending(self, read: Callable[[], int]) -> None:
        """Report ``read()`` as the pending gauge at each scrape (once per registry)."""
        if self._pending is None:
            self._pending = _Pending(read)
            self.registry.register(self._pending)

    def unbind_pending(self) -> None:
        if self._pending is not None:
            self.registry.unregister(self._pending)
            self._pending = None
