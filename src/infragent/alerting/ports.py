"""What the evaluator needs from the outside world, as Protocols, and the values that cross them.

Why ports: the evaluator (``evaluator.py``) and its in-memory tenants (``tenant.py``) are driven
with time passed in and no database in the unit tests; ``sql.py`` is the one adapter, over the
store's modules (alerts, rules, incidents, audit) and the metric store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from infragent.errors import StoreError
from infragent.query.aggregate import Partials
from infragent.query.plan import Source
from infragent.rules.model import Rule
from infragent.rules.state import AlertState, Transition
from infragent.rules.window import EventSample


class TenantLostError(StoreError):
    """The evaluator may no longer write this tenant's alert state: its lease token no longer holds
    the tenant, or another evaluator already recorded one of the transitions (``client_id``)."""

    def __init__(self, client_id: str, why: str) -> None:
        super().__init__(f"alert evaluation of tenant {client_id} lost: {why}")
        self.client_id = client_id
        self.why = why


@dataclass(frozen=True, slots=True)
class RuleRecord:
    """One rule of a tenant, as stored (``store.rules.StoredRule``); ``rule.enabled`` is its switch."""

    id: str
    name: str
    rule: Rule
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SavedInstance:
    """One persisted instance (``alert_instances``): where a new lease holder continues from."""

    rule_id: str
    group_key: str
    labels: dict[str, str]
    state: AlertState
    incident_id: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceWrite:
    """What one evaluation changed of one instance, written in one transaction with the others of
    its round: the instance row, its transitions, an audit entry each, and what incidents learn.

    ``incident_id`` is the instance's incident as its row holds it (that of its latest reported
    episode: the incidents rejoin it when the alert fires again); ``reported`` says whether the
    current episode's fire was handed to the incidents. A fired transition is handed over when
    ``report_fired`` (False while ``incident_auto_pause_s`` holds it back); any other transition
    only in an episode that was reported. ``deferred_fire`` is the held-back fire, once the pause
    has passed.
    """

    rule_id: str
    rule_name: str
    group_key: str
    labels: dict[str, str]
    severity: str
    annotations: dict[str, str]
    state: AlertState
    transitions: tuple[Transition, ...] = ()
    incident_id: str | None = None
    reported: bool = False
    report_fired: bool = True
    deferred_fire: Transition | None = None
    #: events an event rule matched in this evaluation: linked to the alert's incident
    event_ids: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule_id, self.group_key)


@dataclass(frozen=True, slots=True)
class Written:
    """An instance after its write: its incident (as its row now holds it), and whether the
    current episode's fire has been handed to the incidents."""

    incident_id: str | None
    reported: bool


@dataclass(frozen=True, slots=True)
class Signal:
    """A batch or event reached a process that does not hold the tenant: the holder looks again.

    ``hosts`` empty with ``all_hosts``: refresh every series (the payload could not list them).
    """

    client_id: str
    hosts: frozenset[str] = frozenset()
    events: bool = False
    all_hosts: bool = False


@dataclass(frozen=True, slots=True)
class ValueUpdate:
    """A persisted instance's value, refreshed without a transition (at most every flush period)."""

    rule_id: str
    group_key: str
    value: float | None
    at: float | None


class AlertStore(Protocol):
    """The alert state, leases and what the evaluator reads of the tenant (rules, hosts, events)."""

    def prepare(self, now: float) -> None:
        """Bring every tenant's stored rules up to date at start: the default pack, the rule files."""
        ...

    def tenants_with_rules(self) -> list[str]:
        """Tenants with an enabled rule."""
        ...

    def tenants_with_active_alerts(self) -> list[str]:
        """Tenants with a pending or firing alert (of a rule switched off since, which the holder
        retires, or of a tenant whose rules were all switched off)."""
        ...

    def acquire(self, client_id: str, owner: str, now: float, lease_s: float) -> str | None: ...

    def renew(self, tokens: Sequence[str], now: float, lease_s: float) -> set[str]:
        """Renew the leases these tokens hold; the tenants still held."""
        ...

    def release(self, client_id: str, token: str) -> None: ...

    def load_rules(self, client_id: str) -> list[RuleRecord]:
        """The tenant's rules, switched on or off (``rule.enabled``)."""
        ...

    def rule_signatures(self, client_ids: Sequence[str]) -> dict[str, tuple[int, float]]: ...

    def load_instances(self, client_id: str) -> list[SavedInstance]: ...

    def hosts_last_seen(self, client_id: str) -> dict[str, float]: ...

    def events_since(self, client_id: str, since: float) -> list[EventSample]: ...

    def commit(
        self, client_id: str, token: str, writes: Sequence[InstanceWrite], now: float
    ) -> dict[tuple[str, str], Written]:
        """Write the round in one transaction, fenced by ``token``; what each instance is after it.
        Raises ``TenantLostError`` (rolled back) when the token or a transition says another
        evaluator owns the tenant."""
        ...

    def flush_values(self, client_id: str, token: str, values: Sequence[ValueUpdate]) -> None: ...

    def signal(self, signal: Signal) -> None:
        """Tell the holder (another process) to look at the tenant again."""
        ...


class SeriesRef(Protocol):
    """A stored series, as ``MetricReader.list_series`` returns it."""

    @property
    def host(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> dict[str, str]: ...


class SampledSeries(Protocol):
    """A series' samples, as ``MetricReader.query_parts(source="raw")`` returns them: one partial
    per sample, so ``parts.start`` are the times and ``parts.last`` the values."""

    @property
    def host(self) -> str: ...

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def parts(self) -> Partials: ...


class SeriesReader(Protocol):
    """The part of the metric store (``store.metrics.MetricReader``) that fills windows.

    Why ``query_parts`` and not ``query_range``: one call reads every series of a host and metric
    (one connection, one series lookup) into arrays, with no Python tuple per sample.
    """

    def list_series(
        self, client_id: str, *, host: str | None = None, name: str | None = None
    ) -> Sequence[SeriesRef]: ...

    def query_parts(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
        source: Source,
        *,
        max_series: int,
    ) -> Sequence[SampledSeries]: ...
