"""A flapping rule is one incident, and its notifications are bounded by the route's intervals.

The ``Feeder`` alternates the busy fraction above and below the threshold: 10 episodes of 6 s above
then 6 s below, 120 s in all, so the rule (``last`` over 2 s, ``for: 0s``) fires and resolves 10
times. Incidents: the first firing opens one, each later firing reopens it (it ended within
``incident_reopen_window_s``), so there is ONE incident, reopened 9 times.

Notifications (the route: ``group_wait`` 0 s, ``group_interval`` 30 s, one group per incident):

* the group's first flush is at its creation + ``group_wait``: the opening is sent at once;
* a change to a group that has sent before is flushed no sooner than ``group_interval`` after that
  send (``grouping.on_member_change``), and a flush sends one message at most, only when something
  changed since the last one sent (firing again after a sent resolution, or resolved after a sent
  firing): so messages are at least 30 s apart, and within the 120 s of flapping that follow the
  first one there are at most ``ceil(120 / 30)`` more;
* when the flapping stops (below the threshold), the resolution is sent at the next flush: one more
  (or none, when the last message sent already said resolved).

Hence ``1 + ceil(120 / 30) + 1 = 6`` at most (against 20 changes of state), and at least 2: the
opening and the final resolution, the group's last sent state (the last message is asserted to be
``resolved``).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from infragent.signing import new_secret
from infragent.store.sql import SqlStore
from support.detect import busy_rule, deployment, wait_for
from support.notify_e2e import (
    FlappingFeeder,
    NotifyApi,
    delivery_rows,
    notify_server,
    posts,
    route_tree,
    settled,
    unverified,
    webhook_ids,
)
from support.standins import WebhookReceiver

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    # The bound comes from the group timers, which are the same on both databases: one run, on the
    # embedded default, keeps the suite's two minutes of flapping to one (the outage test runs on
    # PostgreSQL; the pipeline's own tests cover flapping groups on both).
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
RULE = "E2eNotifyFlapping"
EPISODES = 10
HALF_PERIOD_S = 6.0
GROUP_INTERVAL_S = 30.0
FLAPPING_S = EPISODES * 2 * HALF_PERIOD_S


def test_a_flapping_rule_is_one_incident_with_notifications_bounded_by_group_interval(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    secret = new_secret()
    with deployment(store, db_url, tmp_path) as d, WebhookReceiver(secret) as hook:
        server = notify_server(d).start()
        api = NotifyApi(server.url, d.api_key)
        api.create_channel("ops-hook", "webhook", settings={"url": hook.hook_url}, secrets={"secret": secret})
        api.put_routes(
            route_tree(
                ["ops-hook"],
                only={"alertname": RULE},
                group_wait="0s",
                group_interval=f"{GROUP_INTERVAL_S:g}s",
            )
        )
        api.add_rule(busy_rule(RULE, function="last", window="2s", for_="0s"))

        feeder = FlappingFeeder(d.api_key, [server.url], episodes=EPISODES, half_period_s=HALF_PERIOD_S)
        with feeder as feed:
            wait_for(lambda: feed.done or feed.error, FLAPPING_S + 10, "the flapping schedule to end")
            feed.check()
            [incident] = wait_for(
                lambda: [i for i in api.incidents(RULE) if i["status"] == "resolved"] or None,
                30,
                "the incident to resolve after the flapping",
            )

        # The flapping ends resolved; the group's last message must say so. It may have been sent
        # before the last flip: when the incident fired and resolved again between two flushes, the
        # next flush finds it resolved as last told and sends nothing (nothing changed for the
        # reader). So: wait until the outbox has nothing left to route, flush or send, then read the
        # last message.
        wait_for(lambda: settled(store, d.client_id), GROUP_INTERVAL_S + 15, "the outbox to settle")
        assert hook.received and hook.received[-1].json["kind"] == "resolved", posts(hook)

        detail = api.incident(incident["id"])
        assert detail["reopen_count"] == EPISODES - 1, detail
        assert [i["id"] for i in api.all_incidents() if i["rule_name"] == RULE] == [incident["id"]]

        assert not unverified(hook)
        ids = webhook_ids(hook)
        count = len(hook.received)
        assert sum(ids.values()) == len(ids) == count  # each notification once
        bound = 1 + math.ceil(FLAPPING_S / GROUP_INTERVAL_S) + 1
        assert 2 <= count <= bound, posts(hook)
        assert hook.received[0].json["kind"] == "firing"
        assert {p.json["incidents"][0]["id"] for p in hook.received} == {incident["id"]}
        rows = delivery_rows(store, d.client_id)
        assert len(rows) == count and {r.status for r in rows} == {"delivered"}
        # consecutive notifications differ: a flush sends only what changed since the last one
        kinds = [p.json["kind"] for p in hook.received]
        assert all(a != b for a, b in itertools.pairwise(kinds)), kinds
