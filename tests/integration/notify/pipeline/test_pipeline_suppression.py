"""Silences and inhibition at flush time, on both databases: a suppressed notification is a
``suppressed`` delivery with its reason, recorded once, and is sent when the suppression ends."""

from __future__ import annotations

from infragent.notify.model import Matcher
from infragent.store import notify_config
from infragent.store.sql import SqlStore
from support.notify_pipeline import (
    SECRET,
    Clock,
    delivery_rows,
    drive,
    notifier,
    open_incident,
    pipeline_settings,
    set_routes,
    silence,
    webhook_channel,
)
from support.standins import WebhookReceiver

T0 = 1_700_000_000.0
TREE = {"receivers": ["hook"], "group_by": ["..."], "group_wait": "0s", "group_interval": "1m"}


def test_a_silenced_incident_is_recorded_as_suppressed_once_then_sent_when_the_silence_ends(
    store: SqlStore, tenant: str
) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, TREE)
        silence_id = silence(store, tenant, {"node_id": "web-1"}, T0 - 1, T0 + 300)
        open_incident(store, tenant, T0)
        for at in (T0, T0 + 60, T0 + 120, T0 + 299):
            drive(n, at)
        [row] = delivery_rows(store, tenant)
        assert row.status == "suppressed" and row.suppressed_by == f"silence {silence_id}"
        assert hook.received == []
        drive(n, T0 + 300)
        [sent] = hook.wait_for(1)
        assert sent.json["kind"] == "firing"
        assert [r.status for r in delivery_rows(store, tenant)] == ["suppressed", "delivered"]


def test_an_unsilenced_incident_of_the_same_group_is_sent_without_the_silenced_one(
    store: SqlStore, tenant: str
) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, {**TREE, "group_by": ["alertname"]})
        silence(store, tenant, {"node_id": "web-1"}, T0 - 1, T0 + 3600)
        open_incident(store, tenant, T0, node="web-1")
        loud = open_incident(store, tenant, T0, node="web-2")
        drive(n, T0)
        [sent] = hook.wait_for(1)
        assert [i["id"] for i in sent.json["incidents"]] == [loud]
        assert {r.status for r in delivery_rows(store, tenant)} == {"delivered"}


def test_an_incident_inhibited_by_a_firing_source_is_suppressed_and_others_are_sent(
    store: SqlStore, tenant: str
) -> None:
    clock = Clock(T0)
    with WebhookReceiver(SECRET) as hook, notifier(store, pipeline_settings(), clock) as n:
        webhook_channel(store, tenant, "hook", hook.hook_url)
        set_routes(store, tenant, TREE)
        with store.write() as conn:
            notify_config.create_inhibit_rule(
                conn,
                tenant,
                name="host down mutes its apps",
                source=(Matcher("alertname", "=", "host_down"),),
                target=(Matcher("alertname", "=", "app_down"),),
                equal=("host",),
                actor="test",
                now=T0,
            )
        source = open_incident(store, tenant, T0, node="web-1", type_="host_down")
        muted = open_incident(store, tenant, T0, node="web-1", type_="app_down")
        other = open_incident(store, tenant, T0, node="web-2", type_="app_down")
        drive(n, T0)
        hook.wait_for(2)
        drive(n, T0 + 60)
        sent = sorted(r.json["incidents"][0]["id"] for r in hook.received)
        assert sent == sorted([source, other])
        rows = {r.message["incidents"][0]["id"]: r for r in delivery_rows(store, tenant)}
        assert rows[muted].status == "suppressed"
        assert rows[muted].suppressed_by == "inhibited by host down mutes its apps"
