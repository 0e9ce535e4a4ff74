"""Aggregation groups end to end on both databases: incidents opened through the events path →
changes routed → groups flushed on a test clock → webhooks received by a real signed receiver.

What each test proves is in its name; the timings are the route's (``group_wait``,
``group_interval``, ``repeat_interval``), stepped exactly with the test clock.
"""

from __future__ import annotations

import math

from infragent.incidents.model import IncidentStatus
from infragent.store.sql import SqlStore
from support.notify_pipeline import (
    SECRET,
    Clock,
    delivery_rows,
    drive,
    move,
    notifier,
    open_incident,
    pipeline_settings,
    set_routes,
    webhook_channel,
)
from support.standins import WebhookReceiver

T0 = 1_700_000_000.0


def _tree(**timings: str) -> dict[str, object]:
    return {"receivers": ["hook"], "group_by": ["alertname"], **timings}


def test_group_wait_sends_incidents_opened_together_as_one_message(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, _tree(group_wait="30s"))
        for i, at in enumerate((T0, T0 + 5, T0 + 10)):
            open_incident(store, tenant, at, node=f"web-{i}")
        drive(n, T0 + 29)
        assert hook.received == []
        drive(n, T0 + 30)
        [got] = hook.wait_for(1)
        assert got.json["kind"] == "firing" and got.json["firing_count"] == 3
        assert sorted(i["labels"]["node_id"] for i in got.json["incidents"]) == ["web-0", "web-1", "web-2"]
        assert hook.checks[0].verified


def test_an_incident_joining_a_sent_group_waits_for_the_group_interval(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, _tree(group_wait="0s", group_interval="1m"))
        open_incident(store, tenant, T0, node="web-1")
        drive(n, T0)
        hook.wait_for(1)
        open_incident(store, tenant, T0 + 10, node="web-2")
        drive(n, T0 + 10)
        drive(n, T0 + 59)
        assert len(hook.received) == 1
        drive(n, T0 + 60)
        second = hook.wait_for(2)[1]
        assert second.json["firing_count"] == 2


def test_a_resolution_is_sent_once_and_the_group_goes_quiet(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, _tree(group_wait="0s", group_interval="1m", repeat_interval="10m"))
        incident = open_incident(store, tenant, T0)
        drive(n, T0)
        move(store, tenant, incident, IncidentStatus.RESOLVED, T0 + 5)
        drive(n, T0 + 5)
        assert len(hook.received) == 1  # not before group_interval after the last send
        drive(n, T0 + 60)
        resolved = hook.wait_for(2)[1].json
        assert resolved["kind"] == "resolved" and resolved["resolved_count"] == 1
        assert resolved["incidents"][0]["status"] == "resolved"
        for minutes in (5, 11, 30, 120):
            drive(n, T0 + 60 * minutes)
        assert len(hook.received) == 2


def test_a_firing_group_is_repeated_after_the_repeat_interval(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, _tree(group_wait="0s", group_interval="1m", repeat_interval="10m"))
        open_incident(store, tenant, T0)
        drive(n, T0)
        drive(n, T0 + 599)
        assert len(hook.received) == 1
        drive(n, T0 + 600)
        repeat = hook.wait_for(2)[1].json
        assert repeat["kind"] == "firing"
        assert len({r.headers["webhook-id"] for r in hook.received}) == 2


def test_a_flapping_incident_is_notified_at_most_once_per_group_interval(
    store: SqlStore, tenant: str
) -> None:
    """An incident that resolves and reopens every 10 s for 5 minutes, with group_wait 0 and
    group_interval 60 s. A flush sends at most once per group_interval after the first send, and
    only when the state differs from what was sent (a reopening seen as firing again, a resolution
    seen as resolved): so at most 1 + ceil(300 / 60) messages — the first, then one per interval —
    and at least 2 (it flapped through more than one interval)."""
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, _tree(group_wait="0s", group_interval="1m", repeat_interval="4h"))
        incident = open_incident(store, tenant, T0)
        drive(n, T0)
        for step in range(1, 31):
            at = T0 + 10 * step
            if step % 2:
                move(store, tenant, incident, IncidentStatus.RESOLVED, at)
            else:
                assert open_incident(store, tenant, at) == incident  # reopened, the same incident
            drive(n, at)
        sent = len(hook.received)
        assert 2 <= sent <= 1 + math.ceil(300 / 60)
        assert len(delivery_rows(store, tenant)) == sent


def test_every_label_grouping_sends_one_message_per_incident(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s"})
        ids = {open_incident(store, tenant, T0, node=f"web-{i}") for i in range(3)}
        drive(n, T0)
        got = hook.wait_for(3)
        assert {r.json["incidents"][0]["id"] for r in got} == ids


def test_without_a_stored_tree_every_enabled_channel_receives(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    settings = pipeline_settings(notify_group_wait_s=0.0)
    with (
        WebhookReceiver(SECRET) as one,
        WebhookReceiver(SECRET) as two,
        WebhookReceiver(SECRET) as off,
        notifier(store, settings, clock) as n,
    ):
        webhook_channel(store, tenant, "one", one.hook_url)
        webhook_channel(store, tenant, "two", two.hook_url)
        webhook_channel(store, tenant, "off", off.hook_url, enabled=False)
        open_incident(store, tenant, T0)
        drive(n, T0)
        assert len(one.wait_for(1)) == 1 and len(two.wait_for(1)) == 1
        assert off.received == []
        assert {r.status for r in delivery_rows(store, tenant)} == {"delivered"}
