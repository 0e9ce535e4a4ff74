"""The pieces of a tenant's in-memory state: its rules, its series and its alert instances.

Why a series entry is shared by the instances it feeds: one buffer per series, trimmed to the
longest window any of its rules needs, however many rules read it. Why an instance remembers
``reported``: with ``incident_auto_pause_s``, a fire reaches the incidents only once it has lasted,
so an episode's later transitions are reported only if its fire was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infragent.alerting.buffers import F64, SeriesBuffer
from infragent.alerting.ports import RuleRecord, SavedInstance
from infragent.rules.evaluate import alert_labels, event_matches, group_key, next_due
from infragent.rules.model import Absence, Anomaly, EventMatch, Forecast, Reset, Rule, Threshold
from infragent.rules.state import AlertState, AlertStatus, Transition
from infragent.rules.window import EventSample, SeriesSamples

#: History a reset rule's series keeps: the previous sample is all it compares against.
RESET_KEEP_S = 600.0
#: How far back a new holder looks for an absence rule's series (at least): a series with no sample
#: in that span is known to have been silent at least that long.
ABSENCE_LOOKBACK_S = 3600.0


def keep_seconds(rule: Rule) -> float:
    """History a series must hold for ``rule``: its window (plus the baseline of an anomaly)."""
    c = rule.condition
    if isinstance(c, Threshold | Forecast):
        return c.window_s
    if isinstance(c, Anomaly):
        return c.window_s + c.baseline_s
    if isinstance(c, Reset):
        return RESET_KEEP_S
    return 0.0


def lookback_seconds(rule: Rule) -> float:
    """How far back a new holder reads the store to fill a series of ``rule``."""
    c = rule.condition
    if isinstance(c, Absence):
        return max(2 * c.silent_s, ABSENCE_LOOKBACK_S)
    return keep_seconds(rule)


@dataclass(eq=False, slots=True)
class RuleEntry:
    record: RuleRecord
    keep_s: float
    lookback_s: float

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def rule(self) -> Rule:
        return self.record.rule


class SeriesEntry:
    """One series a rule selects: its labels (``host`` included), samples and the instances it feeds."""

    __slots__ = ("_samples", "attributes", "buffer", "floor_seen", "host", "instances", "labels", "name")

    def __init__(self, host: str, name: str, attributes: Mapping[str, str], keep_s: float) -> None:
        self.host = host
        self.name = name
        self.attributes = dict(attributes)
        self.labels = {**attributes, "host": host}
        self.buffer = SeriesBuffer(keep_s)
        self.instances: list[Instance] = []
        #: a lower bound on the last sample when the store had none in the lookback span
        self.floor_seen: float | None = None
        self._samples: SeriesSamples | None = None

    @property
    def last_seen(self) -> float | None:
        last = self.buffer.last_ts
        return last if last is not None else self.floor_seen

    def extend(self, ts: F64, values: F64) -> None:
        self.buffer.extend(ts, values)
        self._samples = None

    def append(self, t: float, value: float) -> None:
        self.buffer.append(t, value)
        self._samples = None

    def samples(self) -> SeriesSamples:
        """The series as a rule window holds it; built once per change, shared by every instance
        (and every evaluation) that reads it until the next samples arrive."""
        if self._samples is None:
            self._samples = SeriesSamples(self.labels, *self.buffer.view())
        return self._samples


class Instance:
    """One alert instance: a rule and a group of series (or a host, or an event group)."""

    __slots__ = (
        "due",
        "group",
        "host",
        "incident_id",
        "key",
        "labels",
        "recheck",
        "reported",
        "rule",
        "saved",
        "saved_value",
        "series",
        "state",
    )

    def __init__(
        self, rule: RuleEntry, group: dict[str, str], saved: SavedInstance | None, *, key: str | None = None
    ) -> None:
        self.rule = rule
        self.group = group
        self.key = (rule.id, key if key is not None else group_key(group))
        self.labels = alert_labels(rule.rule, group)
        self.state = saved.state if saved is not None else AlertState()
        self.incident_id = saved.incident_id if saved is not None else None
        self.saved = saved is not None
        self.saved_value = self.state.last_value
        #: the current episode's fire was handed to the incidents (auto-pause bookkeeping)
        self.reported = self.incident_id is not None and self.state.status is AlertStatus.FIRING
        self.series: list[SeriesEntry] = []
        self.host: str | None = None
        self.due = next_due(rule.rule, self.state)
        #: the newest sample's time when it was ahead of the clock: evaluated again then
        self.recheck: float | None = None

    @property
    def watched(self) -> bool:
        return (
            self.state.status is not AlertStatus.INACTIVE or self.due is not None or self.recheck is not None
        )


@dataclass(frozen=True, slots=True)
class Change:
    """An evaluation that must be written: transitions, or events to link to the alert's incident."""

    instance: Instance
    transitions: tuple[Transition, ...]
    event_ids: tuple[str, ...] = ()


def timers(s: AlertState) -> tuple[object, ...]:
    """What of a state is persisted on change; the value, the evaluation time and the memo are not
    (they move on nearly every evaluation, and are written with the next change)."""
    return (s.status, s.active_since, s.firing_since, s.keep_firing_since, s.resolved_at)


def event_hits(rule: Rule, event: EventSample) -> bool:
    """Whether ``event`` matches the event rule's ``match`` or ``resolve`` pattern."""
    c = rule.condition
    assert isinstance(c, EventMatch)
    return event_matches(c.match, event) or (c.resolve is not None and event_matches(c.resolve, event))
