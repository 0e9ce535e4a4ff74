"""Whether a notification is held back at a flush: silences, inhibition, mute and active times.

Order of the checks, and so the reason shown (``Suppression``): a **silence** first (a person's
explicit decision, the reason most worth showing), then **inhibition** (another incident explains
this one), then the route's **mute times** and **active times**. All of them hold back firing and
resolved notifications alike, as in Alertmanager.

Semantics, Alertmanager's:

* a silence is active from ``starts_at`` (inclusive) to ``ends_at`` (exclusive) and mutes the label
  sets that match all its matchers;
* an inhibit rule mutes a target (matching ``target``) while some *firing* label set matches
  ``source`` and has the same value of every ``equal`` label (a label missing on both sides counts
  as equal, the empty string). A label set that matches both ``source`` and ``target`` is not
  inhibited by a source that also matches both: otherwise two such incidents, or one with itself,
  would mute each other and nobody would hear of either;
* a time interval holds when every part it names holds (``notify/intervals.py``), evaluated at the
  wall-clock time of its zone (so "09:00-17:00 Europe/Paris" follows daylight saving time); a route
  is muted while any mute interval holds, and inactive while it has active intervals and none holds.

Why ``approval`` (and ``test``) are never suppressed: an approval request waits for a person's
answer before the responder may act, and a silence or a maintenance window is meant to quiet the
noise of incidents, not to leave an action unapproved until it expires; a test send is asked for by
the person who is watching for it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from infragent.notify.model import InhibitRule, RouteMatch, Silence, Suppression, TimeInterval
from infragent.notify.route import matches_all

NEVER_SUPPRESSED = frozenset({"approval", "test"})


def in_interval(interval: TimeInterval, now: float) -> bool:
    """Whether the instant ``now`` (unix seconds) falls in ``interval``, read in its time zone."""
    local = datetime.fromtimestamp(now, ZoneInfo(interval.time_zone))
    if interval.weekdays and local.weekday() not in interval.weekdays:
        return False
    if interval.months and local.month not in interval.months:
        return False
    if interval.days_of_month:
        length = calendar.monthrange(local.year, local.month)[1]
        days = {d if d > 0 else length + 1 + d for d in interval.days_of_month}
        if local.day not in days:
            return False
    if interval.times:
        minute = local.hour * 60 + local.minute
        if not any(t.start_minute <= minute < t.end_minute for t in interval.times):
            return False
    return True


def _time_suppression(match: RouteMatch, now: float) -> Suppression | None:
    for i, interval in enumerate(match.mute_times):
        if in_interval(interval, now):
            return Suppression("muted", f"mute_times[{i}] of route {match.route_id}")
    if match.active_times and not any(in_interval(i, now) for i in match.active_times):
        return Suppression("inactive", f"outside the active_times of route {match.route_id}")
    return None


def muted(match: RouteMatch, now: float) -> str | None:
    """Why ``match``'s route is quiet at ``now`` (a mute interval holds, or none of its active
    intervals does), or None when it may notify."""
    found = _time_suppression(match, now)
    return found.by if found is not None else None


def silence_active(silence: Silence, now: float) -> bool:
    return silence.starts_at <= now < silence.ends_at


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, str], now: float) -> Silence | None:
    """The active silence muting ``labels`` (of several, the one that ends last), or None."""
    found = [s for s in silences if silence_active(s, now) and matches_all(s.matchers, labels)]
    return max(found, key=lambda s: (s.ends_at, s.id)) if found else None


def inhibited_by(
    rules: Iterable[InhibitRule],
    target_labels: Mapping[str, str],
    firing_label_sets: Iterable[Mapping[str, str]],
) -> InhibitRule | None:
    """The first rule by which a firing label set inhibits ``target_labels``, or None."""
    firing = list(firing_label_sets)
    for rule in rules:
        if not matches_all(rule.target, target_labels):
            continue
        two_sided = matches_all(rule.source, target_labels)
        for source in firing:
            if not matches_all(rule.source, source):
                continue
            if any(source.get(name, "") != target_labels.get(name, "") for name in rule.equal):
                continue
            if two_sided and matches_all(rule.target, source):
                continue
            return rule
    return None


def verdict(
    match: RouteMatch,
    labels: Mapping[str, str],
    *,
    silences: Iterable[Silence],
    inhibit_rules: Iterable[InhibitRule],
    firing_label_sets: Iterable[Mapping[str, str]],
    now: float,
    kind: str,
) -> Suppression:
    """Whether a ``kind`` notification of an incident with ``labels`` on ``match``'s route is sent
    at ``now``, or why not (``by``: the silence id, the inhibit rule's name or id, the interval)."""
    if kind in NEVER_SUPPRESSED:
        return Suppression("send")
    silence = silenced_by(silences, labels, now)
    if silence is not None:
        return Suppression("silenced", silence.id)
    rule = inhibited_by(inhibit_rules, labels, firing_label_sets)
    if rule is not None:
        return Suppression("inhibited", rule.name or rule.id)
    return _time_suppression(match, now) or Suppression("send")
