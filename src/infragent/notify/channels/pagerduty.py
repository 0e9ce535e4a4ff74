"""PagerDuty through the Events API v2: one event per incident, keyed by the incident's fingerprint.

Why the fingerprint as ``dedup_key``: PagerDuty folds every event with one key into one alert, so
the alert opened by ``trigger`` is the one ``acknowledge`` and ``resolve`` later act on, and a
trigger sent twice (a retry after a lost answer) is appended to the same alert, not a second page.
That is also why a message about several incidents stops at the first retryable failure and
returns ``retry``: re-sending the events that went through is harmless.

What each notification sends (``docs/notifications.md``):

* ``firing`` / ``resolved`` (group notifications): per incident, ``resolve`` when it is resolved,
  else ``trigger``;
* ``escalated`` / ``escalation``: ``trigger`` (an acknowledged alert stays acknowledged);
* ``acknowledged``: ``acknowledge``;
* ``approval``: ``trigger`` under ``"<fingerprint>:approval"``, a page of its own;
* ``test``: a ``trigger`` then a ``resolve`` of the key ``infragent-test-<delivery id>``.

A trigger's payload: ``summary`` (the incident's title), ``source`` (the ``host`` label, else
``infragent``), ``severity`` (ours mapped to PagerDuty's critical/error/warning/info; the
channel's ``severity_map`` setting overrides, e.g. ``{"warning": "error"}``), ``timestamp`` (ISO
8601), ``class`` (the rule), ``component``/``group`` (the ``service``/``env`` labels, when set),
``custom_details`` (labels, value, responder, status, incident id); ``links`` to the incident.

PagerDuty answers 202 ``{"status": "success", "dedup_key"}``; 400 ``{"status": "invalid event",
"errors": [...]}`` (final, the errors quoted); 429 and 5xx are retried.
"""

from __future__ import annotations

from typing import Any

from infragent.notify.channels.base import ChannelDeps, clip, iso, setting, text_of, title_of, where
from infragent.notify.channels.http import Answer, post, scrub
from infragent.notify.model import ChannelConfig, DeliveryResult, IncidentSummary, Message

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
PD_SEVERITIES = frozenset({"critical", "error", "warning", "info"})
DEFAULT_SEVERITY_MAP = {"critical": "critical", "warning": "warning", "info": "info"}
#: What an unmapped severity becomes.
FALLBACK_SEVERITY = "error"
_TRIGGER_KINDS = frozenset({"escalated", "escalation", "approval"})


def severity_of(severity: str, severity_map: dict[str, Any]) -> str:
    """PagerDuty's severity for ours: the channel's map first, then the default, else ``error``."""
    for mapping in (severity_map, DEFAULT_SEVERITY_MAP):
        mapped = mapping.get(severity)
        if isinstance(mapped, str) and mapped in PD_SEVERITIES:
            return mapped
    return FALLBACK_SEVERITY


def action_of(message: Message, incident: IncidentSummary) -> str:
    """``trigger``, ``acknowledge`` or ``resolve`` for one incident of ``message``."""
    if message.kind == "acknowledged":
        return "acknowledge"
    if message.kind in _TRIGGER_KINDS:
        return "trigger"
    return "resolve" if incident.status == "resolved" else "trigger"


def _summary(message: Message, incident: IncidentSummary) -> str:
    if message.kind == "approval":
        action = message.detail.get("action")
        return f"Approval needed: {action or 'an action'} for {incident.title}"
    if message.kind == "escalation":
        return f"Still not acknowledged: {incident.title}"
    return incident.title


