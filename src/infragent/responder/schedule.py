"""Scheduled runbooks: when a cron, interval or one-off schedule runs next, and what runs after downtime.

Three kinds of ``ScheduleSpec``:

* ``CronSpec``: a 5-field cron expression (minute hour day-of-month month day-of-week) in a time
  zone (IANA name; the spec's own, else the ``tz`` a caller passes, else UTC). The expression is
  read by cronsim, a maintained cron library, not by a parser of ours; its Debian-cron rules hold,
  names (``MON``, ``JAN``), ``L``, ``LW`` and ``#`` included. A 6-field expression (seconds) or a
  macro (``@daily``) is refused: a runbook runs at most once a minute.
* ``IntervalSpec``: every ``every_s`` seconds of real time (at least a minute) from ``start``
  (default the Unix epoch, so ``every 15m`` runs at :00, :15, :30 and :45 UTC). Real time: an
  interval does not stretch or shrink across a daylight-saving change; use cron for wall clock.
* ``OnceSpec``: once, at ``at``.

**Daylight saving** (cron in a zone with DST). The rules are Debian cron's, as cronsim keeps them:
a job at a fixed time that falls in the gap of a spring-forward change (``30 2 * * *`` in
Europe/Berlin on the last Sunday of March) runs at the first valid time after it (03:00); a job at
a fixed time that happens twice in a fall-back change runs once, at the first. A job whose minute
or hour is a wildcard (``*/30 * * * *``, ``0 * * * *``) follows real time and runs in both copies
of the repeated hour, at every real minute whose wall-clock time matches. Two corrections of ours
on top of cronsim: ``next_run`` is never at or before ``after`` (cronsim, started inside the
repeated hour, can name the first copy of a time already passed: such a time is skipped); and near
an offset change a wildcard job walks the wall clock (cronsim matching naive times, each mapped to
its instants), because cronsim steps such a job's hours in real time and, next to a half-hour
change (Australia/Lord_Howe) or a change at an odd local time (Pacific/Chatham), steps over runs.

**Missed runs after downtime** (``due_runs``): ``run_once`` runs the latest missed run once;
``skip`` runs it only when it is at most ``grace_s`` late (default a minute: an ordinary tick's
lateness) and otherwise waits for the next. Never more than one run per call, whatever the
downtime: a burst of catch-up runs is a storm of its own. ``skip`` is the default of a schedule
(``Schedule.missed``): a remediation run at an unplanned hour is worse than a missed one. The due
time names the run (the store's unique key next), so two servers that find the same run due at
once claim it, and only one wins. After the call the schedule's last run is ``latest_due``,
whether it ran or was skipped, so a skipped run is not found again.

Pure: no clock (``after``/``now`` are passed) and no store; the zone database is read through
``zoneinfo``. Bounded: ``latest_due`` finds the latest due time by bisection (tens of cronsim
steps however long the downtime), never by walking every missed run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from infragent.errors import ConfigError

MissedPolicy = Literal["run_once", "skip"]
MISSED_POLICIES: Final[tuple[MissedPolicy, ...]] = ("run_once", "skip")
#: The shortest interval: a runbook runs at most once a minute (as cron's finest field).
MIN_INTERVAL_S: Final = 60.0
#: How late a due run may be and still count as on time under ``skip``.
DEFAULT_GRACE_S: Final = 60.0
DEFAULT_TZ: Final = "UTC"
CRON_FIELDS: Final = ("minute", "hour", "day-of-month", "month", "day-of-week")
#: cronsim's field names in its errors ("Bad day-of-month") → the 5-field position.
_CRONSIM_FIELDS: Final = {name: i for i, name in enumerate(CRON_FIELDS)}
#: Times cronsim may yield at or before ``after`` in a row (inside a repeated hour) before we give up.
_MAX_SKIPS: Final = 4
#: More than any change of a zone's UTC offset (2 h at most in the tz database) and its reordering.
_DST_SLACK: Final = timedelta(hours=3)
#: Wall-clock matches looked at near an offset change: a minutely job has ~360 in its slack.
_MAX_WALK: Final = 5000


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not a time zone here, or None when it is one (an IANA name: ``UTC``,
    ``Europe/Berlin``)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Berlin"
    return None


def cron_problem(expr: str) -> tuple[int, str] | None:
    """Why ``expr`` is not a 5-field cron expression, with the 0-based offset of the field at fault
    (0 for the whole); None when cronsim reads it."""
    fields = [(m.start(), m.group()) for m in re.finditer(r"\S+", expr)]
    if len(fields) != len(CRON_FIELDS):
        hint = " (macros such as @daily are not accepted)" if expr.strip().startswith("@") else ""
        return 0, f"a cron expression has 5 fields ({' '.join(CRON_FIELDS)}), not {len(fields)}{hint}"
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        field = str(exc).removeprefix("Bad ")
        index = _CRONSIM_FIELDS.get(field)
        if index is None:
            return 0, f"not a cron expression: {exc}"
        offset, value = fields[index]
        return offset, f"bad {field} field {value!r}"
    return None


@dataclass(frozen=True, slots=True)
class CronSpec:
    expr: str
    #: the zone the fields are read in; None: the caller's ``tz`` (else UTC)
    tz: str | None = None

    def __post_init__(self) -> None:
        problem = cron_problem(self.expr)
        if problem is not None:
            raise ConfigError("schedule.cron", problem[1])
        if self.tz is not None and (tz_problem := timezone_problem(self.tz)) is not None:
            raise ConfigError("schedule.timezone", tz_problem)


@dataclass(frozen=True, slots=True)
class IntervalSpec:
    every_s: float
    start: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.every_s) and self.every_s >= MIN_INTERVAL_S):
            raise ConfigError("schedule.interval", f"must be at least {MIN_INTERVAL_S:g} seconds")
        if not math.isfinite(self.start):
            raise ConfigError("schedule.start", "must be a finite time")


@dataclass(frozen=True, slots=True)
class OnceSpec:
    at: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.at):
            raise ConfigError("schedule.once", "must be a finite time")


ScheduleSpec = CronSpec | IntervalSpec | OnceSpec


@dataclass(frozen=True, slots=True)
class Schedule:
    """A runbook's schedule: when it runs and what happens to runs missed while no server ran."""

    spec: ScheduleSpec
    missed: MissedPolicy = "skip"


