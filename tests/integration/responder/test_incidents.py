"""The responder on incidents, end to end on both databases: the real server app stores events on
their incidents, a real responder thread decides per incident and acts through a 127.0.0.1 receiver
(the SDK's webhook app), and every step lands on the incident's timeline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from infragent.config import Settings
from infragent.incidents.model import IncidentPolicy, IncidentStatus, TimelineEntry
from infragent.model import ActionSpec, Decision, Severity
from infragent.responder.llm import build_llm_client
from infragent.responder.loop import Responder, ResponderConfig
from infragent.responder.plan import plan
from infragent.responder.ports import IncidentDecidedError
from infragent.server.app import create_app
from infragent.store import events, incidents
from infragent.store.sql import SqlStore
from infragent.store.wakeup import Wakeup
from infragent.store.workqueue import SqlWorkQueue
from support.databases import audit_entries, pending_count, register_agent
from support.llm_standin import Answer, LlmStandIn
from support.responders import Receiver, make_responder, register_node
from support.servers import serve

NODE = "host-1/web"
PULL_NODE = "db-1"


@contextmanager
def running(store: SqlStore, **kw: Any) -> Iterator[tuple[httpx.Client, Responder]]:
    """The server app and a responder thread on ``store``, the app waking the responder per event."""
    wakeup = Wakeup()
    responder = make_responder(store, wakeup=wakeup, **kw)
    responder.config = ResponderConfig(lease_s=30, cooldown_s=0, sweep_interval_s=60)
    thread, stop = responder.start()
    try:
        with (
            serve(create_app(Settings(), store=store, on_event=wakeup.set)) as base,
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            yield http, responder
    finally:
        stop.set()
        wakeup.set()
        thread.join(10)


def _until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _report(
    http: httpx.Client, recv: Receiver, type_: str = "app_down", node: str = NODE, **data: object
) -> dict[str, Any]:
    r = http.post(
        "/api/v1/events",
        headers={"Authorization": f"Bearer {recv.reg.api_key}"},
        json={"type": type_, "service": "web", "severity": "critical", "node_id": node, "data": data},
    )
    assert r.status_code == 202, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _timeline(store: SqlStore, recv: Receiver, incident_id: str) -> list[TimelineEntry]:
    with store.read() as conn:
        return [t.entry for t in incidents.timeline(conn, recv.reg.client.id, incident_id)]


def _status(store: SqlStore, recv: Receiver, incident_id: str) -> IncidentStatus:
    with store.read() as conn:
        found = incidents.get_incident(conn, recv.reg.client.id, incident_id)
    assert found is not None
    return found.status


def _decisions(store: SqlStore, recv: Receiver) -> list[dict[str, Any]]:
    return [a.detail for a in audit_entries(store, recv.reg.client.id) if a.kind == "decision.made"]


def test_an_event_opens_an_incident_which_is_decided_remediated_and_then_only_joined(
    store: SqlStore, receiver: Receiver
) -> None:
    register_node(store, receiver.reg, NODE)
    auth = {"Authorization": f"Bearer {receiver.reg.api_key}"}
    with running(store) as (http, _):
        first = _report(http, receiver)
        incident_id = first["incident_id"]
        assert incident_id
        _until(lambda: pending_count(store) == 0 and receiver.total == 1)
        # Repeats of the same failure join the incident: processed, no second decision, no second restart.
        repeats = [_report(http, receiver) for _ in range(5)]
        assert {r["incident_id"] for r in repeats} == {incident_id}
        _until(lambda: pending_count(store) == 0)
        detail = http.get(f"/api/v1/events/{first['event_id']}", headers=auth).json()
        listed = http.get("/api/v1/events", headers=auth).json()

    assert receiver.total == 1 and len(_decisions(store, receiver)) == 1
    assert detail["incident_id"] == incident_id and detail["decision"]["incident_id"] == incident_id
    assert detail["command"]["status"] == "done"
    assert {e["incident_id"] for e in listed} == {incident_id} and len(listed) == 6
    assert all(e["status"] == "processed" for e in listed)
    joined = [a for a in audit_entries(store, receiver.reg.client.id) if a.kind == "event.processed"]
    outcomes = sorted(a.detail["outcome"] for a in joined)
    assert outcomes == sorted(["restart:ok"] + [f"joined incident {incident_id}"] * 5)

    entries = _timeline(store, receiver, incident_id)
    steps = [e.kind for e in entries if e.kind not in ("event", "joined")]
    assert steps == ["opened", "decision", "command", "status", "result"]
    decision, command, status, result = (e.detail for e in entries if e.kind in steps[1:])
    assert (decision["source"], decision["action"], decision["target"]) == ("runbook", "restart", "web")
    assert decision["command_id"] == command["command_id"] == result["command_id"] == detail["command"]["id"]
    assert (command["action"], command["status"]) == ("restart", "sent")
    assert (status["from"], status["to"]) == ("open", "remediating")
    assert (result["status"], result["result"], result["code"]) == ("done", "ok", None)
    # A successful result does not resolve: verification is a later step.
    assert _status(store, receiver, incident_id) is IncidentStatus.REMEDIATING
    assert [e.kind for e in entries].count("event") == 6


def test_an_escalated_incident_reopened_by_a_new_event_is_decided_again(
    store: SqlStore, receiver: Receiver
) -> None:
    register_node(store, receiver.reg, NODE)
    with running(store) as (http, _):
        incident_id = _report(http, receiver, "disk_full")["incident_id"]
        _until(lambda: pending_count(store) == 0)
        assert _status(store, receiver, incident_id) is IncidentStatus.ESCALATED
        again = _report(http, receiver, "disk_full")  # within the reopen window: the same incident
        assert again["incident_id"] == incident_id
        _until(lambda: pending_count(store) == 0)

    assert [d["action"] for d in _decisions(store, receiver)] == ["escalate", "escalate"]
    assert {d["incident_id"] for d in _decisions(store, receiver)} == {incident_id}
    assert receiver.total == 0 and _status(store, receiver, incident_id) is IncidentStatus.ESCALATED
    steps = [e.kind for e in _timeline(store, receiver, incident_id) if e.kind != "event"]
    assert steps == ["opened", "decision", "status", "reopened", "decision", "status"]


def test_a_pulled_command_marks_the_incident_remediating_and_its_result_lands_on_the_timeline(
    store: SqlStore, receiver: Receiver
) -> None:
    register_agent(
        store,
        receiver.reg.client.id,
        PULL_NODE,
        kind="host",
        command_mode="pull",
        actions=[ActionSpec("restart", {"name": r"[a-z]+"})],
        labels={},
        now=1.0,
    )
    auth = {"Authorization": f"Bearer {receiver.reg.api_key}"}
    with running(store) as (http, _):
        incident_id = _report(http, receiver, node=PULL_NODE)["incident_id"]
        _until(lambda: pending_count(store) == 0)
        assert _status(store, receiver, incident_id) is IncidentStatus.REMEDIATING
        r = http.get(f"/api/v1/agents/{PULL_NODE}/commands", params={"wait": 0}, headers=auth)
        assert r.status_code == 200, r.text
        command_id = json.loads(r.json()["commands"][0]["body"])["command_id"]
        result = {"status": "error", "output": "unit not found", "exit_code": 5, "duration_ms": 3.0}
        assert (
            http.post(f"/api/v1/commands/{command_id}/result", json=result, headers=auth).status_code == 200
        )

    entries = [e for e in _timeline(store, receiver, incident_id) if e.kind != "event"]
    assert [e.kind for e in entries] == ["opened", "decision", "command", "status", "result"]
    assert entries[2].detail["status"] == "queued" and entries[2].detail["command_id"] == command_id
    assert entries[4].actor.startswith("agent:")
    assert (entries[4].detail["status"], entries[4].detail["result"]) == ("failed", "error")
    assert _status(store, receiver, incident_id) is IncidentStatus.REMEDIATING


@pytest.fixture
def llm() -> Iterator[LlmStandIn]:
    with LlmStandIn(api_key="llm-key") as standin:
        yield standin


def test_the_decision_on_the_timeline_has_its_rationale_redacted(
    store: SqlStore, receiver: Receiver, llm: LlmStandIn
) -> None:
    register_node(store, receiver.reg, NODE)
    rationale = f"the log shows password=hunter2-secret and key {receiver.reg.api_key}"
    llm.script(
        Answer(json.dumps({"action": "escalate", "target": None, "params": {}, "rationale": rationale}))
    )
    client = build_llm_client(
        "openai", base_url=llm.openai_base_url, model="m", api_key="llm-key", timeout_s=5
    )
    with running(store, llm=client) as (http, _):
        incident_id = _report(http, receiver, "disk_full")["incident_id"]
        _until(lambda: pending_count(store) == 0)
    [decision] = [e.detail for e in _timeline(store, receiver, incident_id) if e.kind == "decision"]
    assert decision["source"] == "llm" and decision["action"] == "escalate"
    assert "hunter2-secret" not in decision["rationale"] and "[REDACTED]" in decision["rationale"]
    assert receiver.reg.api_key.split("_", 2)[2] not in json.dumps(decision)


# -- the queue's fences, driven by hand on the real store ------------------------------------------


def _stored(
    store: SqlStore, recv: Receiver, node: str, now: float, *, fingerprint_node: str | None = None
) -> str:
    """An event of ``node``, recorded on the incident of ``fingerprint_node`` (default: its own), as
    an event rule's incident spanning agents would hold it."""
    with store.write() as conn:
        event = events.insert_event(
            conn,
            recv.reg.client.id,
            type="app_down",
            service="web",
            severity=Severity.CRITICAL,
            data={},
            node_id=node,
            now=now,
        )
        on = replace(event, node_id=fingerprint_node or node)
        return incidents.record_event(conn, on, IncidentPolicy(), now)


