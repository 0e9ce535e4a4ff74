"""Routing as tables (``cases/routing.yaml``): which routes an incident's labels reach, with what
inherited values, and which aggregation group they land in; and the labels an incident routes by."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.incidents.model import Incident, IncidentStatus
from infragent.notify.config import RootDefaults, parse_route_tree
from infragent.notify.model import Route
from infragent.notify.route import group_key, incident_labels, match_routes

DATA: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "cases" / "routing.yaml").read_text())
DEFAULTS = RootDefaults(group_wait_s=30.0, group_interval_s=300.0, repeat_interval_s=14400.0)
TREES: dict[str, Route] = {name: parse_route_tree(doc, DEFAULTS) for name, doc in DATA["trees"].items()}
CASES: list[dict[str, Any]] = DATA["cases"]


def _checked(match: Any) -> dict[str, Any]:
    return {
        "route": match.route_id,
        "receivers": list(match.receivers),
        "group_by": list(match.group_by),
        "group_wait": match.group_wait_s,
        "group_interval": match.group_interval_s,
        "repeat_interval": match.repeat_interval_s,
        "notify_on": sorted(match.notify_on),
        "mute": len(match.mute_times),
        "escalation": [s.after_s for s in match.escalation],
        "template": match.template,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_routing_case(case: dict[str, Any]) -> None:
    found = match_routes(TREES[case["tree"]], case["labels"])
    got = [_checked(m) for m in found]
    want = case["expect"]
    assert [g["route"] for g in got] == [w["route"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert {k: g[k] for k in w} == w
    if "group_labels" in case:
        assert group_key(found[0], case["labels"])[1] == case["group_labels"]


def test_group_keys_are_equal_exactly_within_a_tag() -> None:
    keys: dict[str, set[str]] = {}
    for case in (c for c in CASES if "group" in c):
        first = match_routes(TREES[case["tree"]], case["labels"])[0]
        key, _ = group_key(first, case["labels"])
        assert len(key) == 32 and int(key, 16) >= 0
        keys.setdefault(case["group"], set()).add(key)
    assert all(len(k) == 1 for k in keys.values()), keys
    assert len({next(iter(k)) for k in keys.values()}) == len(keys)
    assert len(keys) >= 5


def test_group_key_ignores_label_order() -> None:
    (match,) = match_routes(TREES["ops"], {"alertname": "A", "host": "h"})
    assert group_key(match, {"alertname": "A", "host": "h"}) == group_key(
        match, {"host": "h", "alertname": "A"}
    )


def _incident(**fields: Any) -> Incident:
    base: dict[str, Any] = {
        "id": "i1",
        "client_id": "tenant-1",
        "fingerprint": "fp",
        "title": "t",
        "severity": "critical",
        "status": IncidentStatus.OPEN,
        "source": "alert",
        "labels": {"host": "web-1"},
        "opened_at": 0.0,
        "updated_at": 0.0,
    }
    return Incident(**(base | fields))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"rule_name": "HighCpu"},
            {
                "host": "web-1",
                "alertname": "HighCpu",
                "severity": "critical",
                "source": "alert",
                "tenant": "tenant-1",
            },
        ),
        (
            {
                "source": "event",
                "labels": {"type": "app_down", "service": "api", "node_id": "n1"},
                "severity": "warning",
            },
            {
                "type": "app_down",
                "service": "api",
                "node_id": "n1",
                "host": "n1",
                "alertname": "app_down",
                "severity": "warning",
                "source": "event",
                "tenant": "tenant-1",
            },
        ),
        (
            # derived labels win over the incident's own of the same name
            {
                "rule_name": "R",
                "labels": {"alertname": "Other", "tenant": "t2", "severity": "info", "source": "x"},
            },
            {"alertname": "R", "severity": "critical", "source": "alert", "tenant": "tenant-1"},
        ),
        (
            {"source": "event", "labels": {"type": "oom", "node_id": "n1", "host": "web-9"}},
            {"type": "oom", "node_id": "n1", "host": "web-9", "alertname": "oom", "severity": "critical"}
            | {"source": "event", "tenant": "tenant-1"},
        ),
    ],
    ids=["alert", "event", "derived labels win", "an event's own host is kept"],
)
def test_incident_labels(fields: dict[str, Any], expected: dict[str, str]) -> None:
    assert incident_labels(_incident(**fields)) == expected
