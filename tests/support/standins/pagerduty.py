"""A PagerDuty stand-in: the Events API v2 ``enqueue`` endpoint with its checks and alert states.

    with PagerDutyStandIn() as pd:
        PagerDutyChannel(... settings={"url": pd.enqueue_url},
                         secrets={"routing_key": pd.routing_key} ...)
        pd.wait_for(1); assert pd.state("fp-1") == "triggered"

* ``POST /v2/enqueue`` (``enqueue_url``): each body is checked as PagerDuty does; a fault answers
  400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``:
  a ``routing_key`` that is not 32 characters (``Length of 'routing_key' is incorrect (should be
  32 characters)``) or not one of ``routing_keys``; an ``event_action`` other than trigger,
  acknowledge, resolve; no ``dedup_key`` on acknowledge/resolve; a ``dedup_key`` over 255
  characters; a trigger without ``payload``, ``payload.summary`` or ``payload.source``, with a
  ``payload.severity`` outside critical/error/warning/info or a ``payload.timestamp`` that is not
  ISO 8601; ``links`` that are not ``{"href"}`` objects.
* Accepted: 202 ``{"status": "success", "message": "Event processed", "dedup_key"}`` (a trigger
  without a key gets one).
* ``fail_next(n, 429)``: ``{"status": "throttle event", "message": "Requests for this service are
  arriving too quickly. Please retry later."}``; other statuses ``{"status": "error", ...}``.

State per ``dedup_key`` (``alerts``, ``state(key)``): ``trigger`` opens an alert (``triggered``),
or re-opens a resolved one as a new alert (``opened`` counts them), and leaves an open one as it is
(an acknowledged alert stays acknowledged); ``acknowledge`` moves a triggered alert to
``acknowledged``; ``resolve`` moves an open alert to ``resolved``; acknowledging or resolving an
unknown key is accepted and does nothing. ``events`` lists the accepted events in order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from support.standins.base import Received, Reply, StandIn

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
DEFAULT_KEY = "R0UT1NGK3Y0123456789abcdefABCDEF"


@dataclass
class PdAlert:
    """One alert: its state, how many times it was opened, and its events."""

    state: str
    opened: int = 1
    events: list[dict[str, Any]] = field(default_factory=list)


def event_errors(body: Any, routing_keys: tuple[str, ...]) -> list[str]:
    """PagerDuty's ``errors`` for an event (empty when it is valid)."""
    if not isinstance(body, dict):
        return ["Event object is not a JSON object"]
    errors = []
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif key not in routing_keys:
        errors.append("Invalid routing key")
    action = body.get("event_action")
    if action not in ACTIONS:
        errors.append(
            "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"
        )
    dedup = body.get("dedup_key")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is missing or blank")
    if isinstance(dedup, str) and len(dedup) > 255:
        errors.append("'dedup_key' is too long (maximum is 255 characters)")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or blank"]
        for name in ("summary", "source"):
            if not isinstance(payload.get(name), str) or not payload[name].strip():
                errors.append(f"'payload.{name}' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append(
                "'payload.severity' is invalid (must be one of the following: "
                "'critical', 'warning', 'error' or 'info')"
            )
        timestamp = payload.get("timestamp")
        if timestamp is not None and not _iso8601(timestamp):
            errors.append("'payload.timestamp' is invalid (must be a valid ISO 8601 timestamp)")
    links = body.get("links", [])
    if not isinstance(links, list) or not all(isinstance(link, dict) and link.get("href") for link in links):
        errors.append("'links' is invalid")
    return errors


def _iso8601(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value) is not None
    except ValueError:
        return False


class PagerDutyStandIn(StandIn):
    name = "PagerDuty stand-in"

    def __init__(self, routing_keys: tuple[str, ...] = (DEFAULT_KEY,)) -> None:
        super().__init__()
        self.routing_keys = routing_keys
        self.alerts: dict[str, PdAlert] = {}
        self.events: list[dict[str, Any]] = []

    @property
    def routing_key(self) -> str:
        return self.routing_keys[0]

    @property
    def enqueue_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def state(self, dedup_key: str) -> str | None:
        """``triggered``, ``acknowledged``, ``resolved``, or None for a key never triggered."""
        with self._lock:
            alert = self.alerts.get(dedup_key)
            return alert.state if alert else None

    def clear(self) -> None:
        self.alerts.clear()
        self.events.clear()

    def failure_reply(self, request: Received, status: int, retry_after: float | str | None) -> Reply:
        if status == 429:
            message = "Requests for this service are arriving too quickly. Please retry later."
            return Reply.json(429, {"status": "throttle event", "message": message})
        if status == 400:
            return Reply.json(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": []}
            )
        return Reply.json(status, {"status": "error", "message": "Internal error"})

    def answer(self, request: Received) -> Reply:
        if request.method != "POST" or request.path.split("?")[0] != "/v2/enqueue":
            return Reply.json(404, {"status": "error", "message": "Not found"})
        errors = event_errors(request.json, self.routing_keys)
        if errors:
            return Reply.json(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            )
        event = dict(request.json)
        key = event.get("dedup_key") or uuid.uuid4().hex
        event["dedup_key"] = key
        self._apply(event["event_action"], key, event)
        self.events.append(event)
        return Reply.json(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def _apply(self, action: str, key: str, event: dict[str, Any]) -> None:
        alert = self.alerts.get(key)
        if action == "trigger":
            if alert is None:
                self.alerts[key] = alert = PdAlert("triggered")
            elif alert.state == "resolved":
                alert.state, alert.opened = "triggered", alert.opened + 1
        elif alert is None:
            return  # PagerDuty accepts it and nothing happens
        elif action == "acknowledge" and alert.state == "triggered":
            alert.state = "acknowledged"
        elif action == "resolve":
            alert.state = "resolved"
        alert.events.append(event)
