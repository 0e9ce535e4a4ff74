"""A schedule's spec as stored and as requested: read, validated, every refusal naming its field.

Why apart from ``store/schedules.py``: the API, the CLI and the claim read specs alike, and none of
it touches the database. The stored document is ``{"cron": "*/5 * * * *"}``, ``{"every_s": 300,
"start": 0}`` or ``{"at": t}`` (the zone of a cron spec is the schedule's ``tz`` column); the
request's fields are ``cron``, ``every`` (a duration such as ``15m``, or seconds) with an optional
``start``, or ``at`` (ISO 8601 or Unix seconds). The rules are the pure core's
(``responder/schedule.py``: cronsim reads the cron, an interval is at least a minute).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from infragent.errors import ConfigError, InfrAgentError
from infragent.responder.schedule import (
    MIN_INTERVAL_S,
    CronSpec,
    IntervalSpec,
    OnceSpec,
    ScheduleSpec,
    cron_problem,
    timezone_problem,
)
from infragent.rules.errors import RuleSyntaxError
from infragent.rules.syntax import parse_duration


class ScheduleError(InfrAgentError):
    """A schedule request refused: ``status`` is its HTTP answer (404 none, 409 name taken, 422
    invalid) and ``field`` the request field at fault (None for the whole)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.message = message
        self.field = field


#: the pure core's ``ConfigError`` key → the request field
_FIELDS = {
    "schedule.cron": "cron",
    "schedule.timezone": "timezone",
    "schedule.interval": "every",
    "schedule.start": "start",
    "schedule.once": "at",
}


def invalid(message: str, where: str) -> ScheduleError:
    return ScheduleError(422, message, where)


def spec_from_doc(doc: Mapping[str, Any], tz: str | None = None) -> ScheduleSpec:
    """The spec of a stored (or requested) document; ``ScheduleError`` 422 naming the field at fault."""
    kinds = [k for k in ("cron", "every_s", "at") if doc.get(k) is not None]
    if len(kinds) != 1:
        given = " and ".join(kinds) if kinds else "none"
        raise invalid(f"give exactly one of cron, every or at, not {given}", "spec")
    try:
        if kinds[0] == "cron":
            expr = doc["cron"]
            if not isinstance(expr, str):
                raise invalid("must be a string of 5 fields", "cron")
            problem = cron_problem(expr)
            if problem is not None:
                offset, message = problem
                raise invalid(f"{message} (column {offset + 1} of {expr!r})", "cron")
            return CronSpec(expr)
        if kinds[0] == "every_s":
            return IntervalSpec(float(doc["every_s"]), float(doc.get("start") or 0.0))
        return OnceSpec(float(doc["at"]))
    except ConfigError as exc:
        raise invalid(exc.message, _FIELDS.get(exc.key, "spec")) from None
    except (TypeError, ValueError):
        raise invalid(f"not a number: {doc[kinds[0]]!r}", kinds[0].removesuffix("_s")) from None


def _time(value: float | str, tz: str | None, what: str) -> float:
    """Unix seconds of a number or an ISO 8601 date-time (no offset: in ``tz``, else UTC)."""
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise invalid("must be a finite number of seconds", what)
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid(
            f"{value!r} is not an ISO 8601 date-time such as 2026-06-01T12:00:00Z, nor Unix seconds", what
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz) if tz else UTC)
    return parsed.timestamp()


def spec_doc(
    *,
    cron: str | None = None,
    every: float | str | None = None,
    start: float | str | None = None,
    at: float | str | None = None,
    tz: str | None = None,
) -> dict[str, Any]:
    """The stored document of a request's fields: ``every`` is a duration (``15m``, ``1h30m``) or
    seconds, ``start``/``at`` ISO 8601 or Unix seconds. Validated: ``ScheduleError`` 422."""
    if tz is not None and (problem := timezone_problem(tz)) is not None:
        raise invalid(problem, "timezone")
    given = [k for k, v in (("cron", cron), ("every", every), ("at", at)) if v is not None]
    if len(given) != 1:
        raise invalid(f"give exactly one of cron, every or at, not {' and '.join(given) or 'none'}", "spec")
    if start is not None and every is None:
        raise invalid("start goes with every (an interval)", "start")
    doc: dict[str, Any]
    if cron is not None:
        doc = {"cron": cron}
    elif every is not None:
        try:
            seconds = parse_duration(every) if isinstance(every, str) else float(every)
        except RuleSyntaxError as exc:
            raise invalid(f"{every!r} is not a duration such as 15m or 1h30m: {exc}", "every") from None
        if not math.isfinite(seconds) or seconds < MIN_INTERVAL_S:
            raise invalid(f"must be at least {MIN_INTERVAL_S:g} seconds (1m)", "every")
        doc = {"every_s": seconds, "start": 0.0 if start is None else _time(start, tz, "start")}
    else:
        assert at is not None
        doc = {"at": _time(at, tz, "at")}
    spec_from_doc(doc, tz)
    return doc
