"""The pipeline with Slack's two channel kinds against the Slack stand-in, on both databases: the
incoming webhook gets each group message; the bot keeps one thread per incident across
deliveries, because the worker stores the thread reference a send returns and hands it to the next
send — also when the send that created it must be retried."""

from __future__ import annotations

from infragent.incidents.model import IncidentStatus
from infragent.store.sql import SqlStore
from support.notify_pipeline import (
    Clock,
    channel,
    delivery_rows,
    drive,
    move,
    notifier,
    open_incident,
    pipeline_settings,
    set_routes,
)
from support.standins import SlackStandIn

T0 = 1_700_000_000.0
TOKEN = "xoxb-test-token"
CHANNEL = "C0123456789"
TREE = {"receivers": ["bot"], "group_by": ["..."], "group_wait": "0s", "group_interval": "1m"}


def _bot(store: SqlStore, tenant: str, slack: SlackStandIn) -> None:
    channel(
        store, tenant, "bot", "slack_bot", {"channel": CHANNEL, "api_url": slack.api_url}, {"token": TOKEN}
    )


def test_the_bot_posts_an_incident_once_and_threads_its_resolution_under_it(
    store: SqlStore, tenant: str
) -> None:
    clock = Clock(T0)
    with (
        SlackStandIn(token=TOKEN, channels=(CHANNEL,)) as slack,
        notifier(store, pipeline_settings(), clock) as n,
    ):
        _bot(store, tenant, slack)
        set_routes(store, tenant, TREE)
        incident = open_incident(store, tenant, T0)
        drive(n, T0)
        [root] = slack.roots()
        move(store, tenant, incident, IncidentStatus.RESOLVED, T0 + 5)
        drive(n, T0 + 60)
        assert slack.roots() == [root]  # no second root message
        assert len(slack.replies(root.ts)) == 1
        assert root.updates  # the root's status line was updated
        assert {r.status for r in delivery_rows(store, tenant)} == {"delivered"}


def test_a_thread_created_by_a_send_that_is_retried_is_reused_by_the_retry(
    store: SqlStore, tenant: str
) -> None:
    """Two incidents in one message: the first root is posted, then Slack fails the second post;
    the retry must not post the first root again."""
    clock = Clock(T0)
    settings = pipeline_settings(notify_backoff_base_s=1.0, notify_backoff_cap_s=2.0)
    with SlackStandIn(token=TOKEN, channels=(CHANNEL,)) as slack, notifier(store, settings, clock) as n:
        _bot(store, tenant, slack)
        set_routes(store, tenant, {**TREE, "group_by": ["alertname"], "group_wait": "10s"})
        open_incident(store, tenant, T0, node="web-1")
        open_incident(store, tenant, T0, node="web-2")
        slack.api_error_next(1, "internal_error", after=1)
        drive(n, T0 + 10)
        [row] = delivery_rows(store, tenant)
        assert row.status == "pending" and len(slack.roots()) == 1
        drive(n, row.next_attempt_at)
        [done] = delivery_rows(store, tenant)
        assert done.status == "delivered" and done.attempts == 2
        assert len(slack.roots()) == 2  # one per incident, the first one not posted twice


def test_an_incoming_webhook_gets_each_group_message(store: SqlStore, tenant: str) -> None:
    clock = Clock(T0)
    with (
        SlackStandIn(token=TOKEN, channels=(CHANNEL,)) as slack,
        notifier(store, pipeline_settings(), clock) as n,
    ):
        channel(store, tenant, "hook", "slack", {}, {"url": slack.webhook_url})
        set_routes(store, tenant, {**TREE, "receivers": ["hook"]})
        open_incident(store, tenant, T0)
        drive(n, T0)
        [message] = slack.wait_for(1)
        assert message.json["text"] and message.json["blocks"]
        assert delivery_rows(store, tenant)[0].status == "delivered"
