"""What the evaluator tells other processes and the events path: signals to a tenant's lease holder,
and the tenant's event rules for ``claims_event``.

Why signals are coalesced: a busy non-holder receives a tenant's batches many times a second; one
``NOTIFY`` per tenant per ``min_s`` (naming every host seen meanwhile) tells the holder as much as
one per batch, at a fraction of the round trips.

Why event rules are cached with a time to live: ``claims_event`` runs on the events route for
every event, in any process; the holder publishes the rules it evaluates (no read at all), any
other process reads them from the store at most once per ``ttl_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from infragent.alerting.ports import AlertStore, Signal
from infragent.rules.model import EventMatch, Rule

logger = logging.getLogger(__name__)


class Outbox:
    """Signals waiting to be sent, at most one per tenant per ``min_s``; used by one thread."""

    def __init__(self, store: AlertStore, min_s: float) -> None:
        self.store = store
        self.min_s = min_s
        self._waiting: dict[str, Signal] = {}
        self._sent_at: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, client_id: str, hosts: set[str], events: bool) -> None:
        prev = self._waiting.get(client_id)
        if prev is not None:
            hosts = hosts | prev.hosts
            events = events or prev.events
        self._waiting[client_id] = Signal(client_id, frozenset(hosts), events)

    def send(self) -> None:
        """Send what is due; the rest waits for a later call (the evaluator wakes within ``min_s``)."""
        mono = time.monotonic()
        for client_id, signal in list(self._waiting.items()):
            if mono - self._sent_at.get(client_id, float("-inf")) < self.min_s:
                continue
            del self._waiting[client_id]
            self._sent_at[client_id] = mono
            try:
                self.store.signal(signal)
            except Exception:
                logger.warning("cannot signal the rule evaluator of tenant %s", client_id, exc_info=True)


class EventRules:
    """Each tenant's event rules, for ``claims_event``; thread-safe (routes run in threads)."""

    def __init__(self, store: AlertStore, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cached: dict[str, tuple[float, list[Rule]]] = {}
        self._lock = threading.Lock()

    def publish(self, client_id: str, rules: Sequence[Rule]) -> None:
        """The holder's current rules: they answer without a read until ``ttl_s`` passes."""
        with self._lock:
            self._cached[client_id] = (time.monotonic() + self.ttl_s, list(rules))

    def of(self, client_id: str) -> list[Rule]:
        mono = time.monotonic()
        with self._lock:
            cached = self._cached.get(client_id)
        if cached is not None and mono < cached[0]:
            return cached[1]
        stored = self.store.load_rules(client_id)
        rules = [r.rule for r in stored if r.rule.enabled and isinstance(r.rule.condition, EventMatch)]
        self.publish(client_id, rules)
        return rules
