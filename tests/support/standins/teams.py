"""A Microsoft Teams stand-in: a Power Automate workflow webhook that takes Adaptive Card messages.

    with TeamsStandIn() as teams:
        TeamsChannel(... secrets={"url": teams.webhook_url} ...)
        teams.wait_for(1); teams.cards[0]["body"]

* ``POST /workflows/<workflow_id>/triggers/manual/paths/invoke?api-version=2016-06-01&sp=...&sv=1.0
  &sig=<sig>`` (``webhook_url``): another workflow answers 404 ``{"error": {"code":
  "WorkflowNotFound", ...}}``; a missing or wrong ``sig`` 401 ``{"error": {"code":
  "DirectApiInvalidAuthorizationSignature", ...}}``.
* The body must be ``{"type": "message", "attachments": [...]}`` whose attachments are
  ``application/vnd.microsoft.card.adaptive`` with an ``AdaptiveCard`` of version 1.0-1.5 (Teams'
  range) and known element and action types (``Action.OpenUrl`` with a ``url``); else 400
  ``{"error": {"code": "InvalidRequestContent", "message": ...}}``. (A real workflow accepts
  more and fails later, in the flow's run history; checking here catches drift in what we send.)
* Accepted: 202 and no body, as a workflow answers. ``fail_next`` answers ``{"error": {"code",
  "message"}}`` (429: ``WorkflowRequestsThrottled``).

``messages`` holds the accepted bodies, ``cards`` their Adaptive Cards.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.standins.base import Received, Reply, StandIn

ELEMENT_TYPES = frozenset(
    {"TextBlock", "FactSet", "ColumnSet", "Column", "Container", "Image", "RichTextBlock", "ActionSet"}
)
ACTION_TYPES = frozenset({"Action.OpenUrl", "Action.Submit", "Action.ShowCard", "Action.ToggleVisibility"})
VERSIONS = frozenset({"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"})


def card_problem(body: Any) -> str | None:
    """Why the stand-in refuses ``body`` (``InvalidRequestContent``), or None."""
    if not isinstance(body, dict) or body.get("type") != "message":
        return "the body must be a JSON object with type 'message'"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "attachments must be a non-empty list"
    for attachment in attachments:
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            return "an attachment's contentType must be application/vnd.microsoft.card.adaptive"
        card = attachment.get("content")
        if (
            not isinstance(card, dict)
            or card.get("type") != "AdaptiveCard"
            or card.get("version") not in VERSIONS
        ):
            return "an attachment's content must be an AdaptiveCard of version 1.0-1.5"
        for element in card.get("body", []):
            if element.get("type") not in ELEMENT_TYPES:
                return f"unknown element type {element.get('type')!r}"
            if element["type"] == "TextBlock" and not isinstance(element.get("text"), str):
                return "a TextBlock needs text"
            if element["type"] == "FactSet" and not all(
                isinstance(f.get("title"), str) and isinstance(f.get("value"), str)
                for f in element.get("facts", [])
            ):
                return "a FactSet's facts need a title and a value"
        for action in card.get("actions", []):
            if action.get("type") not in ACTION_TYPES:
                return f"unknown action type {action.get('type')!r}"
            if action["type"] == "Action.OpenUrl" and not action.get("url"):
                return "Action.OpenUrl needs a url"
    return None


def _error(status: int, code: str, message: str) -> Reply:
    return Reply.json(status, {"error": {"code": code, "message": message}})


class TeamsStandIn(StandIn):
    name = "Teams stand-in"

    def __init__(self, workflow_id: str = "0a1b2c3d4e5f", sig: str = "teams-sig-secret-0123456789") -> None:
        super().__init__()
        self.workflow_id = workflow_id
        self.sig = sig
        self.messages: list[dict[str, Any]] = []

    @property
    def webhook_url(self) -> str:
        return (
            f"{self.url}/workflows/{self.workflow_id}/triggers/manual/paths/invoke"
            f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.sig}"
        )

    @property
    def cards(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m["attachments"][0]["content"] for m in self.messages]

    def clear(self) -> None:
        self.messages.clear()

    def failure_reply(self, request: Received, status: int, retry_after: float | str | None) -> Reply:
        if status == 429:
            return _error(429, "WorkflowRequestsThrottled", "The workflow is throttled; retry later.")
        return _error(status, "InternalServerError" if status >= 500 else "BadRequest", f"error {status}")

    def answer(self, request: Received) -> Reply:
        split = urlsplit(request.path)
        expected = f"/workflows/{self.workflow_id}/triggers/manual/paths/invoke"
        if request.method != "POST" or not split.path.startswith("/workflows/"):
            return _error(404, "NotFound", "not found")
        if split.path != expected:
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        if parse_qs(split.query).get("sig") != [self.sig]:
            return _error(
                401,
                "DirectApiInvalidAuthorizationSignature",
                "The provided authorization signature is not valid for this request.",
            )
        problem = card_problem(request.json)
        if problem is not None:
            return _error(400, "InvalidRequestContent", problem)
        self.messages.append(request.json)
        return Reply(202)