def test_two_claims_of_one_incident_cannot_both_decide(store: SqlStore, receiver: Receiver) -> None:
    """Claims are per agent; an incident whose events come from two agents is still decided once."""
    for node in ("a/web", "b/web"):
        register_node(store, receiver.reg, node)
    incident_id = _stored(store, receiver, "a/web", 10.0)
    assert _stored(store, receiver, "b/web", 11.0, fingerprint_node="a/web") == incident_id
    first, second = SqlWorkQueue(store), SqlWorkQueue(store)
    item_a, item_b = first.claim_next("w1", 30, 20.0), second.claim_next("w2", 30, 20.0)
    assert item_a is not None and item_b is not None and item_a.key != item_b.key
    assert item_a.decided == item_b.decided == frozenset()  # both found it undecided
    decision = Decision("policy", "escalate", "nothing matches")
    plan_a, plan_b = plan(item_a), plan(item_b)
    assert plan_a.incident_id == plan_b.incident_id == incident_id
    first.record_decision(plan_a, decision, 21.0, "responder:w1")
    with pytest.raises(IncidentDecidedError):
        second.record_decision(plan_b, decision, 21.5, "responder:w2")
    first.complete(plan_a, 22.0, None, "responder:w1", "escalate")
    second.complete(replace(plan_b, events=(), joined=plan_b.events), 22.0, None, "responder:w2", "joined")
    assert pending_count(store) == 0
    decisions = _decisions(store, receiver)
    assert len(decisions) == 1 and decisions[0]["incident_id"] == incident_id
    kinds = [e.kind for e in _timeline(store, receiver, incident_id)]
    assert kinds.count("decision") == 1


