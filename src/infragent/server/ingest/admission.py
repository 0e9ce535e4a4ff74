"""Ingest admission: the per-tenant series cap (``max_series_per_tenant``) refuses batches that would
create too many series, before anything is stored. Native and OTLP ingest, in the server process or
in a worker, all admit through ``SeriesCap.admit``; a refusal is one error type, ``SeriesCapError``,
which ``server/errors.py`` answers 429 with ``Retry-After``.

Why a cap: every new label value (a request id, a pod name) is a new series, a row and an index
entry forever (retention never deletes series). One tenant's cardinality explosion would otherwise
grow the database for everyone. Only *new* series are refused: a tenant at its cap keeps sending
the series it has, so its dashboards and rules keep working while it fixes its labels.

Why it is cheap: per tenant, the count is cached (read once with ``COUNT(*)``, then advanced on each
write that creates series, and re-read every ``refresh_s`` to correct drift from other servers) and
the series already seen are kept as hashes of (host, name, labels as sent). In the steady state a
host re-sends the same series, every one is in that set, and admission is a few set lookups with no
SQL. Series not in the set are looked up in one indexed ``SELECT`` before being called new. The
hashes are Python's 64-bit ``hash``: a collision would let one new series through uncounted until
the next refresh, a price worth ten times less memory than keeping the keys.

Why a soft cap: admission and the write are not one transaction, so concurrent batches near the cap
may together overshoot it by what they create in flight. Holding a per-tenant lock across the write
would serialize a tenant's ingest to buy exactness nobody needs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from infragent.errors import InfrAgentError
from infragent.store.metrics import SeriesKey, labels_key
from infragent.store.schema import metric_series
from infragent.wire import SeriesData

#: Seconds a cached count is trusted before it is read again.
REFRESH_S = 60.0
#: Bound on the seen-series hashes of all tenants together (~50 bytes each); past it they are dropped
#: and rebuilt from the database as series come in again.
MAX_KNOWN = 2_000_000
#: Series looked up per ``SELECT``: keeps bound parameters far below SQLite's limit (32766).
LOOKUP_CHUNK = 500
#: Seconds a refused client is asked to wait: the cap does not lift by itself, so no point hurrying.
RETRY_AFTER_S = 60

#: (host, series) pairs: one native batch is one pair, an OTLP request one per host.
Groups = Sequence[tuple[str, Sequence[SeriesData]]]


class SeriesCapError(InfrAgentError):
    """The batch would take its tenant past ``max_series_per_tenant``; the message names both.

    The one error for this condition, on every ingest path: it carries what the answer needs (429,
    ``retry_after_s``) and what the rejected-points counter needs (``points`` in the refused body).
    """

    status = 429

    def __init__(self, current: int, cap: int, points: int) -> None:
        super().__init__(
            f"series cap reached: tenant has {current} of max {cap} series (max_series_per_tenant)"
        )
        self.current = current
        self.cap = cap
        #: data points in the refused batch, for the rejected-points counter
        self.points = points
        self.retry_after_s = RETRY_AFTER_S


@dataclass
class _Tenant:
    count: int
    read_at: float
    known: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Admission:
    """What ``admit`` let through; hand it to ``written`` once the batch is stored."""

    client_id: str
    new: frozenset[SeriesKey]
    hashes: frozenset[int]


def _quick(host: str, s: SeriesData) -> int:
    return hash((host, s.name, tuple(s.attributes.items())))


class SeriesCap:
    """Admission by series count for every tenant of one server; thread-safe (routes run in threads)."""

    def __init__(
        self,
        engine: sa.Engine,
        cap: int,
        *,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.cap = cap
        self.refresh_s = refresh_s
        self.clock = clock
        self._tenants: dict[str, _Tenant] = {}
        self._known_total = 0
        self._lock = threading.Lock()

    # -- reads --------------------------------------------------------------------------------------

    def series_count(self, client_id: str) -> int:
        """Series stored for the tenant, from the database (the unique index answers it)."""
        q = (
            sa.select(sa.func.count())
            .select_from(metric_series)
            .where(metric_series.c.client_id == client_id)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def series_counts(self, limit: int) -> dict[str, int]:
        """Series per tenant for the ``limit`` tenants with the most: what ``/metrics`` shows."""
        n = sa.func.count().label("n")
        q = (
            sa.select(metric_series.c.client_id, n)
            .group_by(metric_series.c.client_id)
            .order_by(n.desc(), metric_series.c.client_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return {str(row.client_id): int(row.n) for row in conn.execute(q)}

    def _existing(self, client_id: str, keys: Iterable[SeriesKey]) -> set[SeriesKey]:
        """Which of ``keys`` are already stored (by this server before a restart, or by another)."""
        by_host: dict[str, set[SeriesKey]] = {}
        for key in keys:
            by_host.setdefault(key[1], set()).add(key)
        found: set[SeriesKey] = set()
        c = metric_series.c
        with self.engine.connect() as conn:
            for host, wanted in by_host.items():
                ordered = sorted(wanted)
                for i in range(0, len(ordered), LOOKUP_CHUNK):
                    part = ordered[i : i + LOOKUP_CHUNK]
                    q = sa.select(c.name, c.labels_key).where(
                        c.client_id == client_id,
                        c.host == host,
                        c.name.in_(sorted({k[2] for k in part})),
                        c.labels_key.in_(sorted({k[3] for k in part})),
                    )
                    rows = conn.execute(q)
                    found.update(k for r in rows if (k := (client_id, host, r.name, r.labels_key)) in wanted)
        return found

    def _tenant(self, client_id: str) -> _Tenant:
        now = self.clock()
        with self._lock:
            tenant = self._tenants.get(client_id)
        if tenant is not None and now - tenant.read_at < self.refresh_s:
            return tenant
        count = self.series_count(client_id)
        with self._lock:
            tenant = self._tenants.get(client_id)
            if tenant is None:
                tenant = self._tenants[client_id] = _Tenant(count, now)
            else:
                tenant.count, tenant.read_at = count, now
            return tenant

    # -- admission ----------------------------------------------------------------------------------

    def admit(self, client_id: str, groups: Groups, *, points: int | None = None) -> Admission:
        """Let the batch through, or raise ``SeriesCapError`` if its new series would pass the cap.

        ``points``: the data points the refused body held, when the caller counts them otherwise
        than as the samples in ``groups`` (OTLP counts data points, a histogram point is one).
        """
        tenant = self._tenant(client_id)
        unknown: dict[int, SeriesKey] = {}
        with self._lock:
            for host, series in groups:
                for s in series:
                    if not s.values:  # the store skips series without points: nothing is created
                        continue
                    h = _quick(host, s)
                    if h not in tenant.known and h not in unknown:
                        unknown[h] = (client_id, host, s.name, labels_key(s.attributes))
        if not unknown:
            return Admission(client_id, frozenset(), frozenset())
        existing = self._existing(client_id, set(unknown.values()))
        new = frozenset(k for k in unknown.values() if k not in existing)
        with self._lock:
            self._add_known(tenant, [h for h, k in unknown.items() if k in existing])
            current = tenant.count
        if new and current + len(new) > self.cap:
            if points is None:
                points = sum(len(s.values) for _, series in groups for s in series)
            raise SeriesCapError(current, self.cap, points)
        return Admission(client_id, new, frozenset(h for h, k in unknown.items() if k in new))

    def written(self, admission: Admission) -> None:
        """The admitted batch is stored: its new series now count, and are known."""
        if not admission.hashes:
            return
        with self._lock:
            tenant = self._tenants.get(admission.client_id)
            if tenant is None:
                return
            fresh = [h for h in admission.hashes if h not in tenant.known]
            if fresh:  # a racing batch that created the same series has counted them already
                tenant.count += len(admission.new)
            self._add_known(tenant, fresh)

    def _add_known(self, tenant: _Tenant, hashes: Sequence[int]) -> None:
        """Remember series as seen (caller holds the lock); forget everyone's past ``MAX_KNOWN``."""
        if self._known_total + len(hashes) > MAX_KNOWN:
            for t in self._tenants.values():
                t.known.clear()
            self._known_total = 0
        before = len(tenant.known)
        tenant.known.update(hashes)
        self._known_total += len(tenant.known) - before
