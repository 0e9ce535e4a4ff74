"""The tenants this process holds the evaluation lease of: take, renew, load, refresh, give up.

Why loading reads the store before anything is evaluated: a new holder (a restart, a takeover)
must never evaluate an instance over an empty window, which would read as "no data" and reset a
pending ``for`` or resolve a firing alert. So a tenant is held only once its rules, its persisted
instance states and every selected series' window (``query_parts`` over the longest span a rule
needs) are in memory.

Why a tenant is given up whole on any doubt: state in memory that may differ from the database
(a commit that failed, a lease another process took) is thrown away and loaded again from the
database, where the persisted timers make the re-evaluation reach the same transitions at the
same ``at`` (and the unique key of ``alert_transitions`` refuses any it already recorded).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from infragent.alerting.instances import Instance
from infragent.alerting.ports import AlertStore, SeriesReader
from infragent.alerting.tenant import Tenant

logger = logging.getLogger(__name__)

#: Samples stamped this far ahead of the clock are still read back (agents' clocks drift).
FUTURE_S = 3600.0
#: A bound on the series one read returns; a tenant's host/metric pair never comes near it.
MAX_SERIES = 1_000_000
#: Events re-read before the cursor, for events committed out of ``received_at`` order.
EVENT_OVERLAP_S = 5.0


@dataclass
class Holding:
    """One held tenant: the lease token and, once loaded, its in-memory state."""

    token: str
    tenant: Tenant | None = None
    signature: tuple[int, float] | None = None
    last_sweep: float = float("-inf")
    last_flush: float = float("-inf")
    renewed_at: float = float("-inf")
    #: events arrived while the tenant was being (re)loaded: read them back after the load
    missed_events: bool = False
    #: instances new samples reached that are not evaluated yet (the evaluator is over budget)
    dirty: set[Instance] = field(default_factory=set)
    #: when the oldest batch behind ``dirty`` was handed over (``time.monotonic``)
    accepted: float | None = None
    event_cursor: float = 0.0
    seen_events: dict[str, float] = field(default_factory=dict)

    def first_sight(self, event_id: str, at: float) -> bool:
        """Remember an event; False when it was seen before (in-process and re-read from the store)."""
        if not event_id:
            return True
        if event_id in self.seen_events:
            return False
        self.seen_events[event_id] = at
        self.event_cursor = max(self.event_cursor, at)
        if len(self.seen_events) > 10_000:
            horizon = self.event_cursor - 4 * EVENT_OVERLAP_S
            self.seen_events = {k: v for k, v in self.seen_events.items() if v >= horizon}
        return True


class Loader:
    """Builds a held tenant's state from the store and the metric store."""

    def __init__(
        self, store: AlertStore, reader: SeriesReader, *, max_instances: int, auto_pause_s: float
    ) -> None:
        self.store = store
        self.reader = reader
        self.max_instances = max_instances
        self.auto_pause_s = auto_pause_s

    def load(self, client_id: str, now: float) -> Tenant:
        rules = self.store.load_rules(client_id)
        saved = self.store.load_instances(client_id)
        tenant = Tenant(
            client_id, rules, saved, max_instances=self.max_instances, auto_pause_s=self.auto_pause_s
        )
        for name in tenant.metric_names():
            since = now - tenant.lookback(name)
            hosts = sorted({s.host for s in self.reader.list_series(client_id, name=name)})
            for host in hosts:
                self._fill(tenant, host, name, since, now)
        if tenant.host_rules:
            tenant.note_hosts(self.store.hosts_last_seen(client_id))
        return tenant

    def refresh(self, tenant: Tenant, hosts: Iterable[str] | None, now: float) -> set[Instance]:
        """Read what other processes stored for ``hosts`` (None: every host) since we last saw it."""
        wanted = set(tenant.metric_names())
        if hosts is None:
            found = self.reader.list_series(tenant.client_id)
        else:
            found = [s for h in sorted(set(hosts)) for s in self.reader.list_series(tenant.client_id, host=h)]
        pairs = sorted({(s.host, s.name) for s in found if s.name in wanted})
        dirty: set[Instance] = set()
        for host, name in pairs:
            held = [e.buffer.last_ts for e in tenant.series_of(host, name)]
            newest = [t for t in held if t is not None]
            since = min(newest) if newest and len(newest) == len(held) else now - tenant.lookback(name)
            dirty |= self._fill(tenant, host, name, since, now)
        return dirty

    def _fill(self, tenant: Tenant, host: str, name: str, since: float, now: float) -> set[Instance]:
        dirty: set[Instance] = set()
        got = self.reader.query_parts(
            tenant.client_id, host, name, {}, since, now + FUTURE_S, "raw", max_series=MAX_SERIES
        )
        for s in got:
            dirty |= tenant.fill(host, name, s.labels, s.parts.start, s.parts.last, since=since)
        return dirty
