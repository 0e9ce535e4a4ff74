"""``check_schedule_text`` and ``read_schedule``: a runbook's schedule, every mistake at its 1-based
line and column (the bad field of a cron expression included), and the schedule of a valid text."""

from __future__ import annotations

from datetime import datetime

import pytest

from infragent.responder.schedule import CronSpec, IntervalSpec, OnceSpec, Schedule
from infragent.responder.schedule_file import check_schedule_text, read_schedule
from infragent.rules.nodes import Reader


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("text", "schedule"),
    [
        pytest.param(
            'cron: "30 2 * * 1-5"\ntimezone: Europe/Berlin\nmissed: run_once\n',
            Schedule(CronSpec("30 2 * * 1-5", "Europe/Berlin"), "run_once"),
            id="cron",
        ),
        pytest.param('cron: "*/5 * * * *"\n', Schedule(CronSpec("*/5 * * * *")), id="cron-defaults"),
        pytest.param("interval: 15m\n", Schedule(IntervalSpec(900.0)), id="interval"),
        pytest.param(
            "interval: 3600\nstart: 2026-05-01T00:00:00Z\n",
            Schedule(IntervalSpec(3600.0, _ts("2026-05-01T00:00:00+00:00"))),
            id="interval-start",
        ),
        pytest.param(
            'interval: 1h\nstart: "2026-05-01 02:00"\ntimezone: Europe/Berlin\n',
            Schedule(IntervalSpec(3600.0, _ts("2026-05-01T02:00:00+02:00"))),
            id="interval-naive-start-in-zone",
        ),
        pytest.param(
            "once: 2026-06-01T12:00:00+02:00\n",
            Schedule(OnceSpec(_ts("2026-06-01T12:00:00+02:00"))),
            id="once-yaml-timestamp",
        ),
        pytest.param(
            'once: "2026-06-01T12:00:00Z"\nmissed: run_once\n',
            Schedule(OnceSpec(_ts("2026-06-01T12:00:00+00:00")), "run_once"),
            id="once-string",
        ),
        pytest.param(
            "once: 2026-06-01 12:00:00\ntimezone: Asia/Tokyo\n",
            Schedule(OnceSpec(_ts("2026-06-01T12:00:00+09:00"))),
            id="once-naive-in-zone",
        ),
        pytest.param("once: 1780000000\n", Schedule(OnceSpec(1780000000.0)), id="once-unix"),
        pytest.param('{"cron": "0 3 * * *", "missed": "skip"}', Schedule(CronSpec("0 3 * * *")), id="json"),
    ],
)
def test_a_valid_text_gives_its_schedule(text: str, schedule: Schedule) -> None:
    checked = check_schedule_text(text)
    assert checked.ok and checked.lines == [] and checked.schedule == schedule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", ["1:1: the text is empty"], id="empty"),
        pytest.param("cron: [\n", ["2:1: not valid YAML"], id="yaml-syntax"),
        pytest.param("- cron\n", ["1:1: schedule must be a mapping, not a list"], id="root-list"),
        pytest.param(
            "timezone: UTC\n",
            ["1:1: schedule: give exactly one of cron, interval or once, not none"],
            id="none",
        ),
        pytest.param(
            'cron: "* * * * *"\nonce: 1\n',
            ["1:1: schedule: give exactly one of cron, interval or once, not cron and once together"],
            id="two-kinds",
        ),
        pytest.param(
            'cron: "30 2 * * 8"\n', ["1:17: schedule.cron: bad day-of-week field '8'"], id="cron-field-column"
        ),
        pytest.param(
            "cron:  '61 2 * * *'\n", ["1:9: schedule.cron: bad minute field '61'"], id="cron-quoted-column"
        ),
        pytest.param(
            'cron: "0 0 2 * * *"\n', ["1:8: schedule.cron: a cron expression has 5 fields"], id="six-fields"
        ),
        pytest.param("cron: 5\n", ["1:7: schedule.cron must be a string, not a number"], id="cron-number"),
        pytest.param(
            'cron: "* * * * *"\ntimezone: Mars/Olympus\n',
            ["2:11: schedule.timezone: unknown time zone 'Mars/Olympus'"],
            id="timezone",
        ),
        pytest.param(
            'cron: "* * * * *"\nstart: 0\n',
            ["2:1: unknown key 'start' in schedule (cron); allowed: cron, timezone, missed"],
            id="start-for-cron",
        ),
        pytest.param(
            "interval: 30s\n", ["1:11: schedule.interval: must be at least 60 seconds"], id="interval-short"
        ),
        pytest.param(
            "interval: 15 minutes\n",
            ["1:13: schedule.interval: bad duration '15 minutes': a unit"],
            id="interval-duration-column",
        ),
        pytest.param(
            "interval: 5m\nmissed: always\n",
            ["2:9: schedule.missed: must be run_once or skip, not 'always'"],
            id="missed",
        ),
        pytest.param(
            "once: 2026-13-01\n", ["1:7: schedule.once: '2026-13-01' is not a date-time"], id="month-13"
        ),
        pytest.param(
            "once: 2026-06-01\n", ["1:7: schedule.once: a date without a time of day"], id="date-only"
        ),
        pytest.param(
            'once: "next tuesday"\n', ["1:7: schedule.once: 'next tuesday' is not an ISO 8601"], id="words"
        ),
        pytest.param("once: [1]\n", ["1:7: schedule.once: must be an ISO 8601 date-time"], id="list"),
        pytest.param(
            'interval: 10s\nstart: "soon"\nmissed: 1\n',
            [
                "1:11: schedule.interval: must be at least 60 seconds",
                "2:8: schedule.start: 'soon' is not an ISO 8601",
                "3:9: schedule.missed must be a string, not a number",
            ],
            id="every-mistake-at-once",
        ),
    ],
)
def test_each_mistake_is_reported_at_its_place(text: str, expected: list[str]) -> None:
    checked = check_schedule_text(text)
    assert checked.schedule is None and not checked.ok
    assert len(checked.lines) == len(expected), checked.lines
    for line, want in zip(checked.lines, expected, strict=True):
        assert line.startswith(want), (line, want)


def test_a_schedule_inside_a_larger_file_is_placed_in_that_file() -> None:
    text = 'runbooks:\n  - name: nightly\n    schedule:\n      cron: "30 25 * * *"\n'
    r = Reader("runbooks.yaml")
    root = r.compose(text)
    assert root is not None
    node = root.value[0][1].value[0].value[1][1]
    assert read_schedule(r, node, "runbooks[0].schedule") is None
    assert [str(p) for p in r.problems] == [
        "runbooks.yaml:4:17: runbooks[0].schedule.cron: bad hour field '25'"
    ]
