"""The Slack incoming-webhook channel against the Slack stand-in: a valid Block Kit message with
the text fallback, Slack's plain-text errors, 429 with Retry-After, and no secret in any error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.slack import MAX_INCIDENTS, SlackChannel
from infragent.notify.model import Channel
from support.standins import SlackStandIn
from support.standins.samples import NOW, channel_config, incident, message
from support.standins.slack import blocks_problem


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


def _channel(url: str, deps: ChannelDeps) -> Channel:
    channel = build_channel(channel_config("slack", secrets={"url": url}), deps)
    assert isinstance(channel, SlackChannel)
    return channel


def test_a_block_kit_message_with_the_text_fallback(slack: SlackStandIn, deps: ChannelDeps) -> None:
    msg = message(
        "firing", incident(1), incident(2, labels={"env": "prod"}, value=None, responder=None, url="")
    )
    result = _channel(slack.webhook_url, deps).send(msg)
    assert (result.outcome, result.status_code, result.error) == ("delivered", 200, None)
    (posted,) = slack.messages
    assert posted.text == msg.text and blocks_problem(posted.blocks) is None
    blocks = posted.blocks or []
    assert [b["type"] for b in blocks] == ["header", "section", "context", "actions", "section"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": msg.title}
    first = blocks[1]
    assert first["text"]["text"] == "*<https://infragent.example.com/incidents/inc-1|High CPU on web-1>*"
    fields = [f["text"] for f in first["fields"]]
    assert fields == [
        "*Severity*\ncritical",
        "*Status*\nFIRING: open",
        "*Host*\nweb-1",
        f"*Since*\n<!date^{int(NOW - 600)}^{{date_short_pretty}} {{time}}|2025-06-15 16:16 UTC>",
        "*Value*\n97.5%",
    ]
    assert blocks[2]["elements"][0]["text"] == "Responder: restart_service on web-1: ok"
    button = blocks[3]["elements"][0]
    assert (button["type"], button["url"]) == ("button", "https://infragent.example.com/incidents/inc-1")
    second = [f["text"] for f in blocks[4]["fields"]]
    assert "*Labels*\nenv=prod" in second and not any(f.startswith("*Value*") for f in second)


def test_user_text_is_escaped_and_many_incidents_are_counted(slack: SlackStandIn, deps: ChannelDeps) -> None:
    many = [incident(i, title=f"<!channel> & <http://evil|x> {i}") for i in range(MAX_INCIDENTS + 3)]
    assert _channel(slack.webhook_url, deps).send(message("firing", *many)).outcome == "delivered"
    blocks = slack.messages[0].blocks or []
    assert blocks_problem(blocks) is None and len(blocks) <= 50
    assert "&lt;!channel&gt; &amp; &lt;http://evil|x&gt; 0" in blocks[1]["text"]["text"]
    assert blocks[-1]["elements"][0]["text"] == "…and 3 more incidents"


def test_a_test_message_without_incidents(slack: SlackStandIn, deps: ChannelDeps) -> None:
    msg = replace(message("test", title="", text=""), incidents=())
    assert _channel(slack.webhook_url, deps).send(msg).outcome == "delivered"
    blocks = slack.messages[0].blocks or []
    assert blocks[0]["text"]["text"] == "[TEST] InfrAgent test notification"
    assert "this channel works" in blocks[1]["text"]["text"]


@pytest.mark.parametrize(
    ("status", "outcome"), [(429, "retry"), (500, "retry"), (503, "retry"), (403, "failed")]
)
def test_failures_map_onto_retry_or_failed(
    slack: SlackStandIn, deps: ChannelDeps, status: int, outcome: str
) -> None:
    slack.fail_next(1, status, retry_after=30 if status == 429 else None)
    result = _channel(slack.webhook_url, deps).send(message())
    assert (result.outcome, result.status_code) == (outcome, status)
    assert result.retry_after_s == (30.0 if status == 429 else None)
    assert slack.messages == []


def test_slack_refusals_are_final_and_quote_the_reason_not_the_url(
    slack: SlackStandIn, deps: ChannelDeps
) -> None:
    wrong = slack.webhook_url.replace(slack.webhook_token, "revoked-token-xyz")
    result = _channel(wrong, deps).send(message())
    assert (result.outcome, result.status_code, result.error) == (
        "failed",
        404,
        "HTTP 404 from 127.0.0.1: no_service",
    )
    slack.fail_next(1, 410)
    assert (
        _channel(slack.webhook_url, deps).send(message()).error
        == "HTTP 410 from 127.0.0.1: channel_is_archived"
    )


def test_slack_down_is_a_retry_then_delivered(slack: SlackStandIn, deps: ChannelDeps) -> None:
    channel = _channel(slack.webhook_url, deps)
    slack.down()
    result = channel.send(message())
    assert result.outcome == "retry" and slack.webhook_token not in (result.error or "")
    slack.up()
    assert channel.send(message()).outcome == "delivered" and len(slack.messages) == 1


def test_a_loopback_url_is_refused_by_default_without_naming_its_path(
    slack: SlackStandIn, strict_deps: ChannelDeps
) -> None:
    result = _channel(slack.webhook_url, strict_deps).send(message())
    assert result.outcome == "failed" and "outbound policy" in (result.error or "")
    assert slack.webhook_token not in (result.error or "") and "/services/" not in (result.error or "")
    assert slack.received == []


def test_no_url_fails_without_sending(deps: ChannelDeps) -> None:
    assert _channel("", deps).send(message()).outcome == "failed"
