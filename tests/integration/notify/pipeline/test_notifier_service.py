"""The ``Notifier`` thread: woken by this process's commits, several processes sharing one
PostgreSQL database without sending anything twice, its metrics.

These run the real thread on the real clock and poll with a deadline; nothing asserts a duration.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from infragent.store.sql import SqlStore, open_store
from support.notify_pipeline import (
    SECRET,
    Clock,
    delivery_rows,
    make_notifier,
    open_incident,
    pipeline_settings,
    set_routes,
    webhook_channel,
)
from support.standins import WebhookReceiver


class RealClock(Clock):
    def __call__(self) -> float:
        return time.time()


def _wait(condition: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def test_an_incident_opened_in_this_process_is_sent_without_waiting_for_a_tick(
    store: SqlStore, tenant: str
) -> None:
    """The tick is an hour: only the commit listener's wake can get the message out."""
    settings = pipeline_settings(notify_tick_s=3600.0)
    with WebhookReceiver(SECRET) as hook:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s"})
        n = make_notifier(store, settings, RealClock())
        n.start()
        try:
            assert n.until_asleep(20)  # the first round is over: the thread waits on its hour-long tick
            incident = open_incident(store, tenant, time.time())
            [got] = hook.wait_for(1, timeout_s=20)
            assert got.json["incidents"][0]["id"] == incident
        finally:
            n.stop()


def test_the_metrics_count_outcomes_and_report_the_backlog(store: SqlStore, tenant: str) -> None:
    registry = CollectorRegistry()
    settings = pipeline_settings()
    with WebhookReceiver(SECRET) as hook:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s"})
        n = make_notifier(store, settings, RealClock(), registry=registry)
        n.start()
        try:
            open_incident(store, tenant, time.time())
            hook.wait_for(1, timeout_s=20)
            _wait(
                lambda: (
                    registry.get_sample_value("infragent_notifications_total", {"outcome": "delivered"})
                    == 1.0
                )
            )
            text = generate_latest(registry).decode()
            assert "infragent_notification_deliveries_pending 0.0" in text
            assert "infragent_notification_send_seconds_count 1.0" in text
        finally:
            n.stop()


@pytest.mark.postgres
def test_two_notifiers_on_one_postgres_database_send_each_of_200_incidents_once(
    pg_url: str, pg_store: SqlStore, pg_tenant: str
) -> None:
    """Two server processes, as two notifiers with their own engines; 200 incidents, one message
    each (group_by every label): the receiver counts each ``webhook-id`` once and gets no copy."""
    settings = pipeline_settings(notify_batch=20, notify_workers=4, notify_tick_s=0.05)
    with WebhookReceiver(SECRET) as hook:
        webhook_channel(pg_store, pg_tenant, "hook", hook.hook_url)
        set_routes(pg_store, pg_tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s"})
        stores = [open_store(pg_url), open_store(pg_url)]
        notifiers = [
            make_notifier(s, settings, RealClock(), worker_id=f"proc-{i}") for i, s in enumerate(stores)
        ]
        try:
            for n in notifiers:
                n.start()
            for i in range(200):
                open_incident(pg_store, pg_tenant, time.time(), node=f"host-{i}")
            _wait(lambda: len(hook.unique_ids) >= 200, timeout_s=90)
            _wait(lambda: all(r.status == "delivered" for r in delivery_rows(pg_store, pg_tenant)))
        finally:
            for n in notifiers:
                n.stop()
            for s in stores:
                s.close()
        rows = delivery_rows(pg_store, pg_tenant)
        assert len(rows) == 200 and {r.attempts for r in rows} == {1}
        assert len(hook.received) == 200 and len(hook.unique_ids) == 200
        assert sorted(hook.unique_ids) == sorted(r.id for r in rows)
