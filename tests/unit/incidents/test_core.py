"""The incident core as tables: where a signal goes (``cases/placement.yaml``), the status machine
(every pair of statuses), fingerprints, titles and the policy built from settings."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.config import Settings
from infragent.incidents import core
from infragent.incidents.core import MOVES, Signal, StatusChangeError, move, place_signal
from infragent.incidents.model import Incident, IncidentPolicy, IncidentStatus

S = IncidentStatus
CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "placement.yaml").read_text())
BASE_POLICY = {"reopen_window_s": 600.0, "flap_threshold": 3, "flap_window_s": 3600.0}


def _incident(id_: str, fingerprint: str, fields: dict[str, Any]) -> Incident:
    base: dict[str, Any] = {
        "id": id_,
        "client_id": "t1",
        "fingerprint": fingerprint,
        "title": "t",
        "severity": "warning",
        "status": S.OPEN,
        "source": "alert",
        "labels": {"host": "web-1"},
        "opened_at": 0.0,
        "updated_at": 0.0,
    }
    base |= fields
    base["status"] = S(base["status"])
    base["reopened_at"] = tuple(base.get("reopened_at", ()))
    return Incident(**base)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_placement(case: dict[str, Any]) -> None:
    policy_fields = BASE_POLICY | case.get("policy", {})
    if "group_by" in policy_fields:
        policy_fields["group_by"] = tuple(policy_fields["group_by"])
    policy = IncidentPolicy(**policy_fields)
    sig = {"labels": {"host": "web-1"}, "severity": "warning"} | case.get("signal", {})
    signal = Signal("alert", "fp-web-1", "cpu_high on web-1", sig["severity"], sig["labels"], "cpu_high")
    same = _incident("same", "fp-web-1", case["same"]) if "same" in case else None
    group = _incident("group", "fp-other", case["group"]) if "group" in case else None
    now = float(case["now"])
    out = place_signal(
        signal, same=same, group=group, policy=policy, now=now, new_id="new", client_id="t1", actor="rules"
    )
    expect = dict(case["expect"])
    assert out.placement == expect.pop("placement")
    if "target" in expect:
        assert out.incident.id == expect.pop("target")
    if "entries" in expect:
        assert [e.kind for e in out.entries] == expect.pop("entries")
    assert all(e.at == now and e.actor == "rules" for e in out.entries)
    for field, want in expect.items():
        got = getattr(out.incident, field)
        got = got.value if isinstance(got, S) else got
        got = list(got) if isinstance(got, tuple) else got
        assert got == want, field


def test_a_new_incident_carries_the_signal() -> None:
    signal = Signal("event", "fp", "app_down on web (n1)", "critical", {"service": "web"})
    out = place_signal(
        signal,
        same=None,
        group=None,
        policy=IncidentPolicy(),
        now=5.0,
        new_id="i1",
        client_id="t1",
        actor="a",
    )
    inc = out.incident
    assert (inc.id, inc.client_id, inc.fingerprint, inc.title, inc.severity, inc.source, inc.labels) == (
        "i1",
        "t1",
        "fp",
        "app_down on web (n1)",
        "critical",
        "event",
        {"service": "web"},
    )
    assert out.entries[0].detail == {"fingerprint": "fp", "source": "event", "title": "app_down on web (n1)"}


# -- the status machine ----------------------------------------------------------------------------

ALLOWED = {
    (S.OPEN, S.ACKNOWLEDGED),
    (S.OPEN, S.REMEDIATING),
    (S.OPEN, S.RESOLVED),
    (S.OPEN, S.ESCALATED),
    (S.ACKNOWLEDGED, S.REMEDIATING),
    (S.ACKNOWLEDGED, S.RESOLVED),
    (S.REMEDIATING, S.RESOLVED),
    (S.REMEDIATING, S.ESCALATED),
    (S.RESOLVED, S.OPEN),
    (S.ESCALATED, S.OPEN),
    (S.ESCALATED, S.ACKNOWLEDGED),
    (S.ESCALATED, S.RESOLVED),
}


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(S, S)), ids=lambda s: s.value)
def test_every_move_is_allowed_or_refused_as_the_table_says(frm: IncidentStatus, to: IncidentStatus) -> None:
    incident = _incident("i1", "fp", {"status": frm, "acknowledged_at": 1.0, "acknowledged_by": "key:a"})
    if (frm, to) in ALLOWED:
        moved, entry = move(incident, to, "key:b", 10.0)
        assert moved.status is to and moved.updated_at == 10.0
        assert (entry.kind, entry.actor, entry.at) == ("status", "key:b", 10.0)
        assert entry.detail == {"from": frm.value, "to": to.value}
    else:
        with pytest.raises(StatusChangeError) as err:
            move(incident, to, "key:b", 10.0)
        assert (err.value.from_status, err.value.to_status) == (frm, to)
        assert f"is {frm.value}" in str(err.value) and to.value in str(err.value)


def test_the_table_above_is_the_machine() -> None:
    assert {(f, t) for f, tos in MOVES.items() for t in tos} == ALLOWED


@pytest.mark.parametrize(
    ("frm", "to", "fields"),
    [
        (S.OPEN, S.ACKNOWLEDGED, {"acknowledged_at": 10.0, "acknowledged_by": "key:b", "resolved_at": None}),
        (S.ACKNOWLEDGED, S.REMEDIATING, {"acknowledged_at": 1.0, "acknowledged_by": "key:a"}),
        (
            S.REMEDIATING,
            S.RESOLVED,
            {"resolved_at": 10.0, "resolved_by": "key:b", "acknowledged_by": "key:a"},
        ),
        (S.REMEDIATING, S.ESCALATED, {"resolved_at": 10.0, "resolved_by": "key:b"}),
        (S.RESOLVED, S.OPEN, {"resolved_at": None, "resolved_by": None, "acknowledged_at": None}),
        (S.ESCALATED, S.ACKNOWLEDGED, {"resolved_at": None, "resolved_by": None, "acknowledged_by": "key:b"}),
        (S.ESCALATED, S.RESOLVED, {"resolved_at": 10.0, "resolved_by": "key:b"}),
    ],
)
def test_who_and_when_are_kept_on_the_incident(
    frm: IncidentStatus, to: IncidentStatus, fields: dict[str, Any]
) -> None:
    incident = _incident("i1", "fp", {"status": frm, "acknowledged_at": 1.0, "acknowledged_by": "key:a"})
    if frm in (S.RESOLVED, S.ESCALATED):
        incident = _incident("i1", "fp", {"status": frm, "resolved_at": 5.0, "resolved_by": "rules"})
    moved, _ = move(incident, to, "key:b", 10.0)
    for name, want in fields.items():
        assert getattr(moved, name) == want, name


def test_a_note_travels_with_the_status_entry() -> None:
    _, entry = move(_incident("i1", "fp", {}), S.RESOLVED, "key:b", 10.0, note="rebooted")
    assert entry.detail == {"from": "open", "to": "resolved", "note": "rebooted"}


# -- fingerprints, titles, policy ------------------------------------------------------------------


def test_fingerprints_are_sha256_hex_and_ignore_label_order() -> None:
    a = core.alert_fingerprint("t1", "cpu_high", {"host": "a", "cpu": "0"})
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert a == core.alert_fingerprint("t1", "cpu_high", {"cpu": "0", "host": "a"})
    others = [
        core.alert_fingerprint("t2", "cpu_high", {"host": "a", "cpu": "0"}),
        core.alert_fingerprint("t1", "mem_high", {"host": "a", "cpu": "0"}),
        core.alert_fingerprint("t1", "cpu_high", {"host": "b", "cpu": "0"}),
        core.alert_fingerprint("t1", "cpu_high", {"host": "a"}),
    ]
    assert a not in others and len(set(others)) == len(others)


@pytest.mark.parametrize(
    ("args", "same"),
    [
        (("t1", "app_down", "web", "n1"), True),
        (("t2", "app_down", "web", "n1"), False),
        (("t1", "app_slow", "web", "n1"), False),
        (("t1", "app_down", "api", "n1"), False),
        (("t1", "app_down", "web", "n2"), False),
        (("t1", "app_dow", "nweb", "n1"), False),  # no ambiguity from concatenation
    ],
)
def test_event_fingerprints(args: tuple[str, str, str, str], same: bool) -> None:
    base = core.event_fingerprint("t1", "app_down", "web", "n1")
    assert (core.event_fingerprint(*args) == base) is same
    assert core.event_fingerprint(*args) != core.alert_fingerprint("t1", "app_down", {})


@pytest.mark.parametrize(
    ("rule", "labels", "annotations", "title"),
    [
        ("cpu_high", {"host": "web-1"}, {}, "cpu_high on web-1"),
        ("cpu_high", {"host": "web-1"}, {"summary": "CPU above 90% on web-1"}, "CPU above 90% on web-1"),
        ("cpu_high", {"host": "web-1"}, {"summary": "   "}, "cpu_high on web-1"),
        ("cpu_high", {"host": "web-1"}, {"description": "long text"}, "cpu_high on web-1"),
        ("host_silent", {}, {}, "host_silent"),
    ],
)
def test_alert_titles(rule: str, labels: dict[str, str], annotations: dict[str, str], title: str) -> None:
    assert core.alert_title(rule, labels, annotations) == title


def test_event_titles_and_long_summaries_are_cut() -> None:
    assert core.event_title("app_down", "web", "host-1/web") == "app_down on web (host-1/web)"
    long = core.alert_title("r", {}, {"summary": "x" * 600})
    assert len(long) == core.TITLE_MAX and long.endswith("…")


def test_policy_from_settings() -> None:
    settings = Settings(
        incident_reopen_window_s=60,
        incident_flap_threshold=5,
        incident_flap_window_s=900,
        incident_group_window_s=30,
        incident_auto_pause_s=20,
    )
    assert core.policy_from_settings(settings) == IncidentPolicy(
        reopen_window_s=60, flap_threshold=5, flap_window_s=900, group_window_s=30, auto_pause_s=20
    )
    assert core.policy_from_settings(Settings()) == IncidentPolicy()
