"""``Tenant``: one tenant's rules, series windows and alert instances in memory. No I/O, time passed in.

Why a series is matched to rules once: a host re-sends the same series every tick, so the first
batch resolves each series (host, name, attributes as sent) to the rules whose selector takes it
and to the alert instances (rule and group) it feeds; every later sample is a dict lookup and an
append to the series' buffer (``buffers.py``), with no label parsing per sample. A series no rule
selects is remembered as ``None`` and costs one lookup per batch.

Why only the instances a batch touched are evaluated at ingest: that is what can change with new
data. Timers (``for``, ``keep_firing_for``, absence deadlines) change outcomes with no data; the
tick evaluates the instances that are pending or firing or have a due time (``next_due``), the
host-level absence instances, and everything on a slower sweep (a window can also change as old
samples leave it).

Why instances are created with the persisted state: a new lease holder (after a restart or a
takeover) must continue each instance's timers, never start them over; instances persisted as
pending or firing whose series did not come back are created anyway, so they are evaluated and
resolve (or keep firing) as the rule says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from infragent.alerting.buffers import F64
from infragent.alerting.instances import (
    Change,
    Instance,
    RuleEntry,
    SeriesEntry,
    event_hits,
    keep_seconds,
    lookback_seconds,
    timers,
)
from infragent.alerting.ports import InstanceWrite, RuleRecord, SavedInstance, Written
from infragent.rules.evaluate import (
    evaluate,
    event_group_labels,
    group_key,
    group_labels,
    next_due,
    render_annotations,
)
from infragent.rules.model import Absence, EventMatch
from infragent.rules.state import AlertState, AlertStatus, Transition
from infragent.rules.window import EventSample, Window
from infragent.wire import SeriesData

logger = logging.getLogger(__name__)

#: Series lookups remembered per tenant before the cache is rebuilt (a cardinality explosion).
MAX_SERIES_CACHE = 1_000_000

_SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]


class Tenant:
    """Rules, series and instances of one tenant held by this process's evaluator."""

    def __init__(
        self,
        client_id: str,
        rules: Sequence[RuleRecord],
        saved: Sequence[SavedInstance],
        *,
        max_instances: int,
        auto_pause_s: float = 0.0,
    ) -> None:
        self.client_id = client_id
        self.max_instances = max_instances
        self.auto_pause_s = auto_pause_s
        entries = [
            RuleEntry(r, keep_seconds(r.rule), lookback_seconds(r.rule)) for r in rules if r.rule.enabled
        ]
        self.rules = entries
        self.by_metric: dict[str, list[RuleEntry]] = {}
        self.host_rules: list[RuleEntry] = []
        self.event_rules: list[RuleEntry] = []
        for e in entries:
            selector = e.rule.selector
            if isinstance(e.rule.condition, EventMatch):
                self.event_rules.append(e)
            elif selector is not None:
                self.by_metric.setdefault(selector.metric, []).append(e)
            elif isinstance(e.rule.condition, Absence):
                self.host_rules.append(e)
        self.instances: dict[tuple[str, str], Instance] = {}
        self.saved = {(s.rule_id, s.group_key): s for s in saved}
        self.watch: set[Instance] = set()
        self.host_instances: list[Instance] = []
        self.host_seen: dict[str, float] = {}
        self._quick: dict[_SeriesKey, SeriesEntry | None] = {}
        self._canon: dict[_SeriesKey, SeriesEntry | None] = {}
        self._by_host_name: dict[tuple[str, str], list[SeriesEntry]] = {}
        #: instances refused by the cap since the evaluator last counted them, and rules already logged
        self.refused = 0
        self._refused_rules: set[str] = set()
        self._retiring: list[Instance] = []
        self._adopt_saved({r.id: r for r in rules if not r.rule.enabled})

    # -- instances ------------------------------------------------------------------------------------

    def _adopt_saved(self, switched_off: dict[str, RuleRecord]) -> None:
        """Persisted pending/firing instances exist from the start, with or without their series;
        those of a rule switched off since are retired (``retire``)."""
        rules = {e.id: e for e in self.rules}
        for s in self.saved.values():
            if s.state.status is not AlertStatus.INACTIVE and s.rule_id in switched_off:
                off = switched_off[s.rule_id]
                self._retiring.append(Instance(RuleEntry(off, 0.0, 0.0), s.labels, s, key=s.group_key))
            entry = rules.get(s.rule_id)
            if entry is not None and s.state.status is not AlertStatus.INACTIVE:
                inst = self._add(entry, s.labels, s.group_key)
                if (
                    inst is not None
                    and isinstance(entry.rule.condition, Absence)
                    and entry.rule.selector is None
                ):
                    inst.host = s.labels.get("host")
                    self.host_instances.append(inst)

    def _add(self, rule: RuleEntry, group: dict[str, str], key: str | None = None) -> Instance | None:
        gkey = key if key is not None else group_key(group)
        found = self.instances.get((rule.id, gkey))
        if found is not None:
            return found
        if len(self.instances) >= self.max_instances:
            self.refused += 1
            if rule.id not in self._refused_rules:
                self._refused_rules.add(rule.id)
                logger.warning(
                    "tenant %s: rule %r would pass max_alert_instances_per_tenant (%d); new groups ignored",
                    self.client_id,
                    rule.record.name,
                    self.max_instances,
                )
            return None
        inst = Instance(rule, group, self.saved.get((rule.id, gkey)), key=gkey)
        self.instances[inst.key] = inst
        if inst.watched:
            self.watch.add(inst)
        return inst

    def instance(self, rule: RuleEntry, group: dict[str, str]) -> Instance | None:
        return self._add(rule, group)

    # -- series ---------------------------------------------------------------------------------------

    def metric_names(self) -> list[str]:
        return sorted(self.by_metric)

    def lookback(self, name: str) -> float:
        return max((e.lookback_s for e in self.by_metric.get(name, ())), default=0.0)

    def series_of(self, host: str, name: str) -> list[SeriesEntry]:
        """The series of ``host``/``name`` held (those some rule selects)."""
        return self._by_host_name.get((host, name), [])

    def series(self, host: str, name: str, attributes: Mapping[str, str]) -> SeriesEntry | None:
        """The series' entry (created and matched on first sight), or None if no rule selects it."""
        quick = (host, name, tuple(attributes.items()))
        try:
            return self._quick[quick]
        except KeyError:
            pass
        if len(self._quick) >= MAX_SERIES_CACHE:
            self._quick.clear()
        canon = (host, name, tuple(sorted(attributes.items())))
        if canon in self._canon:
            entry = self._canon[canon]
        else:
            entry = self._canon[canon] = self._match(host, name, attributes)
        self._quick[quick] = entry
        return entry

    def _match(self, host: str, name: str, attributes: Mapping[str, str]) -> SeriesEntry | None:
        rules = self.by_metric.get(name)
        if not rules:
            return None
        labels = {**attributes, "host": host}
        matching = [e for e in rules if e.rule.selector is not None and e.rule.selector.matches(name, labels)]
        if not matching:
            return None
        entry = SeriesEntry(host, name, attributes, max(e.keep_s for e in matching))
        self._by_host_name.setdefault((host, name), []).append(entry)
        for e in matching:
            inst = self._add(e, group_labels(e.rule, labels))
            if inst is not None:
                inst.series.append(entry)
                entry.instances.append(inst)
        return entry

    def observe(self, host: str, series: Iterable[SeriesData]) -> set[Instance]:
        """Add a stored batch's samples; the instances whose windows changed."""
        dirty: set[Instance] = set()
        for s in series:
            if not s.values:
                continue
            entry = self.series(host, s.name, s.attributes)
            if entry is None:
                continue
            if len(s.values) == 1:
                entry.append(s.timestamps[0], s.values[0])
            else:
                entry.extend(
                    np.asarray(s.timestamps, dtype=np.float64), np.asarray(s.values, dtype=np.float64)
                )
            dirty.update(entry.instances)
        return dirty

    def fill(
        self, host: str, name: str, attributes: Mapping[str, str], ts: F64, values: F64, *, since: float
    ) -> set[Instance]:
        """Samples read back from the store (a new holder, or a refresh); ``since`` is where the read
        started: a series with nothing since then has been silent at least that long."""
        entry = self.series(host, name, attributes)
        if entry is None:
            return set()
        entry.extend(ts, values)
        if entry.buffer.last_ts is None and entry.floor_seen is None:
            entry.floor_seen = since
        return set(entry.instances)

    def note_hosts(self, seen: Mapping[str, float]) -> None:
        """Each host's last sign of life (read once per tick): groups of the host-level absence rules."""
        self.host_seen = dict(seen)
        for e in self.host_rules:
            for host in seen:
                group = group_labels(e.rule, {"host": host})
                key = (e.id, group_key(group))
                if key in self.instances:
                    continue
                inst = self._add(e, group)
                if inst is not None:
                    inst.host = host
                    self.host_instances.append(inst)

    # -- evaluation -----------------------------------------------------------------------------------

    def _window(self, inst: Instance, events: tuple[EventSample, ...]) -> Window:
        if inst.host is not None:
            return Window(labels=inst.group, last_seen=self.host_seen.get(inst.host))
        if not inst.series:
            return Window(labels=inst.group, events=events)
        series = tuple(e.samples() for e in inst.series)
        seen = [t for e in inst.series if (t := e.last_seen) is not None]
        return Window(labels=inst.group, series=series, last_seen=max(seen) if seen else None, events=events)

    def evaluate(self, inst: Instance, now: float, events: tuple[EventSample, ...] = ()) -> Change | None:
        """Evaluate one instance; a ``Change`` when something must be written: a transition, a
        timer that moved without one (``keep_firing_since`` set or cleared), or events to link."""
        before = timers(inst.state)
        window = self._window(inst, events)
        state, transitions = evaluate(inst.rule.rule, inst.state, window, now)
        inst.state = state
        inst.due = next_due(inst.rule.rule, state)
        ahead = window.last_seen is not None and window.last_seen > now and inst.host is None
        # samples stamped ahead of our clock (an agent's clock runs fast) count once we reach them
        inst.recheck = window.last_seen if ahead else None
        if inst.watched:
            self.watch.add(inst)
        else:
            self.watch.discard(inst)
        linked = tuple(e.event_id for e in events if e.event_id)
        moved = timers(state) != before
        if transitions or moved or (linked and inst.reported and inst.incident_id is not None):
            return Change(inst, tuple(transitions), linked)
        return None

    def evaluate_all(self, instances: Iterable[Instance], now: float) -> tuple[list[Change], int]:
        changes = []
        n = 0
        for inst in instances:
            n += 1
            change = self.evaluate(inst, now)
            if change is not None:
                changes.append(change)
        return changes, n

    def due(self, now: float, *, sweep: bool = False) -> list[Instance]:
        """What the tick evaluates: timers due, pending/firing instances, the absence instances of
        hosts silent long enough; everything on a sweep."""
        if sweep:
            return list(self.instances.values())
        picked = {
            i
            for i in self.watch
            if i.state.status is not AlertStatus.INACTIVE
            or (i.due is not None and i.due <= now)
            or (i.recheck is not None and i.recheck <= now)
        }
        picked.update(i for i in self.host_instances if self._silent_enough(i, now))
        return list(picked)

    def _silent_enough(self, inst: Instance, now: float) -> bool:
        """A quiet host's absence instance can only start holding once the host has been silent for
        the rule's ``silent``; before that, evaluating it every tick would change nothing."""
        c = inst.rule.rule.condition
        seen = self.host_seen.get(inst.host or "")
        return isinstance(c, Absence) and seen is not None and seen + c.silent_s <= now

    def observe_event(self, event: EventSample, now: float) -> list[Change]:
        changes = []
        for e in self.event_rules:
            if not event_hits(e.rule, event):
                continue
            inst = self._add(e, event_group_labels(e.rule, event))
            if inst is not None and (change := self.evaluate(inst, now, (event,))) is not None:
                changes.append(change)
        return changes

    def retire(self, now: float) -> list[Change]:
        """End the alerts of rules switched off (once, after loading): a firing one resolves now,
        so its incident can resolve too; a pending one goes inactive."""
        changes = []
        for inst in self._retiring:
            old = inst.state
            resolved_at = now if old.status is AlertStatus.FIRING else old.resolved_at
            inst.state = AlertState(last_value=old.last_value, last_eval=now, resolved_at=resolved_at)
            gone = Transition(
                now, old.status, AlertStatus.INACTIVE, old.last_value, "the rule was switched off"
            )
            changes.append(Change(inst, (gone,)))
        self._retiring = []
        return changes

    def claims(self, event: EventSample) -> bool:
        return any(event_hits(e.rule, event) for e in self.event_rules)

    def deferred(self, now: float) -> list[Instance]:
        """Firing instances whose fire the auto-pause held back and that are still firing after it."""
        if self.auto_pause_s <= 0:
            return []
        return [
            i
            for i in self.watch
            if i.state.status is AlertStatus.FIRING
            and not i.reported
            and i.state.firing_since is not None
            and i.state.firing_since + self.auto_pause_s <= now
        ]

    # -- writes ---------------------------------------------------------------------------------------

    def write_for(self, change: Change) -> InstanceWrite:
        inst = change.instance
        return self._write(inst, change.transitions, change.event_ids)

    def deferred_write(self, inst: Instance) -> InstanceWrite:
        fired_from = AlertStatus.PENDING if inst.rule.rule.for_s > 0 else AlertStatus.INACTIVE
        at = inst.state.firing_since if inst.state.firing_since is not None else 0.0
        fire = Transition(
            at,
            fired_from,
            AlertStatus.FIRING,
            inst.state.last_value,
            f"still firing after the incident auto-pause ({self.auto_pause_s:g}s)",
        )
        return self._write(inst, (), (), deferred=fire)

    def _write(
        self,
        inst: Instance,
        transitions: tuple[Transition, ...],
        event_ids: tuple[str, ...],
        deferred: Transition | None = None,
    ) -> InstanceWrite:
        rule = inst.rule.rule
        return InstanceWrite(
            rule_id=inst.rule.id,
            rule_name=inst.rule.record.name,
            group_key=inst.key[1],
            labels=inst.labels,
            severity=rule.severity,
            annotations=render_annotations(rule, inst.labels, inst.state.last_value),
            state=inst.state,
            transitions=transitions,
            incident_id=inst.incident_id,
            reported=inst.reported,
            report_fired=self.auto_pause_s <= 0,
            deferred_fire=deferred,
            event_ids=event_ids,
        )

    def committed(self, write: InstanceWrite, written: Written | None) -> None:
        """A write of this tenant is durable: the instance has a row, and maybe a (new) incident."""
        inst = self.instances.get(write.key)
        if inst is None or written is None:
            return
        inst.saved = True
        inst.saved_value = write.state.last_value
        inst.incident_id = written.incident_id
        inst.reported = written.reported

    def counts(self) -> tuple[int, int, int]:
        """(pending, firing, all) instances."""
        pending = sum(1 for i in self.watch if i.state.status is AlertStatus.PENDING)
        firing = sum(1 for i in self.watch if i.state.status is AlertStatus.FIRING)
        return pending, firing, len(self.instances)

    def unsaved_values(self) -> list[Instance]:
        """Persisted instances whose value moved since it was last written."""
        return [i for i in self.instances.values() if i.saved and i.state.last_value != i.saved_value]
