"""The delivery worker on both databases, against a real signed webhook receiver: leases taken over
after a crash, 429 with Retry-After, 5xx retried until the deadline and dead-lettered, 4xx dead at
once, a receiver naming no channel, and restart idempotency (the notification log)."""

from __future__ import annotations

import sqlalchemy as sa

from infragent.notify.flush import flush_due
from infragent.notify.pipeline import route_changes
from infragent.store import deliveries
from infragent.store.notify_schema import notify_deliveries
from infragent.store.sql import SqlStore
from support.notify_pipeline import (
    SECRET,
    Clock,
    attempt_rows,
    audit_kinds,
    delivery_rows,
    drive,
    notifier,
    open_incident,
    pipeline_settings,
    set_routes,
    webhook_channel,
)
from support.standins import WebhookReceiver

T0 = 1_700_000_000.0
TREE = {"receivers": ["hook"], "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"}


def test_a_delivery_claimed_by_a_dead_worker_is_sent_once_after_its_lease(
    store: SqlStore, tenant: str
) -> None:
    clock = Clock(T0)
    settings = pipeline_settings(notify_lease_s=60.0)
    with WebhookReceiver(SECRET) as hook, notifier(store, settings, clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, TREE)
        open_incident(store, tenant, T0)
        # routed and flushed, then claimed by a worker that dies before sending
        assert route_changes(store, settings, T0, 10) == 1
        assert flush_due(store, settings, T0, 10) == 1
        with store.write() as conn:
            [claimed] = deliveries.claim_due(conn, "crashed-worker", 60.0, T0, 10)
        drive(n, T0 + 59)
        assert hook.received == []
        drive(n, T0 + 60)
        hook.wait_for(1)
        drive(n, T0 + 600)
        assert hook.unique_ids == [claimed.id] and len(hook.received) == 1
        [row] = delivery_rows(store, tenant)
        assert row.status == "delivered" and row.attempts == 2
        assert [a.worker for a in attempt_rows(store, row.id)] == [n.worker_id]


def test_429_retry_after_sets_the_next_attempt_and_the_retry_succeeds(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    settings = pipeline_settings(notify_backoff_base_s=0.001, notify_backoff_cap_s=30.0)
    with WebhookReceiver(SECRET) as hook, notifier(store, settings, clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, TREE)
        hook.fail_next(1, 429, retry_after=7)
        open_incident(store, tenant, T0)
        drive(n, T0)
        [row] = delivery_rows(store, tenant)
        assert row.status == "pending" and row.last_status_code == 429
        assert T0 + 7 <= row.next_attempt_at <= T0 + 30
        [attempt] = attempt_rows(store, row.id)
        assert attempt.outcome == "retry" and attempt.retry_after_s == 7.0
        drive(n, row.next_attempt_at - 0.5)
        assert len(hook.received) == 1
        drive(n, row.next_attempt_at)
        hook.wait_for(2)
        [done] = delivery_rows(store, tenant)
        assert done.status == "delivered" and done.attempts == 2
        assert hook.unique_ids == [done.id]


def test_5xx_is_retried_then_dead_lettered_after_the_deadline(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    settings = pipeline_settings(notify_retry_for_s=20.0, notify_backoff_base_s=2.0, notify_backoff_cap_s=4.0)
    with WebhookReceiver(SECRET) as hook, notifier(store, settings, clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, TREE)
        hook.fail_next(1000, 503)
        open_incident(store, tenant, T0)
        now = T0
        for _ in range(40):
            drive(n, now)
            [row] = delivery_rows(store, tenant)
            if row.status == "dead":
                break
            now = row.next_attempt_at
        assert row.status == "dead" and row.attempts >= 3
        assert row.last_error.startswith(f"gave up after {row.attempts} attempts over ")
        assert "HTTP 503" in row.last_error
        assert len(attempt_rows(store, row.id)) == row.attempts == len(hook.received)
        [dead] = audit_kinds(store, tenant, "notify.delivery.dead")
        assert dead.subject == row.id and dead.detail["attempts"] == row.attempts
        assert SECRET not in str(dead.detail) and hook.hook_url not in str(dead.detail)


def test_4xx_is_dead_at_once_with_its_error(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, TREE)
        hook.fail_next(1, 400, body={"error": "bad payload"})
        open_incident(store, tenant, T0)
        drive(n, T0)
        drive(n, T0 + 600)  # nothing retries it (the group's repeat is an hour away)
        [row] = delivery_rows(store, tenant)
        assert row.status == "dead" and row.attempts == 1 and row.last_status_code == 400
        assert "400" in row.last_error
        assert len(hook.received) == 1
        assert len(audit_kinds(store, tenant, "notify.delivery.dead")) == 1


def test_a_receiver_naming_no_enabled_channel_is_a_visible_dead_delivery(
    store: SqlStore, tenant: str
) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        webhook_channel(store, tenant, "paused", hook.hook_url, enabled=False)
        set_routes(store, tenant, {**TREE, "receivers": ["hook", "ghost", "paused"]})
        open_incident(store, tenant, T0)
        drive(n, T0)
        by_status = {(r.status, r.last_error) for r in delivery_rows(store, tenant)}
        assert by_status == {
            ("delivered", None),
            ("dead", "no enabled channel named 'ghost'"),
            ("dead", "no enabled channel named 'paused'"),
        }
        assert len(hook.wait_for(1)) == 1


def test_a_second_notifier_on_the_same_database_does_not_send_again(store: SqlStore, tenant: str) -> None:
    """A restart: the notification log on the group says what was sent, so a fresh notifier (new
    worker id, nothing in memory) finds nothing to send until something changes."""
    clock = Clock(T0)
    settings = pipeline_settings()
    with WebhookReceiver(SECRET) as hook:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {**TREE, "repeat_interval": "1h"})
        with notifier(store, settings, clock, worker_id="first") as first:
            open_incident(store, tenant, T0)
            open_incident(store, tenant, T0, node="web-2")
            drive(first, T0)
        hook.wait_for(1)
        with notifier(store, settings, clock, worker_id="second") as second:
            for at in (T0 + 1, T0 + 60, T0 + 300, T0 + 3599):
                drive(second, at)
            assert len(hook.received) == 1 and len(delivery_rows(store, tenant)) == 1
            drive(second, T0 + 3600)  # the repeat is the log's, not the process's
            hook.wait_for(2)
        with store.read() as conn:
            workers = conn.execute(sa.select(notify_deliveries.c.status)).scalars().all()
        assert workers == ["delivered", "delivered"]
