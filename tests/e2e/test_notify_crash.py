"""A server SIGKILLed between claiming a delivery and sending it: the next server sends it once.

The server runs with the test-only failpoint ``INFRAGENT_FAILPOINTS=notify.before_send=kill``
(``notify/failpoints.py``): the delivery worker claims the incident's delivery (status ``sending``,
a lease of ``notify_lease_s``, attempt 1 counted), commits, and the process SIGKILLs itself before
any byte goes to the receiver. The server is started again without the failpoint; once the dead
process's lease (3 s) has run out, the new one takes the delivery over and sends it. The receiver
must get it exactly once — one verified post with the delivery's ``webhook-id`` — and no other copy
in the 10 s after.

Samples keep coming (the ``Feeder`` holds them while the server is down and re-sends them), so the
incident stays open and nothing else is notified during the test.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from infragent.signing import new_secret
from infragent.store.sql import SqlStore
from support.detect import Feeder, busy_rule, deployment, wait_for
from support.notify_e2e import (
    NotifyApi,
    delivery_rows,
    notify_server,
    route_tree,
    stays,
    unverified,
    webhook_ids,
)
from support.standins import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
RULE = "E2eNotifyCrash"
LEASE_S = 3


def test_a_delivery_claimed_by_a_killed_server_is_sent_exactly_once_after_the_restart(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    secret = new_secret()
    with deployment(store, db_url, tmp_path) as d, WebhookReceiver(secret) as hook:
        server = notify_server(d, failpoints="notify.before_send=kill", lease_s=LEASE_S).start()
        api = NotifyApi(server.url, d.api_key)
        api.create_channel("ops-hook", "webhook", settings={"url": hook.hook_url}, secrets={"secret": secret})
        api.put_routes(route_tree(["ops-hook"], only={"alertname": RULE}))
        api.add_rule(busy_rule(RULE, function="last", window="20s", for_="0s"))

        with Feeder(d.api_key, [server.url], level=1.0) as feed:
            proc = server.proc
            assert proc is not None
            code = wait_for(proc.poll, 30, "the failpoint to kill the server")
            assert code == -signal.SIGKILL, server.log()
            server.proc = None  # it is dead: a restart spawns a new one

            # Killed after the claim's commit, before the send: claimed, counted, not received.
            [claimed] = delivery_rows(store, d.client_id)
            assert (claimed.kind, claimed.status, claimed.attempts) == ("firing", "sending", 1), claimed
            assert claimed.lease_owner is not None
            assert hook.received == []

            del server.extra_env["INFRAGENT_FAILPOINTS"]
            server.start()
            hook.wait_for(1, timeout_s=LEASE_S + 20)
            stays(lambda: len(hook.received) == 1, 10, "one post and no other copy")
            feed.check()

        assert not unverified(hook)
        assert webhook_ids(hook) == {claimed.id: 1}
        [delivered] = delivery_rows(store, d.client_id)
        assert (delivered.id, delivered.status, delivered.attempts) == (claimed.id, "delivered", 2)
        [incident] = api.incidents(RULE)
        assert hook.received[0].json["incidents"][0]["id"] == incident["id"]
        detail = api._get(f"/api/v1/notify/deliveries/{claimed.id}")
        assert [a["outcome"] for a in detail["attempts_made"]] == ["delivered"], detail
