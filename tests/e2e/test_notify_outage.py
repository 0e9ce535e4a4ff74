"""The receiver is down for two minutes while incidents open: after it is back, all are delivered,
none is lost and none arrives twice.

The webhook stand-in stops listening (``down()``: connection refused on its port); five events of
five services open five incidents, each its own group (``group_by: ["..."]``), so five deliveries.
Every attempt fails on the transport and is retried with backoff (base 0.5 s, cap 5 s: the test
ends soon after the receiver is back). After 120 s the stand-in listens again on the same port
(``up()``); then every delivery arrives, each exactly once: unique ``webhook-id``s == deliveries
produced, posts == unique ids, and nothing more in the 10 s after.

Events rather than rules: five incidents at once need five fingerprints, and an event's is its
(type, service, node); the routes notify on ``firing``/``resolved`` only, so an escalation the
responder may make of an event incident adds no post.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infragent.signing import new_secret
from infragent.store.sql import SqlStore
from support.detect import deployment, wait_for
from support.notify_e2e import (
    NotifyApi,
    delivery_rows,
    notify_server,
    posts,
    route_tree,
    stays,
    unverified,
    webhook_ids,
)
from support.standins import WebhookReceiver

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    # The outage is the receiver's, not the database's: one run, on the production database where
    # several processes would share the retries, keeps the suite's two minutes of waiting to one.
    pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True),
]
INCIDENTS = 5
OUTAGE_S = 120.0
BACKOFF_CAP_S = 5


def test_a_receiver_down_for_two_minutes_gets_every_notification_once_when_it_is_back(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    secret = new_secret()
    with deployment(store, db_url, tmp_path) as d, WebhookReceiver(secret) as hook:
        server = notify_server(d, backoff_cap_s=BACKOFF_CAP_S).start()
        api = NotifyApi(server.url, d.api_key)
        api.create_channel("ops-hook", "webhook", settings={"url": hook.hook_url}, secrets={"secret": secret})
        api.put_routes(route_tree(["ops-hook"], only={"alertname": "app_down"}))

        hook.down()
        down_at = time.monotonic()
        opened = {api.report_event("app_down", f"svc-{k}")["incident_id"] for k in range(INCIDENTS)}
        assert len(opened) == INCIDENTS and None not in opened

        # Every delivery is tried, fails on the refused connection and waits for its next try.
        def all_retried() -> bool:
            rows = delivery_rows(store, d.client_id)
            return len(rows) == INCIDENTS and all(r.attempts >= 2 and r.status == "pending" for r in rows)

        wait_for(all_retried, 60, "every delivery to have failed twice against the down receiver")
        produced = delivery_rows(store, d.client_id)
        # one delivery per incident (a group's delivery names its incidents in its message)
        assert sorted(x["incident_ids"] for x in api.deliveries()) == sorted([i] for i in opened)
        stays(
            lambda: not hook.received, OUTAGE_S - (time.monotonic() - down_at), "nothing received while down"
        )

        hook.up()
        up_at = time.monotonic()
        hook.wait_for(INCIDENTS, timeout_s=BACKOFF_CAP_S + 30)
        delivered_within = time.monotonic() - up_at
        stays(
            lambda: len(hook.received) == INCIDENTS,
            10,
            "no copy after the last delivery",
            lambda: (posts(hook), api.deliveries(), api.all_incidents()),
        )

        assert not unverified(hook)
        ids = webhook_ids(hook)
        assert set(ids) == {r.id for r in produced}, (ids, produced)  # 0 lost
        assert sum(ids.values()) == len(ids) == INCIDENTS  # 0 duplicated
        assert {p.json["incidents"][0]["id"] for p in hook.received} == opened
        rows = delivery_rows(store, d.client_id)
        assert {r.status for r in rows} == {"delivered"}, rows
        # The retries went on during the whole outage: the wait for the last one is bounded by the
        # backoff cap (plus a tick and the send), not by how long the receiver was down.
        assert delivered_within < BACKOFF_CAP_S + 30
        assert min(r.attempts for r in rows) >= 3, rows
