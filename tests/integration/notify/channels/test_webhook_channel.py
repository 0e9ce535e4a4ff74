"""The webhook channel against a verifying receiver: the documented body, a valid Standard Webhooks
signature, the delivery id as ``webhook-id`` on every retry, and the shared outcome mapping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent import signing
from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.webhook import BODY_TYPE, WebhookChannel
from support.standins import WebhookReceiver
from support.standins.samples import NOW, channel_config, incident, message

SECRET = signing.new_secret()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, clock=lambda: NOW) as receiver:
        yield receiver


def _channel(hook: WebhookReceiver, deps: ChannelDeps, secret: str = SECRET) -> WebhookChannel:
    channel = build_channel(channel_config("webhook", {"url": hook.hook_url}, {"secret": secret}), deps)
    assert isinstance(channel, WebhookChannel)
    return channel


def test_the_documented_body_arrives_signed(hook: WebhookReceiver, deps: ChannelDeps) -> None:
    resolved = incident(2, status="resolved", resolved_at=NOW - 60, acknowledged_by="alice")
    msg = message("firing", incident(1), resolved, detail={"step": 1})
    result = _channel(hook, deps).send(msg)
    assert (result.outcome, result.status_code) == ("delivered", 200)
    (check,) = hook.checks
    assert check.verified and check.webhook_id == "dlv-0001" and hook.unique_ids == ["dlv-0001"]
    assert check.received.headers["webhook-timestamp"] == str(int(NOW))
    body = check.received.json
    assert {k: body[k] for k in ("type", "id", "kind", "tenant", "created_at")} == {
        "type": BODY_TYPE,
        "id": "dlv-0001",
        "kind": "firing",
        "tenant": "client-1",
        "created_at": NOW,
    }
    assert (body["title"], body["text"]) == (msg.title, msg.text)
    assert (body["firing_count"], body["resolved_count"], body["group_labels"]) == (
        1,
        1,
        {"alertname": "HighCpu"},
    )
    assert body["detail"] == {"step": 1}
    first, second = body["incidents"]
    assert first["labels"] == {"host": "web-1", "alertname": "HighCpu", "env": "prod"}
    assert set(first) == {
        "id", "title", "severity", "status", "fingerprint", "labels", "opened_at", "rule_name",
        "resolved_at", "acknowledged_by", "value", "responder", "url",
    }  # fmt: skip
    assert (second["status"], second["resolved_at"], second["acknowledged_by"]) == (
        "resolved",
        NOW - 60,
        "alice",
    )


def test_an_unrendered_message_gets_a_plain_title_and_text(hook: WebhookReceiver, deps: ChannelDeps) -> None:
    msg = message("firing", incident(1), incident(2), title="", text="")
    assert _channel(hook, deps).send(msg).outcome == "delivered"
    body = hook.checks[0].received.json
    assert body["title"] == "[FIRING:2] High CPU on web-1 (+1 more)"
    assert (
        body["text"]
        .splitlines()[0]
        .startswith("CRITICAL High CPU on web-1 on web-1 since 2025-06-15 16:16 UTC")
    )


def test_every_retry_carries_the_same_webhook_id(hook: WebhookReceiver, deps: ChannelDeps) -> None:
    channel = _channel(hook, deps)
    hook.fail_next(1, 503, retry_after=2)
    first = channel.send(message())
    assert (first.outcome, first.status_code, first.retry_after_s) == ("retry", 503, 2.0)
    assert channel.send(message()).outcome == "delivered"
    assert channel.send(message()).outcome == "delivered"  # a duplicate: the receiver dedups by id
    assert [c.received.headers["webhook-id"] for c in hook.checks] == ["dlv-0001"] * 2
    assert hook.unique_ids == ["dlv-0001"] and len(hook.received) == 3


def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried(
    hook: WebhookReceiver, deps: ChannelDeps
) -> None:
    result = _channel(hook, deps, secret=signing.new_secret()).send(message())
    assert (result.outcome, result.status_code) == ("failed", 401)
    assert "bad_signature" in (result.error or "") and not hook.checks[0].verified


def test_4xx_is_final_and_429_is_retried(hook: WebhookReceiver, deps: ChannelDeps) -> None:
    channel = _channel(hook, deps)
    hook.fail_next(1, 422, body={"error": "unprocessable"})
    assert channel.send(message()).outcome == "failed"
    hook.fail_next(1, 429, retry_after=5)
    result = channel.send(message())
    assert (result.outcome, result.retry_after_s) == ("retry", 5.0)


def test_the_receiver_down_is_a_retry(hook: WebhookReceiver, deps: ChannelDeps) -> None:
    channel = _channel(hook, deps)
    hook.down()
    assert channel.send(message()).outcome == "retry"
    hook.up()
    assert channel.send(message()).outcome == "delivered"


def test_loopback_refused_by_default_names_no_secret(hook: WebhookReceiver, strict_deps: ChannelDeps) -> None:
    channel = build_channel(
        channel_config("webhook", {"url": hook.hook_url + "?token=abc123"}, {"secret": SECRET}), strict_deps
    )
    result = channel.send(message())
    assert result.outcome == "failed" and "outbound policy" in (result.error or "")
    assert "abc123" not in (result.error or "") and SECRET not in (result.error or "")
    assert hook.received == []


def test_a_channel_without_url_or_secret_fails_without_sending(deps: ChannelDeps) -> None:
    result = build_channel(channel_config("webhook", {"url": ""}, {}), deps).send(message())
    assert result.outcome == "failed" and "no url" in (result.error or "")
    bad = build_channel(
        channel_config("webhook", {"url": "http://127.0.0.1:9/"}, {"secret": "whsec_%%%"}), deps
    )
    assert "not a valid whsec_" in (bad.send(message()).error or "")
