"""Schedules: properties around every daylight-saving change of a few zones, bounded catch-up,
refused specs. The worked cases are data (guard_cases/next_run.yaml, due_runs.yaml)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from infragent.errors import ConfigError
from infragent.responder import schedule
from infragent.responder.schedule import (
    CronSpec,
    IntervalSpec,
    OnceSpec,
    cron_problem,
    describe,
    due_runs,
    latest_due,
    next_run,
    timezone_problem,
)

#: Zones with DST changes of one hour, of half an hour (Lord Howe), at odd local times (Chatham),
#: in the southern hemisphere (Santiago), and none (Tokyo).
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago")
EXPRESSIONS = ("30 2 * * *", "*/30 * * * *", "0 * * * *", "15 1-3 * * *", "45 2 * * 0", "*/7 2 * * *")


def _transitions(zone: str, year: int = 2026) -> list[float]:
    """The instants in ``year`` at which ``zone``'s UTC offset changes (to the hour)."""
    tz = ZoneInfo(zone)
    out = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    previous = t.astimezone(tz).utcoffset()
    while t.year == year:
        t += timedelta(hours=1)
        offset = t.astimezone(tz).utcoffset()
        if offset != previous:
            out.append(t.timestamp())
            previous = offset
    return out


def _around_changes(zone: str) -> list[float]:
    """Times every 10 minutes from 4 h before to 4 h after each change of ``zone`` in 2026."""
    return [t + k * 600.0 for t in _transitions(zone) for k in range(-24, 25)]


@pytest.mark.parametrize("zone", ZONES)
def test_next_run_is_strictly_after_and_never_goes_back_around_dst_changes(zone: str) -> None:
    assert len(_transitions(zone)) == 2
    for expr in EXPRESSIONS:
        spec = CronSpec(expr, zone)
        previous = -math.inf
        for after in _around_changes(zone):
            at = next_run(spec, after)
            assert at is not None and at > after, (expr, after)
            assert at >= previous, (expr, after, "next_run went back in time")
            previous = at


@pytest.mark.parametrize("zone", ZONES)
def test_latest_due_is_the_last_run_a_walk_finds(zone: str) -> None:
    rng = random.Random(zone)
    changes = _transitions(zone)
    for expr in EXPRESSIONS:
        spec = CronSpec(expr, zone)
        for _ in range(15):
            last = rng.choice(changes) + rng.uniform(-2 * 86400, 86400)
            now = last + rng.uniform(0, 3 * 86400)
            walked, at = None, next_run(spec, last)
            while at is not None and at <= now:
                walked, at = at, next_run(spec, at)
            assert latest_due(spec, last, now) == walked, (expr, last, now)


WILDCARD = ("*/30 * * * *", "0 * * * *", "*/7 2 * * *", "*/15 1-3 * * *")


def _wall_matches(expr: str, wall: datetime) -> bool:
    return next(CronSim(expr, wall - timedelta(seconds=1))) == wall


@pytest.mark.parametrize("zone", ZONES)
def test_a_wildcard_job_runs_at_every_real_minute_whose_wall_clock_matches(zone: str) -> None:
    """Minute by minute of real time around each change: the runs are exactly the instants whose
    local wall-clock time matches, both copies of a repeated time, none skipped (cronsim's own
    real-time stepping skips some next to Lord Howe's half-hour change; ours does not)."""
    tz = ZoneInfo(zone)
    for change in _transitions(zone):
        start, end = change - 4 * 3600, change + 4 * 3600
        for expr in WILDCARD:
            spec = CronSpec(expr, zone)
            expected = [
                m
                for m in range(int(start) + 60, int(end), 60)
                if _wall_matches(expr, datetime.fromtimestamp(m, tz).replace(tzinfo=None))
            ]
            runs, at = [], next_run(spec, start)
            while at is not None and at < end:
                runs.append(at)
                at = next_run(spec, at)
            assert runs == expected, (zone, expr)


def test_away_from_offset_changes_the_wall_walk_and_cronsim_agree() -> None:
    rng = random.Random(7)
    for zone in ZONES:
        for expr in WILDCARD:
            for _ in range(20):
                after = datetime(2026, 7, 1, tzinfo=UTC).timestamp() + rng.uniform(0, 10 * 86400)
                assert schedule._walk_wall(expr, ZoneInfo(zone), after) == next_run(
                    CronSpec(expr, zone), after
                )


