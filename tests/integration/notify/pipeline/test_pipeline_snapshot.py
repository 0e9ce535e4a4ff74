"""What a message tells of its incidents (the snapshot taken at the flush), on both databases, as
the webhook receiver gets it: the alert's latest value, the responder's last step, the dashboard
link, and a large group listed up to its cap with the full counts."""

from __future__ import annotations

from infragent.incidents.model import IncidentStatus, TimelineEntry
from infragent.notify.snapshot import MAX_LISTED
from infragent.store import incidents
from infragent.store.sql import SqlStore
from support.notify_pipeline import (
    SECRET,
    Clock,
    drive,
    notifier,
    open_incident,
    pipeline_settings,
    set_routes,
    webhook_channel,
)
from support.standins import WebhookReceiver

T0 = 1_700_000_000.0


def test_a_message_quotes_the_value_the_responder_and_the_link(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    settings = pipeline_settings(public_url="https://infragent.example.com/")
    with WebhookReceiver(SECRET) as hook, notifier(store, settings, clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "1m"})
        incident = open_incident(store, tenant, T0)
        entries = [
            TimelineEntry(T0 + 1, "alert", "rules", {"value": 91.0}),
            TimelineEntry(T0 + 2, "alert", "rules", {"value": 95.25}),
            TimelineEntry(
                T0 + 3, "decision", "responder", {"action": "restart", "target": "web", "command_id": "c1"}
            ),
            TimelineEntry(T0 + 4, "result", "agent", {"command_id": "c1", "status": "done", "result": "ok"}),
        ]
        with store.write() as conn:
            for entry in entries:
                incidents.add_timeline(conn, tenant, incident, entry)
        drive(n, T0 + 60)
        [got] = hook.wait_for(1)
        [shown] = got.json["incidents"]
        assert shown["value"] == "95.25"
        assert shown["responder"] == "restart on web: ok"
        assert shown["url"] == f"https://infragent.example.com/incidents/{incident}"
        assert shown["title"] and shown["severity"] == "critical" and shown["status"] == "open"


def test_a_newer_decision_hides_the_result_of_an_older_one(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "1m"})
        incident = open_incident(store, tenant, T0)
        entries = [
            TimelineEntry(
                T0 + 1, "decision", "responder", {"action": "restart", "target": "web", "command_id": "c1"}
            ),
            TimelineEntry(
                T0 + 2, "result", "agent", {"command_id": "c1", "status": "done", "result": "failed"}
            ),
            TimelineEntry(T0 + 3, "decision", "responder", {"action": "escalate", "command_id": None}),
        ]
        with store.write() as conn:
            for entry in entries:
                incidents.add_timeline(conn, tenant, incident, entry)
        drive(n, T0 + 60)
        [got] = hook.wait_for(1)
        assert got.json["incidents"][0]["responder"] == "escalate"
        assert got.json["incidents"][0]["url"] == ""  # no public_url


def test_a_large_group_lists_its_first_incidents_and_counts_them_all(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["alertname"], "group_wait": "1m"})
        for i in range(MAX_LISTED + 5):
            open_incident(store, tenant, T0 + i, node=f"web-{i:02d}")
        drive(n, T0 + 60)
        [got] = hook.wait_for(1)
        assert got.json["firing_count"] == MAX_LISTED + 5
        listed = [i["labels"]["node_id"] for i in got.json["incidents"]]
        assert listed == [f"web-{i:02d}" for i in range(MAX_LISTED)]  # oldest change first


def test_an_escalated_incident_is_not_told_as_resolved(store: SqlStore, tenant: str) -> None:
    """An escalation ends the episode (the incident records when), but nothing recovered: the
    message carries no resolution time, so no template says "resolved" of it."""
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s"})
        incident = open_incident(store, tenant, T0)
        drive(n, T0 + 1)
        hook.wait_for(1)
        with store.write() as conn:
            incidents.set_status(conn, tenant, incident, IncidentStatus.ESCALATED, "responder", T0 + 2)
        drive(n, T0 + 3)
        escalated = [r for r in hook.wait_for(2) if r.json["kind"] == "escalated"]
        assert len(escalated) == 1
        [shown] = escalated[0].json["incidents"]
        assert shown["status"] == "escalated" and shown["resolved_at"] is None
        assert "resolved" not in escalated[0].json["text"].lower()