def _finite(*values: float) -> None:
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"a time must be a finite number, not {value!r}")


def _fixed_time(expr: str) -> bool:
    """Whether cron reads ``expr`` as a job at fixed wall-clock times (neither minute nor hour a
    wildcard): Debian cron's DST rules apply (cronsim's own test, mirrored)."""
    fields = expr.split()
    return not fields[0].startswith("*") and not fields[1].startswith("*")


def _instants(wall: datetime, zone: ZoneInfo) -> list[float]:
    """The instants at which the clocks of ``zone`` show ``wall``: none in a spring-forward gap,
    two in a repeated stretch of a fall-back change, one otherwise."""
    out = []
    for fold in (0, 1):
        local = wall.replace(tzinfo=zone, fold=fold)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
            out.append(local.timestamp())
    return sorted(set(out))


def _walk_wall(expr: str, zone: ZoneInfo, after: float) -> float | None:
    """The first instant after ``after`` whose wall-clock time matches ``expr`` (every copy of a
    repeated time, none in a gap): cronsim walks naive wall-clock times, this maps each to its
    instants and keeps the earliest, looking ``_DST_SLACK`` either side of any reordering."""
    wall = datetime.fromtimestamp(after, zone).replace(tzinfo=None, microsecond=0)
    it = CronSim(expr, wall - _DST_SLACK)
    best: float | None = None
    best_wall = wall
    for _ in range(_MAX_WALK):
        candidate = next(it, None)
        if candidate is None:  # no match within cronsim's 50 years
            break
        if best is not None and candidate > best_wall + _DST_SLACK:
            break
        for at in _instants(candidate, zone):
            if at > after and (best is None or at < best):
                best, best_wall = at, candidate
    return best


def _offset(at: float, zone: ZoneInfo) -> object:
    return datetime.fromtimestamp(at, zone).utcoffset()