def test_catching_up_is_bounded_however_long_the_downtime(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = schedule.next_run

    def counted(*args: Any) -> float | None:
        nonlocal calls
        calls += 1
        return real(*args)

    monkeypatch.setattr(schedule, "next_run", counted)
    last = datetime(1990, 1, 1, tzinfo=UTC).timestamp()
    now = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC).timestamp()
    spec = CronSpec("* * * * *")
    assert due_runs(spec, last, now, "run_once") == [now - 30]
    assert calls < 40


def test_an_interval_is_aligned_to_its_start_in_real_time() -> None:
    spec = IntervalSpec(3600.0, start=1000.0)
    assert next_run(spec, 0.0) == 1000.0
    assert next_run(spec, 1000.0) == 4600.0
    assert latest_due(spec, 0.0, 8199.0) == 4600.0
    assert latest_due(spec, 4600.0, 8199.0) is None


def test_a_one_off_runs_once() -> None:
    spec = OnceSpec(500.0)
    assert next_run(spec, 0.0) == 500.0 and next_run(spec, 500.0) is None
    assert latest_due(spec, 0.0, 499.0) is None and latest_due(spec, 0.0, 500.0) == 500.0


@pytest.mark.parametrize(
    ("expr", "offset", "message"),
    [
        pytest.param("61 2 * * *", 0, "bad minute field '61'", id="minute"),
        pytest.param("30  25 * * *", 4, "bad hour field '25'", id="hour-after-two-spaces"),
        pytest.param("0 0 32 * *", 4, "bad day-of-month field '32'", id="day"),
        pytest.param("0 0 * 13 *", 6, "bad month field '13'", id="month"),
        pytest.param("0 0 * * MON#6", 8, "bad day-of-week field 'MON#6'", id="nth-weekday"),
        pytest.param("0 0 30 2 *", 4, "bad day-of-month field '30'", id="february-30"),
        pytest.param("0 0 2 * * *", 0, "5 fields", id="six-fields"),
        pytest.param("@daily", 0, "macros such as @daily are not accepted", id="macro"),
        pytest.param("", 0, "not 0", id="empty"),
    ],
)
def test_cron_problems_name_the_field_at_fault(expr: str, offset: int, message: str) -> None:
    problem = cron_problem(expr)
    assert problem is not None and problem[0] == offset and message in problem[1]
    with pytest.raises(ConfigError):
        CronSpec(expr)


@pytest.mark.parametrize("expr", ["30 2 * * *", "*/5 9-17 * * MON-FRI", "0 0 L * *", "0 12 * JAN,JUL 1#1"])
def test_cron_expressions_cronsim_reads_are_accepted(expr: str) -> None:
    assert cron_problem(expr) is None
    assert next_run(CronSpec(expr, "Europe/Berlin"), 0.0) is not None


@pytest.mark.parametrize("name", ["Mars/Olympus", "utc", "../etc/passwd", "/etc/localtime", "", "Europe"])
def test_unknown_zones_are_refused(name: str) -> None:
    assert timezone_problem(name) is not None
    with pytest.raises(ConfigError) as caught:
        CronSpec("* * * * *", name)
    assert caught.value.key == "schedule.timezone"


@pytest.mark.parametrize(
    ("build", "key"),
    [
        pytest.param(lambda: IntervalSpec(59.0), "schedule.interval", id="under-a-minute"),
        pytest.param(lambda: IntervalSpec(math.nan), "schedule.interval", id="nan-interval"),
        pytest.param(lambda: IntervalSpec(60.0, math.inf), "schedule.start", id="infinite-start"),
        pytest.param(lambda: OnceSpec(math.nan), "schedule.once", id="nan-once"),
    ],
)
def test_bad_specs_are_refused(build: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.key == key


def test_bad_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="finite"):
        next_run(OnceSpec(1.0), math.nan)
    with pytest.raises(ValueError, match="missed-run policy"):
        due_runs(OnceSpec(1.0), 0.0, 2.0, "run_all")  # type: ignore[arg-type]


def test_descriptions_say_when_in_words() -> None:
    assert describe(CronSpec("30 2 * * *"), "Europe/Berlin") == (
        "cron '30 2 * * *' in Europe/Berlin (At 02:30 every day)"
    )
    assert describe(IntervalSpec(900.0)) == "every 900 s from 1970-01-01T00:00:00+00:00"
    assert describe(OnceSpec(0.0)) == "once at 1970-01-01T00:00:00+00:00"
