"""The Teams channel against the workflow stand-in: one Adaptive Card 1.4 (title, FactSet per
incident, Action.OpenUrl), 202 accepted, the workflow's error codes, no signature shown."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.teams import CARD_CONTENT_TYPE, MAX_INCIDENTS, TeamsChannel
from infragent.notify.model import Channel
from support.standins import TeamsStandIn
from support.standins.samples import channel_config, incident, message


@pytest.fixture
def teams() -> Iterator[TeamsStandIn]:
    with TeamsStandIn() as standin:
        yield standin


def _channel(url: str, deps: ChannelDeps) -> Channel:
    channel = build_channel(channel_config("teams", secrets={"url": url}), deps)
    assert isinstance(channel, TeamsChannel)
    return channel


def test_an_adaptive_card_with_facts_and_a_link(teams: TeamsStandIn, deps: ChannelDeps) -> None:
    result = _channel(teams.webhook_url, deps).send(message("firing", incident(1, title="CPU [prod]")))
    assert (result.outcome, result.status_code) == ("delivered", 202)
    (body,) = teams.messages
    assert body["type"] == "message" and body["attachments"][0]["contentType"] == CARD_CONTENT_TYPE
    (card,) = teams.cards
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, heading, facts = card["body"]
    assert (title["text"], title["color"]) == ("[FIRING] CPU [prod]", "Attention")
    assert heading["text"] == "[CPU \\[prod\\]](https://infragent.example.com/incidents/inc-1)"
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "Severity": "critical",
        "Status": "FIRING: open",
        "Host": "web-1",
        "Since": "2025-06-15 16:16 UTC",
        "Value": "97.5%",
        "Responder": "restart_service on web-1: ok",
    }
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open incident",
            "url": "https://infragent.example.com/incidents/inc-1",
        }
    ]


def test_many_incidents_and_a_test_message(teams: TeamsStandIn, deps: ChannelDeps) -> None:
    channel = _channel(teams.webhook_url, deps)
    many = [incident(i) for i in range(MAX_INCIDENTS + 2)]
    assert channel.send(message("resolved", *many)).outcome == "delivered"
    card = teams.cards[0]
    assert card["body"][0]["color"] == "Good" and card["body"][-1]["text"] == "…and 2 more incidents"
    assert len(card["actions"]) == 5
    assert channel.send(replace(message("test", title="", text=""), incidents=())).outcome == "delivered"
    texts = [b["text"] for b in teams.cards[1]["body"]]
    assert texts[0] == "[TEST] InfrAgent test notification" and "this channel works" in texts[1]
    assert "actions" not in teams.cards[1]


@pytest.mark.parametrize(
    ("status", "outcome"), [(429, "retry"), (500, "retry"), (502, "retry"), (400, "failed")]
)
def test_failures(teams: TeamsStandIn, deps: ChannelDeps, status: int, outcome: str) -> None:
    teams.fail_next(1, status, retry_after=4 if status == 429 else None)
    result = _channel(teams.webhook_url, deps).send(message())
    assert (result.outcome, result.status_code) == (outcome, status)
    if status == 429:
        assert result.retry_after_s == 4.0
        assert result.error == (
            "HTTP 429 from 127.0.0.1: WorkflowRequestsThrottled: The workflow is throttled; retry later."
        )


def test_a_wrong_signature_is_final_and_not_shown(teams: TeamsStandIn, deps: ChannelDeps) -> None:
    wrong = teams.webhook_url.replace(teams.sig, "forged-signature")
    result = _channel(wrong, deps).send(message())
    assert (result.outcome, result.status_code) == ("failed", 401)
    assert (result.error or "").startswith("HTTP 401 from 127.0.0.1: DirectApiInvalidAuthorizationSignature")
    assert "forged-signature" not in (result.error or "") and teams.messages == []


def test_down_is_a_retry_and_loopback_is_refused_by_default(
    teams: TeamsStandIn, deps: ChannelDeps, strict_deps: ChannelDeps
) -> None:
    teams.down()
    down = _channel(teams.webhook_url, deps).send(message())
    assert down.outcome == "retry" and teams.sig not in (down.error or "")
    teams.up()
    refused = _channel(teams.webhook_url, strict_deps).send(message())
    assert refused.outcome == "failed" and teams.sig not in (refused.error or "")
    assert "/workflows/" not in (refused.error or "") and teams.received == []
