"""The PagerDuty channel against the Events API v2 stand-in: one event per incident keyed by its
fingerprint, the trigger → acknowledge → resolve lifecycle, severity mapping, approval and test
events, 400 final with PagerDuty's errors, 429/5xx retried and stopping at the first retry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from infragent.notify.channels import build_channel
from infragent.notify.channels.base import ChannelDeps
from infragent.notify.channels.pagerduty import PagerDutyChannel
from infragent.notify.model import Channel
from support.standins import PagerDutyStandIn
from support.standins.pagerduty import event_errors
from support.standins.samples import NOW, channel_config, incident, message


@pytest.fixture
def pd() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn() as standin:
        yield standin


def _channel(pd: PagerDutyStandIn, deps: ChannelDeps, key: str | None = None, **settings: Any) -> Channel:
    config = channel_config(
        "pagerduty", {"url": pd.enqueue_url, **settings}, {"routing_key": key or pd.routing_key}
    )
    channel = build_channel(config, deps)
    assert isinstance(channel, PagerDutyChannel)
    return channel


def test_the_dedup_key_lifecycle_trigger_acknowledge_resolve(pd: PagerDutyStandIn, deps: ChannelDeps) -> None:
    channel = _channel(pd, deps)
    one = incident(1)
    key = one.fingerprint
    assert channel.send(message("firing", one)).outcome == "delivered"
    assert pd.state(key) == "triggered"
    assert channel.send(message("firing", one)).outcome == "delivered"  # a re-sent trigger: same alert
    acked = replace(one, status="acknowledged", acknowledged_by="alice")
    assert channel.send(message("acknowledged", acked)).outcome == "delivered"
    assert pd.state(key) == "acknowledged"
    assert channel.send(message("escalated", replace(acked, status="escalated"))).outcome == "delivered"
    assert pd.state(key) == "acknowledged"  # a trigger leaves an acknowledged alert acknowledged
    result = channel.send(message("resolved", replace(one, status="resolved", resolved_at=NOW)))
    assert (result.outcome, result.status_code) == ("delivered", 202)
    assert pd.state(key) == "resolved" and pd.alerts[key].opened == 1
    assert [e["event_action"] for e in pd.events] == [
        "trigger",
        "trigger",
        "acknowledge",
        "trigger",
        "resolve",
    ]
    assert pd.events[2] == {"routing_key": pd.routing_key, "event_action": "acknowledge", "dedup_key": key}


def test_a_trigger_carries_the_documented_payload(pd: PagerDutyStandIn, deps: ChannelDeps) -> None:
    one = incident(1, labels={"host": "web-1", "service": "api", "env": "prod"})
    assert _channel(pd, deps).send(message("firing", one)).outcome == "delivered"
    (event,) = pd.events
    assert event_errors(event, (pd.routing_key,)) == []
    assert (event["dedup_key"], event["client"], event["client_url"]) == (
        one.fingerprint,
        "InfrAgent",
        one.url,
    )
    assert event["links"] == [{"href": one.url, "text": "Incident in InfrAgent"}]
    payload = event["payload"]
    assert {
        k: payload[k] for k in ("summary", "source", "severity", "timestamp", "class", "component", "group")
    } == {
        "summary": "High CPU on web-1",
        "source": "web-1",
        "severity": "critical",
        "timestamp": "2025-06-15T16:16:40Z",
        "class": "HighCpu",
        "component": "api",
        "group": "prod",
    }
    details = payload["custom_details"]
    assert details["labels"] == one.labels and details["value"] == "97.5%"
    assert details["responder"] == "restart_service on web-1: ok" and details["incident_id"] == "inc-1"


def test_a_group_message_triggers_firing_and_resolves_resolved(
    pd: PagerDutyStandIn, deps: ChannelDeps
) -> None:
    firing, gone = incident(1), incident(2, status="resolved", resolved_at=NOW, labels={})
    pd.events.clear()
    assert _channel(pd, deps).send(message("firing", firing, gone)).outcome == "delivered"
    assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [
        ("trigger", firing.fingerprint),
        ("resolve", gone.fingerprint),
    ]


@pytest.mark.parametrize(
    ("severity", "severity_map", "expected"),
    [
        ("critical", {}, "critical"),
        ("warning", {}, "warning"),
        ("info", {}, "info"),
        ("major", {}, "error"),
        ("warning", {"warning": "error"}, "error"),
        ("warning", {"warning": "bogus"}, "warning"),
    ],
)
def test_severity_mapping(
    pd: PagerDutyStandIn, deps: ChannelDeps, severity: str, severity_map: dict[str, str], expected: str
) -> None:
    channel = _channel(pd, deps, severity_map=severity_map)
    assert channel.send(message("firing", incident(1, severity=severity, labels={}))).outcome == "delivered"
    assert (
        pd.events[0]["payload"]["severity"] == expected and pd.events[0]["payload"]["source"] == "infragent"
    )


def test_an_approval_is_a_page_of_its_own_and_a_test_triggers_then_resolves(
    pd: PagerDutyStandIn, deps: ChannelDeps
) -> None:
    channel = _channel(pd, deps)
    approval = message("approval", incident(1), detail={"action": "restart_service", "expires_at": NOW + 900})
    assert channel.send(approval).outcome == "delivered"
    key = f"{incident(1).fingerprint}:approval"
    assert pd.state(key) == "triggered" and pd.state(incident(1).fingerprint) is None
    assert pd.events[0]["payload"]["summary"] == "Approval needed: restart_service for High CPU on web-1"
    assert pd.events[0]["payload"]["custom_details"]["detail"]["action"] == "restart_service"
    assert channel.send(replace(message("test"), id="dlv-test", incidents=())).outcome == "delivered"
    assert pd.state("infragent-test-dlv-test") == "resolved"
    assert [e["event_action"] for e in pd.events[1:]] == ["trigger", "resolve"]


def test_an_invalid_event_is_final_with_pagerdutys_errors(pd: PagerDutyStandIn, deps: ChannelDeps) -> None:
    short_key = "tooshort-routing-key"
    result = _channel(pd, deps, key=short_key).send(message())
    assert (result.outcome, result.status_code) == ("failed", 400)
    assert result.error == (
        "HTTP 400 from 127.0.0.1: invalid event: "
        "Length of 'routing_key' is incorrect (should be 32 characters)"
    )
    unknown = "X" * 32
    result = _channel(pd, deps, key=unknown).send(message())
    assert (
        result.error == "HTTP 400 from 127.0.0.1: invalid event: Invalid routing key"
        and unknown not in result.error
    )
    assert pd.events == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_retryable_failure_stops_at_that_incident(
    pd: PagerDutyStandIn, deps: ChannelDeps, status: int
) -> None:
    channel = _channel(pd, deps)
    msg = message("firing", incident(1), incident(2), incident(3))
    assert channel.send(replace(msg, incidents=msg.incidents[:1])).outcome == "delivered"
    pd.reset()
    pd.fail_next(1, status, retry_after=9)
    result = channel.send(msg)
    assert (result.outcome, result.status_code, result.retry_after_s) == ("retry", status, 9.0)
    assert len(pd.received) == 1 and pd.events == []  # stopped at the first: 2 and 3 not sent
    assert channel.send(msg).outcome == "delivered"
    assert [pd.state(i.fingerprint) for i in msg.incidents] == ["triggered"] * 3


def test_pagerduty_down_is_a_retry_and_loopback_is_refused_by_default(
    pd: PagerDutyStandIn, deps: ChannelDeps, strict_deps: ChannelDeps
) -> None:
    pd.down()
    down = _channel(pd, deps).send(message())
    assert down.outcome == "retry" and pd.routing_key not in (down.error or "")
    pd.up()
    refused = _channel(pd, strict_deps).send(message())
    assert refused.outcome == "failed" and pd.routing_key not in (refused.error or "")
    assert pd.received == []


def test_no_routing_key_fails_without_sending(pd: PagerDutyStandIn, deps: ChannelDeps) -> None:
    channel = build_channel(channel_config("pagerduty", {"url": pd.enqueue_url}, {}), deps)
    assert channel.send(message()).outcome == "failed" and pd.received == []