def test_an_incident_reopened_by_a_person_is_a_new_episode(store: SqlStore, receiver: Receiver) -> None:
    register_node(store, receiver.reg, NODE)
    incident_id = _stored(store, receiver, NODE, 10.0)
    queue = SqlWorkQueue(store)
    item = queue.claim_next("w", 30, 20.0)
    assert item is not None and item.decided == frozenset()
    queue.record_decision(plan(item), Decision("policy", "none", "fine"), 21.0, "responder:w")
    queue.complete(plan(item), 22.0, None, "responder:w", "none")
    assert _stored(store, receiver, NODE, 30.0) == incident_id  # still open: it joins
    item = queue.claim_next("w", 30, 31.0)
    assert item is not None and item.decided == {incident_id}
    queue.complete(plan(item), 32.0, None, "responder:w", "joined")
    with store.write() as conn:  # a person resolves it, then reopens it by hand
        incidents.set_status(
            conn, receiver.reg.client.id, incident_id, IncidentStatus.RESOLVED, "key:k", 40.0
        )
        incidents.set_status(conn, receiver.reg.client.id, incident_id, IncidentStatus.OPEN, "key:k", 41.0)
    assert _stored(store, receiver, NODE, 50.0) == incident_id
    item = queue.claim_next("w", 30, 51.0)
    assert item is not None and item.decided == frozenset()  # the new episode is undecided
    assert plan(item).incident_id == incident_id and plan(item).joined == ()
