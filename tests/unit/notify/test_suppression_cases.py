"""Silences, inhibition, mute and active times as tables (``cases/suppression.yaml``), through
``notify/mute.verdict``; and the smaller functions it is made of."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.notify.config import (
    DEFAULT_INHIBIT_RULES,
    parse_inhibit_rule,
    parse_matchers,
    parse_time_intervals,
)
from infragent.notify.model import (
    DEFAULT_NOTIFY_ON,
    InhibitRule,
    RouteMatch,
    Silence,
    TimeInterval,
    TimeRange,
)
from infragent.notify.mute import in_interval, inhibited_by, muted, silenced_by, verdict

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "cases" / "suppression.yaml").read_text()
)


def _time(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else datetime.fromisoformat(value).timestamp()


def _match(route: dict[str, Any]) -> RouteMatch:
    return RouteMatch(
        route_id="r",
        receivers=("x",),
        group_by=(),
        group_wait_s=30.0,
        group_interval_s=300.0,
        repeat_interval_s=14400.0,
        mute_times=parse_time_intervals(route.get("mute_times", []), "mute_times"),
        active_times=parse_time_intervals(route.get("active_times", []), "active_times"),
        notify_on=DEFAULT_NOTIFY_ON,
        escalation=(),
        template={},
    )


def _rules(value: Any) -> tuple[InhibitRule, ...]:
    if value == "default":
        return DEFAULT_INHIBIT_RULES
    out = []
    for doc in value or []:
        name, source, target, equal = parse_inhibit_rule({k: v for k, v in doc.items() if k != "id"})
        out.append(InhibitRule(doc["id"], source, target, equal, name))
    return tuple(out)


def _silences(value: list[dict[str, Any]] | None) -> list[Silence]:
    return [
        Silence(
            id=s["id"],
            client_id="t1",
            matchers=parse_matchers(s["matchers"], "matchers"),
            starts_at=_time(s["starts_at"]),
            ends_at=_time(s["ends_at"]),
            created_by="ops",
            comment="c",
            created_at=0.0,
        )
        for s in value or []
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_suppression_case(case: dict[str, Any]) -> None:
    got = verdict(
        _match(case.get("route", {})),
        case["labels"],
        silences=_silences(case.get("silences")),
        inhibit_rules=_rules(case.get("inhibit_rules")),
        firing_label_sets=iter(case.get("firing", [])),  # an iterator is enough: read once
        now=_time(case["now"]),
        kind=case.get("kind", "firing"),
    )
    assert (got.verdict, got.by) == (case["expect"]["verdict"], case["expect"].get("by", ""))


def test_muted_says_why_or_none() -> None:
    saturday = _time("2025-03-29T12:00:00Z")
    route = _match({"mute_times": [{"weekdays": ["saturday"]}]})
    assert muted(route, saturday) == "mute_times[0] of route r"
    assert muted(route, saturday + 86400) is None
    assert (
        muted(_match({"active_times": [{"weekdays": ["monday"]}]}), saturday)
        == "outside the active_times of route r"
    )


def test_an_empty_interval_always_holds() -> None:
    assert in_interval(TimeInterval(), 0.0)
    assert in_interval(TimeInterval(times=(TimeRange(0, 1440),), time_zone="America/New_York"), 1e9)


def test_silenced_by_and_inhibited_by_answer_none_when_nothing_applies() -> None:
    assert silenced_by([], {"a": "b"}, 0.0) is None
    assert inhibited_by(DEFAULT_INHIBIT_RULES, {"alertname": "X", "host": "h"}, []) is None
