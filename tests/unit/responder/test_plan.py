"""The plan: which events of a claim are decided on, which join a decided incident, which wait.

Table-driven: each case is a claim (events as ``id:incident``, ``-`` for no incident), the incidents
already decided, an optional prior decision, and the expected narrowed item.
"""

from __future__ import annotations

import pytest

from infragent.model import ActionSpec, Event, Severity
from infragent.responder.plan import plan, resends
from infragent.responder.ports import PriorDecision, WorkItem


def _events(spec: str) -> tuple[Event, ...]:
    out = []
    for part in spec.split():
        event_id, incident = part.split(":")
        out.append(
            Event(
                event_id,
                "c1",
                "a1",
                "host-1/web",
                "app_down",
                "web",
                Severity.CRITICAL,
                {},
                1.0,
                incident_id=None if incident == "-" else incident,
            )
        )
    return tuple(out)


def _prior(incident: str | None, status: str | None) -> PriorDecision:
    command = "cmd-0" if status is not None else None
    return PriorDecision("d-0", "restart", "web", {}, "rb", "runbook", command, status, incident)


def _item(events: str, decided: set[str], prior: PriorDecision | None = None) -> WorkItem:
    return WorkItem(
        key="a1",
        lease="t",
        client_id="c1",
        node_id="host-1/web",
        command_mode="push",
        actions=(ActionSpec("restart"),),
        webhook_url="http://receiver.invalid/hook",
        webhook_secret="whsec_x",
        events=_events(events),
        prior=prior,
        decided=frozenset(decided),
    )


CASES = [
    # (name, events, decided, prior, decide, incident, joined)
    ("one incident, undecided", "e1:A e2:A e3:A", set(), None, "e1 e2 e3", "A", ""),
    ("one incident, decided: all join", "e1:A e2:A", {"A"}, None, "", None, "e1 e2"),
    ("the oldest undecided incident first", "e1:B e2:A e3:B", set(), None, "e1 e3", "B", ""),
    ("decided ones join, the other waits", "e1:A e2:B e3:C e4:A", {"A"}, None, "e2", "B", "e1 e4"),
    ("events without an incident: one group", "e1:- e2:- e3:A", {"A"}, None, "e1 e2", None, "e3"),
    # a command the crashed claimant may have sent is finished first, although its incident is decided
    ("resend the prior's incident", "e1:B e2:A", {"A"}, _prior("A", "sent"), "e2", "A", ""),
    # a prior whose command finished (or that did not act) decided its incident: its events join
    ("a finished prior's events join", "e1:A e2:B", {"A"}, _prior("A", "done"), "e2", "B", "e1"),
    ("a prior that did not act", "e1:A", {"A"}, _prior("A", None), "", None, "e1"),
    # before incidents: a prior without one resends over the events without one
    ("a prior without an incident", "e1:B e2:-", set(), _prior(None, "queued"), "e2", None, ""),
]


@pytest.mark.parametrize(
    ("events", "decided", "prior", "decide", "incident", "joined"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan(
    events: str,
    decided: set[str],
    prior: PriorDecision | None,
    decide: str,
    incident: str | None,
    joined: str,
) -> None:
    claimed = _item(events, decided, prior)
    got = plan(claimed)
    assert got.event_ids == decide.split()
    assert got.incident_id == incident
    assert [e.id for e in got.joined] == joined.split()
    # nothing is both decided and joined, and nothing the plan did not name is touched
    assert not set(got.event_ids) & {e.id for e in got.joined}
    assert (got.key, got.lease, got.prior) == (claimed.key, claimed.lease, claimed.prior)


@pytest.mark.parametrize(
    ("prior", "expected"),
    [
        (None, False),
        (_prior("A", None), False),
        (_prior("A", "queued"), True),
        (_prior("A", "sent"), True),
        (_prior("A", "done"), False),
        (_prior("A", "expired"), False),
    ],
)
def test_resends_only_a_command_that_may_be_in_flight(prior: PriorDecision | None, expected: bool) -> None:
    assert resends(prior) is expected


def test_incident_ids_are_each_incident_once_in_arrival_order() -> None:
    assert _item("e1:B e2:- e3:A e4:B", set()).incident_ids == ("B", "A")
