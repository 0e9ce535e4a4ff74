"""Per-incident notifications on both databases: escalation-policy steps (fired once), status
changes notified at once (acknowledged), approval requests (never suppressed), and in-app
notifications (inbox rows for the channel's roles, an audit entry the live stream tails)."""

from __future__ import annotations

import sqlalchemy as sa

from infragent.incidents.model import IncidentStatus
from infragent.notify.pipeline import request_approval
from infragent.store import users
from infragent.store.notify_schema import inbox
from infragent.store.sql import SqlStore
from support.notify_pipeline import (
    SECRET,
    Clock,
    audit_kinds,
    channel,
    delivery_rows,
    drive,
    move,
    notifier,
    open_incident,
    pipeline_settings,
    set_routes,
    silence,
    webhook_channel,
)
from support.standins import WebhookReceiver

T0 = 1_700_000_000.0


def test_an_escalation_step_fires_once_and_not_after_an_acknowledgement(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    tree = {
        "receivers": ["hook"],
        "group_by": ["..."],
        "group_wait": "0s",
        "notify_on": ["firing", "resolved"],
        "escalation": [{"after": "5m", "receivers": ["pager"]}, {"after": "15m", "receivers": ["pager"]}],
    }
    with (
        WebhookReceiver(SECRET) as hook,
        WebhookReceiver(SECRET) as pager,
        notifier(store, pipeline_settings(), clock) as n,
    ):
        webhook_channel(store, tenant, "hook", hook.hook_url)
        webhook_channel(store, tenant, "pager", pager.hook_url)
        set_routes(store, tenant, tree)
        incident = open_incident(store, tenant, T0)
        drive(n, T0)
        assert n.escalate_now(T0 + 299) == 0
        assert n.escalate_now(T0 + 300) == 1
        assert n.escalate_now(T0 + 301) == 0
        drive(n, T0 + 301)
        [step] = pager.wait_for(1)
        assert step.json["kind"] == "escalation" and step.json["detail"]["step"] == 1
        assert step.json["incidents"][0]["id"] == incident
        move(store, tenant, incident, IncidentStatus.ACKNOWLEDGED, T0 + 400)
        assert n.escalate_now(T0 + 900) == 0
        drive(n, T0 + 900)
        assert len(pager.received) == 1
        causes = sorted(r.cause for r in delivery_rows(store, tenant) if r.kind == "escalation")
        assert causes == [f"escalation:{incident}:root:0"]


def test_an_acknowledgement_is_notified_at_once_per_incident(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["alertname"], "group_wait": "10m"})
        incident = open_incident(store, tenant, T0)
        move(store, tenant, incident, IncidentStatus.ACKNOWLEDGED, T0 + 1, actor="alice")
        drive(n, T0 + 1)
        [ack] = hook.wait_for(1)  # the group itself is still in its group_wait
        assert ack.json["kind"] == "acknowledged"
        assert ack.json["incidents"][0]["acknowledged_by"] == "alice"


def test_an_approval_request_is_delivered_at_once_even_under_a_silence(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s"})
        silence(store, tenant, {"node_id": "web-1"}, T0 - 1, T0 + 3600)
        incident = open_incident(store, tenant, T0)
        detail = {"action": "restart_service", "params": {"service": "web"}, "expires_at": T0 + 900}
        with store.write() as conn:
            change_id = request_approval(conn, tenant, incident, detail, T0 + 1)
        drive(n, T0 + 1)
        [approval] = hook.wait_for(1)
        assert approval.json["kind"] == "approval" and approval.json["detail"]["action"] == "restart_service"
        kinds = {(r.kind, r.status, r.cause) for r in delivery_rows(store, tenant)}
        assert ("approval", "delivered", f"change:{change_id}") in kinds
        assert ("firing", "suppressed") in {(k, s) for k, s, _ in kinds}


def test_an_inapp_notification_reaches_the_members_of_its_roles_with_an_audit_entry(
    store: SqlStore, tenant: str
) -> None:
    clock = Clock(T0)
    with notifier(store, pipeline_settings(), clock) as n:
        channel(store, tenant, "team", "inapp", {"roles": ["admin", "operator"]}, {})
        set_routes(store, tenant, {"receivers": ["team"], "group_by": ["..."], "group_wait": "0s"})
        made = {}
        with store.write() as conn:
            for role in ("admin", "operator", "viewer"):
                made[role] = users.create_user(
                    conn,
                    email=f"{role}@example.com",
                    name=role,
                    password_hash="x",
                    client_id=tenant,
                    role=role,
                    now=T0,
                    actor="test",
                ).id
        incident = open_incident(store, tenant, T0)
        drive(n, T0)
        drive(n, T0 + 5)
        with store.read() as conn:
            rows = conn.execute(sa.select(inbox).where(inbox.c.client_id == tenant)).all()
        assert sorted(r.user_id for r in rows) == sorted([made["admin"], made["operator"]])
        assert all(r.incident_id == incident and r.title for r in rows)
        [delivery] = delivery_rows(store, tenant)
        assert delivery.status == "delivered"
        [entry] = audit_kinds(store, tenant, "notify.inapp")
        assert entry.detail["delivery_id"] == delivery.id and entry.detail["incident_ids"] == [incident]
        assert entry.detail["title"]