def trigger_of(
    message: Message, incident: IncidentSummary, routing_key: str, severity_map: dict[str, Any]
) -> dict[str, Any]:
    """The trigger event of one incident (see the module docstring for each field)."""
    details: dict[str, Any] = {
        "labels": dict(incident.labels),
        "status": incident.status,
        "incident_id": incident.id,
        "severity": incident.severity,
    }
    for name in ("value", "responder", "rule_name", "acknowledged_by"):
        if getattr(incident, name):
            details[name] = getattr(incident, name)
    if message.detail:
        details["detail"] = dict(message.detail)
    payload: dict[str, Any] = {
        "summary": clip(_summary(message, incident), 1024),
        "source": clip(where(incident) or "infragent", 255),
        "severity": severity_of(incident.severity, severity_map),
        "timestamp": iso(incident.opened_at if message.kind != "approval" else message.created_at),
        "custom_details": details,
    }
    if incident.rule_name:
        payload["class"] = clip(incident.rule_name, 255)
    for field, label in (("component", "service"), ("group", "env")):
        if incident.labels.get(label):
            payload[field] = clip(incident.labels[label], 255)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key_of(message, incident),
        "payload": payload,
        "client": "InfrAgent",
    }
    if incident.url:
        event["client_url"] = incident.url
        event["links"] = [{"href": incident.url, "text": "Incident in InfrAgent"}]
    return event


def dedup_key_of(message: Message, incident: IncidentSummary) -> str:
    """The incident's fingerprint (``:approval`` appended for an approval), at most 255 characters."""
    suffix = ":approval" if message.kind == "approval" else ""
    return incident.fingerprint[: 255 - len(suffix)] + suffix


def events_of(message: Message, routing_key: str, severity_map: dict[str, Any]) -> list[dict[str, Any]]:
    """The events one message sends, in order."""
    if message.kind == "test" or not message.incidents:
        key = f"infragent-test-{message.id}"[:255]
        payload = {
            "summary": clip(title_of(message), 1024),
            "source": "infragent",
            "severity": "info",
            "timestamp": iso(message.created_at),
            "custom_details": {"text": text_of(message)},
        }
        trigger = {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": key,
            "payload": payload,
        }
        return [trigger, {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}]
    events = []
    for incident in message.incidents:
        action = action_of(message, incident)
        if action == "trigger":
            events.append(trigger_of(message, incident, routing_key, severity_map))
        else:
            key = dedup_key_of(message, incident)
            events.append({"routing_key": routing_key, "event_action": action, "dedup_key": key})
    return events


class PagerDutyChannel:
    """Enqueues ``events_of(message)`` one by one with ``secrets.routing_key``."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._key = setting(config.secrets, "routing_key")
        self._url = setting(config.settings, "url") or DEFAULT_URL
        raw_map = config.settings.get("severity_map")
        self._severity_map: dict[str, Any] = raw_map if isinstance(raw_map, dict) else {}
        self._deps = deps

    def send(self, message: Message) -> DeliveryResult:
        if not self._key:
            return DeliveryResult("failed", error="the PagerDuty channel has no routing key")
        failed: DeliveryResult | None = None
        last = DeliveryResult("delivered")
        for event in events_of(message, self._key, self._severity_map):
            last = self._interpret(post(self._deps, self._url, payload=event))
            if last.outcome == "retry":
                return last  # PagerDuty dedups what was sent before by dedup_key
            if last.outcome == "failed" and failed is None:
                failed = last
        return failed or last

    def _interpret(self, answer: Answer) -> DeliveryResult:
        """PagerDuty's ``errors`` list quoted in the error (the routing key scrubbed out)."""
        body = answer.json()
        if answer.result.outcome == "delivered" or not isinstance(body, dict):
            return answer.result
        errors = body.get("errors")
        reason = body.get("status") or body.get("message")
        if not isinstance(reason, str):
            return answer.result
        said = reason + (
            ": " + "; ".join(str(e) for e in errors) if isinstance(errors, list) and errors else ""
        )
        said = clip(scrub(said, self._url).replace(self._key, "[routing key]"), 300)
        return answer.refine(answer.result.outcome, f"HTTP {answer.status_code} from {answer.host}: {said}")
