"""The Discord channel against the Discord stand-in: content and embeds within Discord's limits,
``?wait=true``, the rate-limit body's ``retry_after``, Discord's error bodies, no secret shown."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.discord import RESOLVED_COLOR, SEVERITY_COLORS, DiscordChannel, with_wait
from infragent.notify.model import Channel
from support.standins import DiscordStandIn
from support.standins.discord import form_errors
from support.standins.samples import NOW, channel_config, incident, message


@pytest.fixture
def discord() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin


def _channel(url: str, deps: ChannelDeps) -> Channel:
    channel = build_channel(channel_config("discord", secrets={"url": url}), deps)
    assert isinstance(channel, DiscordChannel)
    return channel


def test_content_and_one_embed_per_incident(discord: DiscordStandIn, deps: ChannelDeps) -> None:
    resolved = incident(2, status="resolved", resolved_at=NOW, severity="warning", labels={"env": "prod"})
    result = _channel(discord.webhook_url, deps).send(message("firing", incident(1), resolved))
    assert (result.outcome, result.status_code) == ("delivered", 200)  # 200: wait=true
    assert discord.received[0].path.endswith("?wait=true")
    (posted,) = discord.messages
    assert posted["content"] == "**[FIRING] High CPU on web-1**"
    assert posted["allowed_mentions"] == {"parse": []}
    first, second = posted["embeds"]
    assert (first["title"], first["url"]) == (
        "High CPU on web-1",
        "https://infragent.example.com/incidents/inc-1",
    )
    assert first["color"] == SEVERITY_COLORS["critical"] and second["color"] == RESOLVED_COLOR
    assert first["timestamp"] == "2025-06-15T16:16:40Z"
    assert first["description"] == "FIRING: open\nResponder: restart_service on web-1: ok"
    assert {f["name"]: f["value"] for f in first["fields"]} == {
        "Severity": "critical",
        "Status": "open",
        "Host": "web-1",
        "Since": f"<t:{int(NOW - 600)}:R>",
        "Value": "97.5%",
    }
    assert {f["name"] for f in second["fields"]} >= {"Labels"} and second["description"].startswith(
        "RESOLVED at"
    )


def test_many_and_long_incidents_stay_within_discords_limits(
    discord: DiscordStandIn, deps: ChannelDeps
) -> None:
    many = [incident(i, title="T" * 400, responder="r" * 5000, value="v" * 2000) for i in range(14)]
    assert _channel(discord.webhook_url, deps).send(message("firing", *many)).outcome == "delivered"
    posted = discord.messages[0]
    assert form_errors(posted) == {} and 0 < len(posted["embeds"]) <= 10
    assert posted["content"].endswith(f"…and {14 - len(posted['embeds'])} more incidents")


def test_a_test_message_without_incidents_is_content_only(discord: DiscordStandIn, deps: ChannelDeps) -> None:
    msg = replace(message("test", title="", text=""), incidents=())
    assert _channel(discord.webhook_url, deps).send(msg).outcome == "delivered"
    assert discord.messages[0]["content"].startswith("**[TEST] InfrAgent test notification**\nThis is a test")


def test_429_uses_the_bodys_retry_after(discord: DiscordStandIn, deps: ChannelDeps) -> None:
    discord.fail_next(1, 429, retry_after=2.5)
    result = _channel(discord.webhook_url, deps).send(message())
    assert (result.outcome, result.status_code, result.retry_after_s) == ("retry", 429, 2.5)
    assert result.error == "HTTP 429 from 127.0.0.1: rate limited (this webhook)"
    discord.fail_next(
        1, 429, body={"message": "You are being rate limited.", "retry_after": 0.75, "global": True}
    )
    result = _channel(discord.webhook_url, deps).send(message())
    assert (result.retry_after_s, result.error) == (0.75, "HTTP 429 from 127.0.0.1: rate limited (global)")


def test_5xx_is_retried_and_the_stand_in_down_too(discord: DiscordStandIn, deps: ChannelDeps) -> None:
    channel = _channel(discord.webhook_url, deps)
    discord.fail_next(1, 502)
    assert channel.send(message()).outcome == "retry"
    discord.down()
    down = channel.send(message())
    assert down.outcome == "retry" and discord.token not in (down.error or "")
    discord.up()
    assert channel.send(message()).outcome == "delivered" and len(discord.messages) == 1


def test_discords_refusals_are_final_with_its_message(discord: DiscordStandIn, deps: ChannelDeps) -> None:
    wrong = discord.webhook_url.replace(discord.token, "stolen-token")
    result = _channel(wrong, deps).send(message())
    assert (result.outcome, result.status_code) == ("failed", 401)
    assert result.error == "HTTP 401 from 127.0.0.1: Invalid Webhook Token (code 50027)"
    assert "stolen-token" not in (result.error or "")
    gone = _channel(discord.webhook_url.replace(discord.webhook_id, "42"), deps).send(message())
    assert gone.error == "HTTP 404 from 127.0.0.1: Unknown Webhook (code 10015)"


def test_a_loopback_url_is_refused_by_default(discord: DiscordStandIn, strict_deps: ChannelDeps) -> None:
    result = _channel(discord.webhook_url, strict_deps).send(message())
    assert result.outcome == "failed" and "outbound policy" in (result.error or "")
    assert discord.token not in (result.error or "") and discord.received == []


def test_wait_is_added_to_the_query_keeping_its_other_parameters() -> None:
    assert with_wait("https://discord.com/api/webhooks/1/t?thread_id=9&wait=false") == (
        "https://discord.com/api/webhooks/1/t?thread_id=9&wait=true"
    )