def _cron_next(spec: CronSpec, after: float, tz: str | None) -> float | None:
    zone = ZoneInfo(spec.tz or tz or DEFAULT_TZ)
    try:
        it = CronSim(spec.expr, datetime.fromtimestamp(math.floor(after), zone))
        found = None
        for _ in range(_MAX_SKIPS):
            at = next(it).timestamp()
            if at > after:
                found = at
                break
        if found is None or _fixed_time(spec.expr):
            return found
        slack = _DST_SLACK.total_seconds()
        if found - after <= 86400 and _offset(after - slack, zone) == _offset(found + slack, zone):
            return found  # no offset change nearby: cronsim's real-time walk is exact
        # cronsim steps a wildcard job's hours in real time and can step over runs next to an
        # offset change of half an hour (Lord Howe) or at an odd local time (Chatham): walk the
        # wall clock instead.
        return _walk_wall(spec.expr, zone, after)
    except (StopIteration, OverflowError, ValueError, OSError):
        return None  # no match within cronsim's 50 years, or past the calendar's end


def next_run(spec: ScheduleSpec, after: float, tz: str | None = None) -> float | None:
    """The first run strictly after ``after`` (Unix seconds), or None when there is none (a
    one-off in the past, a cron that never matches again). ``tz`` is the zone of a cron spec
    without its own (a tenant's, say); UTC when neither names one."""
    _finite(after)
    if isinstance(spec, CronSpec):
        return _cron_next(spec, after, tz)
    if isinstance(spec, IntervalSpec):
        if after < spec.start:
            return spec.start
        at = spec.start + (math.floor((after - spec.start) / spec.every_s) + 1) * spec.every_s
        return at if at > after else at + spec.every_s  # float rounding
    return spec.at if spec.at > after else None


def latest_due(spec: ScheduleSpec, after: float, now: float, tz: str | None = None) -> float | None:
    """The latest run time in ``(after, now]``, or None when none falls there. Bounded whatever the
    span: a cron spec is bisected (each probe one ``next_run``), never walked run by run."""
    _finite(after, now)
    first = next_run(spec, after, tz)
    if first is None or first > now:
        return None
    if isinstance(spec, OnceSpec):
        return first
    if isinstance(spec, IntervalSpec):
        at = spec.start + math.floor((now - spec.start) / spec.every_s) * spec.every_s
        return at if at <= now else at - spec.every_s  # float rounding
    lo = first  # invariant: next_run(lo) <= now or lo is the answer; next_run(hi) > now
    probe = next_run(spec, lo, tz)
    if probe is None or probe > now:
        return lo
    hi = now
    while hi - lo > 1:  # cron runs are whole minutes apart: a 1-second bracket holds at most one
        mid = (lo + hi) / 2
        found = next_run(spec, mid, tz)
        if found is not None and found <= now:
            lo = mid
        else:
            hi = mid
    return next_run(spec, lo, tz)


def due_runs(
    spec: ScheduleSpec,
    last_run: float,
    now: float,
    policy: MissedPolicy = "skip",
    tz: str | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> list[float]:
    """The run times to start now: at most one, the latest due in ``(last_run, now]``; under
    ``skip`` only when it is at most ``grace_s`` late. ``last_run`` is the due time of the last run
    (run or skipped), or the schedule's creation time. Afterwards store ``latest_due`` as it."""
    if policy not in MISSED_POLICIES:
        raise ValueError(f"unknown missed-run policy {policy!r}: choose from {', '.join(MISSED_POLICIES)}")
    latest = latest_due(spec, last_run, now, tz)
    if latest is None:
        return []
    if policy == "skip" and now - latest > grace_s:
        return []
    return [latest]


def describe(spec: ScheduleSpec, tz: str | None = None) -> str:
    """A line for a person: ``cron '30 2 * * *' in Europe/Berlin (At 02:30)``, ``every 900 s``…"""
    if isinstance(spec, CronSpec):
        zone = spec.tz or tz or DEFAULT_TZ
        try:
            words = f" ({CronSim(spec.expr, datetime(2000, 1, 1, tzinfo=UTC)).explain()})"
        except Exception:  # noqa: BLE001 - the wording is a courtesy; the expression stands alone
            words = ""
        return f"cron {spec.expr!r} in {zone}{words}"
    if isinstance(spec, IntervalSpec):
        start = datetime.fromtimestamp(spec.start, UTC).isoformat()
        return f"every {spec.every_s:g} s from {start}"
    return f"once at {datetime.fromtimestamp(spec.at, UTC).isoformat()}"
