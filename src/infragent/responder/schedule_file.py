"""A runbook's schedule as YAML (or JSON), every mistake at its line and column.

Why a reader over composed nodes: the same reason as the rule and runbook files (``rules/nodes.py``,
``runbook_check.py``): a person fixing a schedule wants each mistake placed where an editor jumps
to it, the bad field of a cron expression included. ``read_schedule`` reads one schedule mapping
inside any file (a runbook's ``schedule:`` key); ``check_schedule_text`` reads a text that is one.

The format, one of ``cron``, ``interval`` or ``once``:

    cron: "30 2 * * 1-5"        # 5 fields, read by cronsim (responder/schedule.py)
    timezone: Europe/Berlin     # IANA name; default: the tenant's, else UTC
    missed: skip                # or run_once: what a run missed while no server ran becomes

    interval: 15m               # a duration (15m, 1h30m) or seconds; at least a minute
    start: 2026-05-01T00:00:00Z # optional; default the Unix epoch (runs at :00 :15 :30 :45 UTC)

    once: 2026-06-01T12:00:00+02:00

A time is an ISO 8601 date-time (an offset, ``Z``, or none: then it is in ``timezone``, else UTC)
or a number of Unix seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from yaml.nodes import Node, ScalarNode

from infragent.responder.schedule import (
    MIN_INTERVAL_S,
    MISSED_POLICIES,
    CronSpec,
    IntervalSpec,
    MissedPolicy,
    OnceSpec,
    Schedule,
    ScheduleSpec,
    cron_problem,
    timezone_problem,
)
from infragent.rules.errors import Problem, ProblemReport
from infragent.rules.nodes import Reader, kind_of

KINDS: Final = ("cron", "interval", "once")
KEYS: Final = {
    "cron": ("cron", "timezone", "missed"),
    "interval": ("interval", "start", "timezone", "missed"),
    "once": ("once", "timezone", "missed"),
}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


@dataclass(frozen=True, slots=True)
class ScheduleCheck(ProblemReport):
    """The problems of a text in order of place, and its schedule when there are none."""

    problems: list[Problem] = field(default_factory=list)
    schedule: Schedule | None = None


def check_schedule_text(text: str, source: str = "schedule") -> ScheduleCheck:
    """Check ``text`` as one schedule mapping; ``source`` names it in each ``Problem``."""
    r = Reader(source)
    schedule = None
    if not text.strip():
        r.problem(None, "the text is empty: expected a mapping with cron, interval or once")
    else:
        root = r.compose(text)
        if root is not None:
            schedule = read_schedule(r, root, "schedule")
    problems = sorted(r.problems, key=lambda p: (p.line, p.column))
    return ScheduleCheck(problems, None if problems else schedule)


def read_schedule(r: Reader, node: Node, where: str) -> Schedule | None:
    """The schedule of mapping ``node`` (``where`` names it in messages); None, with every problem
    recorded in ``r``, when it is invalid."""
    items = r.mapping(node, where)
    if items is None:
        return None
    before = len(r.problems)
    kinds = [k for k in KINDS if k in items]
    if len(kinds) != 1:
        given = f"{' and '.join(kinds)} together" if kinds else "none of them"
        r.problem(node, f"{where}: give exactly one of cron, interval or once, not {given}")
        return None
    kind = kinds[0]
    r.keys(items, node, f"{where} ({kind})", KEYS[kind])

    def get(key: str) -> Node | None:
        return items[key][1] if key in items else None

    tz: str | None = None
    if (n := get("timezone")) is not None:
        tz = r.string(n, f"{where}.timezone")
        if tz is not None and (problem := timezone_problem(tz)) is not None:
            r.problem(n, f"{where}.timezone: {problem}")
            tz = None
    missed: MissedPolicy = "skip"
    if (n := get("missed")) is not None:
        got = r.string(n, f"{where}.missed")
        if got is not None and got not in MISSED_POLICIES:
            r.problem(n, f"{where}.missed: must be {' or '.join(MISSED_POLICIES)}, not {got!r}")
        elif got is not None:
            missed = got
    spec = _read_spec(r, kind, items[kind][1], get("start"), tz, where)
    if len(r.problems) > before or spec is None:
        return None
    return Schedule(spec, missed)


def _read_spec(
    r: Reader, kind: str, node: Node, start_node: Node | None, tz: str | None, where: str
) -> ScheduleSpec | None:
    if kind == "cron":
        expr = r.string(node, f"{where}.cron")
        if expr is None:
            return None
        problem = cron_problem(expr)
        if problem is not None:
            offset, message = problem
            r.problem(node, f"{where}.cron: {message}", offset=r.offset_in(node, offset))
            return None
        return CronSpec(expr, tz)
    if kind == "interval":
        every = r.duration(node, f"{where}.interval")
        if every is not None and every < MIN_INTERVAL_S:
            r.problem(node, f"{where}.interval: must be at least {MIN_INTERVAL_S:g} seconds (1m)")
            every = None
        start = 0.0 if start_node is None else _time(r, start_node, tz, f"{where}.start")
        if every is None or start is None:
            return None
        return IntervalSpec(every, start)
    at = _time(r, node, tz, f"{where}.once")
    return None if at is None else OnceSpec(at)


def _time(r: Reader, node: Node, tz: str | None, what: str) -> float | None:
    """Unix seconds of an ISO 8601 date-time (YAML's own timestamp or a string) or of a number."""
    expected = "an ISO 8601 date-time such as 2026-06-01T12:00:00Z, or Unix seconds"
    if isinstance(node, ScalarNode) and node.tag == _TIMESTAMP:
        try:
            value = r.plain(node)
        except ValueError as exc:  # shaped like a timestamp, not a real one: 2026-13-01
            r.problem(node, f"{what}: {node.value!r} is not a date-time: {exc}")
            return None
        if isinstance(value, datetime):
            return _aware(value, tz).timestamp()
        if isinstance(value, date):
            r.problem(node, f"{what}: a date without a time of day; write {expected}")
            return None
    if isinstance(node, ScalarNode) and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
        seconds = r.number(node, what)
        if seconds is not None and not math.isfinite(seconds):
            r.problem(node, f"{what}: must be a finite number of seconds")
            return None
        return seconds
    if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        r.problem(node, f"{what}: must be {expected}, not {kind_of(node)}")
        return None
    try:
        parsed = datetime.fromisoformat(str(node.value).strip())
    except ValueError:
        r.problem(node, f"{what}: {node.value!r} is not {expected}")
        return None
    return _aware(parsed, tz).timestamp()


def _aware(value: datetime, tz: str | None) -> datetime:
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(tz) if tz else UTC)
