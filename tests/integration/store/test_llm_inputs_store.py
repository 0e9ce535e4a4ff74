"""``store/llm_inputs.read_context_inputs`` on both databases: what the LLM may be shown, read back."""

from __future__ import annotations

import pytest

from infragent.incidents.core import IncidentNotFoundError
from infragent.incidents.model import IncidentPolicy
from infragent.model import ActionSpec, Decision, Severity
from infragent.responder.context import build_context
from infragent.store import agents, commands, events
from infragent.store.llm_inputs import read_context_inputs
from infragent.store.metrics import SqlMetricStore
from infragent.store.runbook_schema import action_history
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData
from support.databases import create_client

NOW = 100_000.0
RESTART = ActionSpec("restart", {"service": r"[a-z][a-z0-9-]{0,30}"}, "Restart a service")


def _event(store: SqlStore, client_id: str, node: str, at: float, **data: object) -> str | None:
    with store.write() as conn:
        ev = events.insert_event(
            conn,
            client_id,
            type="app_down",
            service="web",
            severity=Severity.CRITICAL,
            data=dict(data),
            node_id=node,
            now=at,
            incidents=IncidentPolicy(),
        )
    return ev.incident_id


def _series(name: str, ts: list[float], values: list[float]) -> SeriesData:
    return SeriesData(name, "1", "gauge", False, {"cpu": "total"}, ts, values)


def test_reads_the_incident_the_hosts_events_metrics_actions_and_allowlist(
    store: SqlStore, tenant: str, metrics: SqlMetricStore
) -> None:
    with store.write() as conn:
        agent = agents.register_agent(
            conn,
            tenant,
            "host-1",
            kind="agent",
            command_mode="pull",
            actions=[RESTART],
            labels={},
            now=NOW - 5000,
        )
    incident_id = _event(store, tenant, "host-1", NOW - 300, msg="refused", password="p-event-secret")
    assert incident_id is not None
    _event(store, tenant, "host-1", NOW - 200, msg="still refused")
    _event(store, tenant, "host-1", NOW + 50, msg="in the future of now: not shown")
    _event(store, tenant, "host-2", NOW - 100, msg="another host")
    other = create_client(store, "b@example.com", "Other", "http://127.0.0.1:9/hook", now=NOW).client.id
    _event(store, other, "host-1", NOW - 100, msg="another tenant")

    cpu = _series("cpu.percent", [NOW - 1200, NOW - 600, NOW - 60], [99.0, 10.0, 30.0])
    stale = _series("disk.percent", [NOW - 3000], [50.0])
    metrics.write_batch(tenant, MetricBatch("b1", "host-1", {}, [cpu, stale]), now=NOW)
    metrics.write_batch(
        tenant, MetricBatch("b2", "host-2", {}, [_series("cpu.percent", [NOW - 60], [1.0])]), now=NOW
    )

    with store.write() as conn:
        decided = Decision("runbook", "restart", "web is down", "web", {"service": "web"})
        _, command_id = commands.record_decision(
            conn,
            client_id=tenant,
            agent_id=agent.id,
            event_ids=[],
            decision=decided,
            now=NOW - 250,
            actor="t",
        )
        conn.execute(
            action_history.insert(),
            [
                dict(
                    client_id=tenant,
                    node_id="host-1",
                    action="restart",
                    at=NOW - 250,
                    automatic=True,
                    shadow=False,
                    runbook="web-down",
                    command_id=command_id,
                    outcome="error",
                ),
                dict(
                    client_id=tenant,
                    node_id="host-1",
                    action="restart",
                    at=NOW - 240,
                    automatic=True,
                    shadow=True,
                    runbook="web-down",
                    command_id=None,
                    outcome="would_send",
                ),
                dict(
                    client_id=tenant,
                    node_id="host-2",
                    action="restart",
                    at=NOW - 230,
                    automatic=True,
                    shadow=False,
                    runbook="web-down",
                    command_id=None,
                    outcome="ok",
                ),
            ],
        )
        escalated = Decision("llm", "escalate", "not sure")
        commands.record_decision(
            conn,
            client_id=tenant,
            agent_id=agent.id,
            event_ids=[],
            decision=escalated,
            now=NOW - 100,
            actor="t",
        )
        by_hand = Decision("user", "restart", "a person asked", None, {"service": "api"})
        commands.record_decision(
            conn, client_id=tenant, agent_id=agent.id, event_ids=[], decision=by_hand, now=NOW - 90, actor="t"
        )

    with store.read() as conn:
        inputs = read_context_inputs(conn, tenant, incident_id, "host-1", "What next?", NOW)

    assert inputs.incident.id == incident_id and inputs.node_id == "host-1"
    assert [e.kind for e in inputs.timeline][:1] == ["opened"]
    assert [e.data["msg"] for e in inputs.events] == ["refused", "still refused"]
    assert [(m.name, m.count, m.min, m.max, m.last, m.avg) for m in inputs.metrics] == [
        ("cpu.percent", 2, 10.0, 30.0, 30.0, 20.0)
    ]
    assert [(p.action, p.target, dict(p.params), p.outcome, p.runbook) for p in inputs.history] == [
        ("restart", "web", {"service": "web"}, "error", "web-down"),
        ("escalate", None, {}, "decided by llm", None),
        ("restart", None, {"service": "api"}, "queued", None),
    ]
    assert dict(inputs.allowed) == {"restart": RESTART}

    ctx = build_context(inputs, NOW)
    assert "p-event-secret" not in ctx.user and "still refused" in ctx.user


def test_another_tenants_incident_reads_as_missing(store: SqlStore, tenant: str) -> None:
    incident_id = _event(store, tenant, "host-1", NOW - 10)
    assert incident_id is not None
    other = create_client(store, "b@example.com", "Other", "http://127.0.0.1:9/hook", now=NOW).client.id
    with store.read() as conn, pytest.raises(IncidentNotFoundError):
        read_context_inputs(conn, other, incident_id, "host-1", "?", NOW)


def test_a_host_that_never_registered_has_no_allowlist_and_no_history(store: SqlStore, tenant: str) -> None:
    incident_id = _event(store, tenant, "sdk-9/app", NOW - 10, msg="down")
    assert incident_id is not None
    with store.read() as conn:
        inputs = read_context_inputs(conn, tenant, incident_id, "sdk-9/app", "?", NOW)
    assert inputs.allowed == {} and inputs.history == [] and inputs.metrics == []
    assert [e.data for e in inputs.events] == [{"msg": "down"}]
