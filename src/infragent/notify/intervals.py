"""Time intervals (a route's ``mute_times`` and ``active_times``) parsed from Alertmanager's shape,
and written back.

Shape: a list of intervals, each ``{"weekdays": ["monday:friday", "sunday"], "times":
[{"start_time": "09:00", "end_time": "17:00"}], "days_of_month": ["1:5", "-1"], "months":
["january:march", "12"], "location": "Europe/Paris"}``. An interval holds when every part it names
holds (an absent part is "any"); a list of intervals holds when any of them does. Ranges are
inclusive (``monday:friday``); ``end_time`` is exclusive and may be ``24:00``; a negative day of the
month counts from its end (``-1`` is the last day). Evaluation is in ``notify/mute.py``.

Why ranges are expanded into plain sets here: ``model.TimeInterval`` keeps sets of weekdays, days and
months, which evaluate with one membership test; the one range that cannot be expanded without
knowing the month (``1:-1``, from the first to the last day) is refused with a problem: write
``1:31``, which means the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from infragent.notify.model import TimeInterval, TimeRange
from infragent.notify.syntax import Problems, is_number, join, raise_problems, unknown_keys

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_KEYS = ("weekdays", "times", "days_of_month", "months", "location")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")


def _items(value: object, path: str, problems: Problems) -> list[tuple[str, object]]:
    if not isinstance(value, list | tuple):
        problems.append((path, "a list is expected"))
        return []
    return [(join(path, i), item) for i, item in enumerate(value)]


def _named(text: str, names: tuple[str, ...], base: int) -> int | None:
    """A weekday or month by name, or (months) by number."""
    low = text.strip().lower()
    if low in names:
        return names.index(low) + base
    if base == 1 and low.isdigit() and 1 <= int(low) <= len(names):
        return int(low)
    return None


def _name_ranges(
    value: object, path: str, problems: Problems, names: tuple[str, ...], base: int
) -> tuple[int, ...]:
    """Weekdays (0 = Monday) or months (1 = January): names, ``a:b`` inclusive ranges."""
    what = "weekday" if base == 0 else "month"
    out: set[int] = set()
    for here, item in _items(value, path, problems):
        text = str(item) if isinstance(item, str) or (base == 1 and is_number(item)) else None
        parts = text.split(":") if text is not None else []
        ends = [_named(p, names, base) for p in parts]
        if not parts or len(parts) > 2 or any(e is None for e in ends):
            problems.append(
                (here, f"a {what} or a range of them ({names[0]}:{names[2]}) is expected, not {item!r}")
            )
            continue
        first, last = ends[0], ends[-1]
        assert first is not None and last is not None
        if first > last:
            problems.append((here, f"a range must not end before it starts: {item!r}"))
            continue
        out.update(range(first, last + 1))
    return tuple(sorted(out))


def _days(value: object, path: str, problems: Problems) -> tuple[int, ...]:
    out: set[int] = set()
    for here, item in _items(value, path, problems):
        parts = str(item).split(":") if isinstance(item, str | int) and not isinstance(item, bool) else []
        try:
            ends = [int(p) for p in parts]
        except ValueError:
            ends = []
        if not ends or len(ends) > 2 or any(e == 0 or not -31 <= e <= 31 for e in ends):
            problems.append(
                (here, f"a day of the month (1 to 31, -1 the last) or a range is expected, not {item!r}")
            )
            continue
        first, last = ends[0], ends[-1]
        if (first < 0) != (last < 0):
            problems.append((here, f"both ends of a range count from the same end of the month: {item!r}"))
        elif first > last:
            problems.append((here, f"a range must not end before it starts: {item!r}"))
        else:
            out.update(range(first, last + 1))
    return tuple(sorted(out))


def _minute(text: object, path: str, problems: Problems) -> int | None:
    if isinstance(text, str) and _CLOCK.fullmatch(text.strip()):
        hours, minutes = text.strip().split(":")
        return int(hours) * 60 + int(minutes)
    problems.append((path, f"a time of day HH:MM (00:00 to 24:00) is expected, not {text!r}"))
    return None


def _times(value: object, path: str, problems: Problems) -> tuple[TimeRange, ...]:
    out: list[TimeRange] = []
    for here, item in _items(value, path, problems):
        if not isinstance(item, Mapping):
            problems.append((here, "an object with start_time and end_time is expected"))
            continue
        unknown_keys(item, ("start_time", "end_time"), here, problems)
        start = _minute(item.get("start_time"), join(here, "start_time"), problems)
        end = _minute(item.get("end_time"), join(here, "end_time"), problems)
        if start is not None and end is not None:
            if end <= start:
                problems.append((join(here, "end_time"), "end_time must be after start_time"))
            else:
                out.append(TimeRange(start, end))
    return tuple(out)


def _zone(value: object, path: str, problems: Problems) -> str:
    if isinstance(value, str) and value and value != "Local":
        try:
            ZoneInfo(value)
            return value
        except (ZoneInfoNotFoundError, ValueError):
            pass
    problems.append((path, f"an IANA time zone (Europe/Paris, UTC) is expected, not {value!r}"))
    return "UTC"


def time_intervals(value: object, path: str, problems: Problems) -> tuple[TimeInterval, ...]:
    """The intervals of a list (one object alone is taken as a list of one)."""
    listed = [value] if isinstance(value, Mapping) else value
    out: list[TimeInterval] = []
    for here, item in _items(listed, path, problems):
        if not isinstance(item, Mapping):
            problems.append((here, "a time interval object is expected"))
            continue
        unknown_keys(item, _KEYS, here, problems)
        out.append(
            TimeInterval(
                weekdays=_name_ranges(
                    item.get("weekdays", []), join(here, "weekdays"), problems, WEEKDAYS, 0
                ),
                times=_times(item.get("times", []), join(here, "times"), problems),
                days_of_month=_days(item.get("days_of_month", []), join(here, "days_of_month"), problems),
                months=_name_ranges(item.get("months", []), join(here, "months"), problems, MONTHS, 1),
                time_zone=_zone(item["location"], join(here, "location"), problems)
                if "location" in item
                else "UTC",
            )
        )
    return tuple(out)


def parse_time_intervals(value: object, path: str) -> tuple[TimeInterval, ...]:
    """``time_intervals`` that raises ``NotifyConfigError`` listing every problem."""
    problems: Problems = []
    out = time_intervals(value, path, problems)
    raise_problems(problems)
    return out


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def interval_doc(interval: TimeInterval) -> dict[str, Any]:
    """The document of ``interval`` (what ``time_intervals`` reads back to an equal value)."""
    doc: dict[str, Any] = {}
    if interval.weekdays:
        doc["weekdays"] = [WEEKDAYS[d] for d in interval.weekdays]
    if interval.times:
        doc["times"] = [
            {"start_time": _clock(t.start_minute), "end_time": _clock(t.end_minute)} for t in interval.times
        ]
    if interval.days_of_month:
        doc["days_of_month"] = [str(d) for d in interval.days_of_month]
    if interval.months:
        doc["months"] = [MONTHS[m - 1] for m in interval.months]
    if interval.time_zone != "UTC":
        doc["location"] = interval.time_zone
    return doc
