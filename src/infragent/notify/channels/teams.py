"""Microsoft Teams through a Power Automate workflow webhook ("Post to a channel when a webhook
request is received"): a message with one Adaptive Card.

Why a workflow and Adaptive Card 1.4: Microsoft retired the Office 365 connectors' incoming
webhooks (and their MessageCard format); the workflow that replaces them takes a ``message`` whose
``attachments`` hold Adaptive Cards, and Teams renders cards up to version 1.4 everywhere (mobile
included). The body::

    {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
      "contentUrl": null, "content": {"type": "AdaptiveCard", "version": "1.4", "body": [...],
      "actions": [{"type": "Action.OpenUrl", ...}]}}]}

The card: the title (coloured by what it says: attention for firing, good for resolved); per
incident its linked title and a ``FactSet`` (severity, status, host or labels, since, value,
responder); the text when there is nothing structured to show; an ``Action.OpenUrl`` per linked
incident (at most ``MAX_ACTIONS``). A workflow answers 202 (accepted: the flow runs afterwards) or
200; a JSON error body ``{"error": {"code", "message"}}`` is quoted as code and message. The URL
carries its signature (``sig=``) in the query: only its host is ever shown.
"""

from __future__ import annotations

from typing import Any

from infragent.notify.channels.base import (
    ChannelDeps,
    clip,
    labels_line,
    readable,
    setting,
    status_line,
    text_of,
    title_of,
    where,
)
from infragent.notify.channels.http import Answer, post, snippet
from infragent.notify.model import ChannelConfig, DeliveryResult, IncidentSummary, Message

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
MAX_INCIDENTS = 10
MAX_ACTIONS = 5
_TITLE_COLORS = {
    "firing": "Attention",
    "escalated": "Attention",
    "escalation": "Attention",
    "resolved": "Good",
}


def _md(text: str) -> str:
    """``text`` with the brackets that would make a Markdown link escaped (TextBlocks render them)."""
    return text.replace("[", "\\[").replace("]", "\\]")


def facts_of(message: Message, incident: IncidentSummary) -> list[dict[str, str]]:
    """The incident's facts: severity, status, where, since, value, responder."""
    facts = [
        {"title": "Severity", "value": incident.severity},
        {"title": "Status", "value": status_line(message, incident)},
    ]
    place = where(incident)
    if place:
        facts.append({"title": "Host", "value": place})
    elif incident.labels:
        facts.append({"title": "Labels", "value": labels_line(incident.labels)})
    facts.append({"title": "Since", "value": readable(incident.opened_at)})
    if incident.value:
        facts.append({"title": "Value", "value": incident.value})
    if incident.responder:
        facts.append({"title": "Responder", "value": incident.responder})
    return [{"title": f["title"], "value": clip(f["value"], 500)} for f in facts]


def card_of(message: Message) -> dict[str, Any]:
    """The Adaptive Card of ``message``."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": clip(title_of(message), 300),
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
            "color": _TITLE_COLORS.get(message.kind, "Default"),
        }
    ]
    if not message.incidents or message.template.get("text"):
        body.append({"type": "TextBlock", "text": clip(text_of(message), 5000), "wrap": True})
    for incident in message.incidents[:MAX_INCIDENTS]:
        title = _md(clip(incident.title, 300))
        heading = f"[{title}]({incident.url})" if incident.url else title
        body.append(
            {"type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": True, "separator": True}
        )
        body.append({"type": "FactSet", "facts": facts_of(message, incident)})
    if len(message.incidents) > MAX_INCIDENTS:
        more = f"…and {len(message.incidents) - MAX_INCIDENTS} more incidents"
        body.append({"type": "TextBlock", "text": more, "isSubtle": True, "wrap": True})
    linked = [i for i in message.incidents if i.url][:MAX_ACTIONS]
    actions = [
        {
            "type": "Action.OpenUrl",
            "title": "Open incident" if len(linked) == 1 else clip(f"Open: {i.title}", 60),
            "url": i.url,
        }
        for i in linked
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def payload_of(message: Message) -> dict[str, Any]:
    """The workflow's ``message`` with the card as its one attachment."""
    attachment = {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card_of(message)}
    return {"type": "message", "attachments": [attachment]}


class TeamsChannel:
    """POSTs ``payload_of(message)`` to the workflow URL (``secrets.url``)."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._url = setting(config.secrets, "url")
        self._deps = deps

    def send(self, message: Message) -> DeliveryResult:
        if not self._url:
            return DeliveryResult("failed", error="the Teams channel has no workflow URL")
        return _interpret(post(self._deps, self._url, payload=payload_of(message)), self._url)


def _interpret(answer: Answer, url: str) -> DeliveryResult:
    """A workflow's ``{"error": {"code", "message"}}`` quoted as code and message."""
    body = answer.json()
    if answer.result.outcome == "delivered" or not isinstance(body, dict):
        return answer.result
    error = body.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return answer.result
    said = snippet(f"{error['code']}: {error.get('message', '')}".encode(), url)
    return answer.refine(answer.result.outcome, f"HTTP {answer.status_code} from {answer.host}: {said}")
