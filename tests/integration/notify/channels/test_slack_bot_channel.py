"""The Slack bot channel against the Slack stand-in's Web API: one root per incident, then
``chat.update`` of the root and a reply in its thread using the stored ``ts``; Slack's
``{"ok": false}`` errors split into retry and failed; partial progress returned with a retry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.slack_bot import SlackBotChannel
from infragent.notify.model import Channel
from support.standins import SlackStandIn
from support.standins.samples import NOW, channel_config, incident, message
from support.standins.slack import blocks_problem

TOKEN = "xoxb-1111-2222-secretbottoken"
CHANNEL = "C0123456789"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(TOKEN, channels=(CHANNEL,)) as standin:
        yield standin


def _bot(slack: SlackStandIn, deps: ChannelDeps, token: str = TOKEN, channel: str = CHANNEL) -> Channel:
    config = channel_config("slack_bot", {"channel": channel, "api_url": slack.api_url}, {"token": token})
    bot = build_channel(config, deps)
    assert isinstance(bot, SlackBotChannel)
    return bot


def test_a_root_per_incident_then_update_and_reply_in_its_thread(
    slack: SlackStandIn, deps: ChannelDeps
) -> None:
    bot = _bot(slack, deps)
    first = bot.send(message("firing", incident(1), incident(2)))
    assert first.outcome == "delivered" and set(first.threads) == {"inc-1", "inc-2"}
    roots = slack.roots(CHANNEL)
    assert [r.ts for r in roots] == [first.threads["inc-1"], first.threads["inc-2"]]
    assert all(blocks_problem(r.blocks) is None for r in roots)
    assert roots[0].blocks and roots[0].blocks[1]["text"]["text"].endswith("|High CPU on web-1>*")
    assert slack.received[0].headers["authorization"] == f"Bearer {TOKEN}"

    acked = incident(1, status="acknowledged", acknowledged_by="alice")
    second = bot.send(message("acknowledged", acked, id="dlv-0002", threads=first.threads))
    assert (second.outcome, second.threads) == ("delivered", {})  # nothing new to store
    root = slack.message(first.threads["inc-1"])
    assert root is not None and len(root.updates) == 1
    status_field = root.blocks[1]["fields"][1]["text"] if root.blocks else ""
    assert status_field == "*Status*\nACKNOWLEDGED by alice"
    (reply,) = slack.replies(first.threads["inc-1"])
    assert reply.text.startswith("*ACKNOWLEDGED by alice*\nCRITICAL High CPU on web-1")
    assert len(slack.roots()) == 2  # no second root

    resolved = incident(1, status="resolved", resolved_at=NOW)
    assert (
        bot.send(message("resolved", resolved, id="dlv-0003", threads=first.threads)).outcome == "delivered"
    )
    assert [r.text.splitlines()[0] for r in slack.replies(first.threads["inc-1"])] == [
        "*ACKNOWLEDGED by alice*",
        "*RESOLVED at 2025-06-15 16:26 UTC*",
    ]


def test_a_root_that_is_gone_is_posted_again(slack: SlackStandIn, deps: ChannelDeps) -> None:
    result = _bot(slack, deps).send(message("resolved", threads={"inc-1": "1700000000.000001"}))
    assert result.outcome == "delivered" and result.threads["inc-1"] == slack.roots()[0].ts
    assert slack.replies(result.threads["inc-1"]) == []


def test_partial_progress_is_returned_with_the_retry(slack: SlackStandIn, deps: ChannelDeps) -> None:
    bot = _bot(slack, deps)
    msg = message("firing", incident(1), incident(2), incident(3))
    slack.api_error_next(1, "ratelimited", retry_after=12, after=1)
    partial = bot.send(msg)
    # incident 1 got its root, then incident 2 met the rate limit: retry, with 1's ts to store
    assert (partial.outcome, partial.status_code, partial.retry_after_s) == ("retry", 429, 12.0)
    assert partial.error == "Slack API chat.postMessage: ratelimited"
    assert list(partial.threads) == ["inc-1"] and len(slack.roots()) == 1
    done = bot.send(replace(msg, threads=partial.threads))  # the worker stored inc-1's ts
    assert done.outcome == "delivered" and set(done.threads) == {"inc-2", "inc-3"}
    assert [r.ts for r in slack.roots()] == [
        partial.threads["inc-1"],
        done.threads["inc-2"],
        done.threads["inc-3"],
    ]
    assert len(slack.replies(partial.threads["inc-1"])) == 1  # updated in its thread, not posted twice


@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "service_unavailable", "request_timeout"])
def test_slacks_transient_errors_are_retried(slack: SlackStandIn, deps: ChannelDeps, error: str) -> None:
    slack.api_error_next(1, error)
    result = _bot(slack, deps).send(message())
    assert (result.outcome, result.status_code, result.error) == (
        "retry",
        200,
        f"Slack API chat.postMessage: {error}",
    )


@pytest.mark.parametrize(
    "error",
    ["not_in_channel", "account_inactive", "token_revoked", "msg_too_long", "invalid_blocks", "not_authed"],
)
def test_slacks_permanent_errors_are_final(slack: SlackStandIn, deps: ChannelDeps, error: str) -> None:
    slack.api_error_next(1, error)
    assert _bot(slack, deps).send(message()).outcome == "failed"


def test_a_wrong_token_and_an_unknown_channel_are_final_and_no_token_is_shown(
    slack: SlackStandIn, deps: ChannelDeps
) -> None:
    result = _bot(slack, deps, token="xoxb-wrong-token").send(message())
    assert (result.outcome, result.error) == ("failed", "Slack API chat.postMessage: invalid_auth")
    result = _bot(slack, deps, channel="C999").send(message())
    assert (result.outcome, result.error) == ("failed", "Slack API chat.postMessage: channel_not_found")
    assert slack.messages == []


def test_http_failures_and_slack_down_are_retried(slack: SlackStandIn, deps: ChannelDeps) -> None:
    bot = _bot(slack, deps)
    slack.fail_next(1, 503)
    assert bot.send(message()).outcome == "retry"
    slack.down()
    down = bot.send(message())
    assert down.outcome == "retry" and TOKEN not in (down.error or "")
    slack.up()
    assert bot.send(message()).outcome == "delivered"


def test_a_test_send_without_incidents_posts_one_message(slack: SlackStandIn, deps: ChannelDeps) -> None:
    result = _bot(slack, deps).send(replace(message("test", title="", text=""), incidents=()))
    assert (result.outcome, result.threads) == ("delivered", {})
    assert slack.messages[0].text == "This is a test notification from InfrAgent: this channel works."


def test_the_default_policy_refuses_a_loopback_api_url(slack: SlackStandIn, strict_deps: ChannelDeps) -> None:
    result = _bot(slack, strict_deps).send(message())
    assert result.outcome == "failed" and TOKEN not in (result.error or "") and slack.received == []
