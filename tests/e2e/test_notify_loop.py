"""The whole loop with real processes: samples → rule → incident → notification → resolution.

A threshold rule (``last`` busy fraction over 10 s above 0.8, ``for: 0s``) fires on samples the
``Feeder`` sends through the native ingest API; the server opens the incident, its notification
pipeline routes it (one root route: group_wait 0, one group per incident) to a webhook channel
(Standard Webhooks signed) and a Slack incoming-webhook channel, both stand-ins on 127.0.0.1. When
the samples recover the incident resolves, and both receive the resolution: the group had been sent
firing, so its next flush (``group_interval`` 1 s after the first) sends ``resolved``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infragent.signing import new_secret
from infragent.store.sql import SqlStore
from support.detect import Feeder, busy_rule, deployment, wait_for
from support.notify_e2e import (
    DeliveryRow,
    NotifyApi,
    delivery_rows,
    notify_server,
    route_tree,
    unverified,
    webhook_ids,
)
from support.standins import SlackStandIn, WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
RULE = "E2eNotifyBusy"


def test_a_rule_firing_is_notified_to_webhook_and_slack_and_so_is_its_resolution(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    secret = new_secret()
    with (
        deployment(store, db_url, tmp_path) as d,
        WebhookReceiver(secret) as hook,
        SlackStandIn() as slack,
    ):
        server = notify_server(d).start()
        api = NotifyApi(server.url, d.api_key)
        api.create_channel("ops-hook", "webhook", settings={"url": hook.hook_url}, secrets={"secret": secret})
        api.create_channel("ops-slack", "slack", secrets={"url": slack.webhook_url})
        api.put_routes(route_tree(["ops-hook", "ops-slack"], only={"alertname": RULE}, group_interval="1s"))
        api.add_rule(busy_rule(RULE, function="last", window="10s", for_="0s"))

        with Feeder(d.api_key, [server.url], level=1.0) as feed:
            [incident] = wait_for(lambda: api.incidents(RULE) or None, 30, "the incident to open")
            hook.wait_for(1, timeout_s=20)
            slack.wait_for(1, timeout_s=20)
            feed.check()

            [fired] = hook.received
            assert hook.checks[0].verified, hook.checks[0]
            body = fired.json
            assert body["kind"] == "firing", body
            assert [i["id"] for i in body["incidents"]] == [incident["id"]]
            assert body["incidents"][0]["labels"]["alertname"] == RULE
            assert fired.headers["webhook-id"] == body["id"]
            [posted] = slack.received
            assert RULE in json.dumps(posted.json), posted.json

            feed.level = 0.0
            [resolved] = wait_for(
                lambda: [i for i in api.incidents(RULE) if i["status"] == "resolved"] or None,
                30,
                "the incident to resolve",
            )
            hook.wait_for(2, timeout_s=20)
            slack.wait_for(2, timeout_s=20)

        assert resolved["id"] == incident["id"]
        second = hook.received[1]
        assert second.json["kind"] == "resolved", second.json
        assert [i["id"] for i in second.json["incidents"]] == [incident["id"]]
        assert second.json["incidents"][0]["status"] == "resolved"
        assert not unverified(hook)
        ids = webhook_ids(hook)
        assert len(ids) == 2 and set(ids.values()) == {1}, ids
        assert "resolved" in json.dumps(slack.received[1].json).lower()

        # The outbox agrees: two deliveries per channel, every one recorded delivered (the record
        # follows the receiver's answer), the hook's carrying the ids the receiver saw.
        def recorded() -> list[DeliveryRow] | None:
            rows = delivery_rows(store, d.client_id)
            return rows if len(rows) == 4 and all(r.status == "delivered" for r in rows) else None

        rows = wait_for(recorded, 10, "every delivery to be recorded delivered")
        assert sorted(r.kind for r in rows) == ["firing", "firing", "resolved", "resolved"]
        assert set(ids) <= {r.id for r in rows}
        listed = api.deliveries()
        assert {x["id"] for x in listed} == {r.id for r in rows}
