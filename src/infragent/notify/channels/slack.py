"""Slack through an incoming webhook: a Block Kit message with a plain-text fallback.

The layout (``blocks_of``, shared with the bot channel): a ``header`` with the title; per incident
a ``section`` whose text links the incident and whose ``fields`` say severity, status, where
(the ``host`` label, else the labels), since when (a Slack ``<!date>``, shown in each reader's
time zone) and the value; a ``context`` with the responder's line; an ``actions`` block with a
link button to the incident page. The top-level ``text`` is ``message.text`` (rendered, or a plain
line per incident): Slack shows it in notifications and where blocks cannot be shown.

Slack's limits are kept (50 blocks, a 150-character header, 10 fields of at most 2,000 characters,
3,000-character section text): at most ``MAX_INCIDENTS`` incidents get blocks, the rest are
counted in a last line; every text is cut to its limit. User text is escaped (``&``, ``<``,
``>``) so a label cannot inject a mention or a link.

Slack answers 200 ``ok``, a 4xx with a plain-text reason (``invalid_payload``, ``no_text``,
``no_service``, ``channel_not_found``, ``channel_is_archived``, ``action_prohibited``), 429 with
``Retry-After``: the shared mapping of ``http.post`` reads all of them (the reason is quoted in the
error; the URL, which is the credential, never is).
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
from infragent.notify.channels.http import post
from infragent.notify.model import ChannelConfig, DeliveryResult, IncidentSummary, Message

#: Incidents shown with blocks in one message (each takes up to 3 of Slack's 50 blocks).
MAX_INCIDENTS = 10
#: Slack's ``text`` limit for ``chat.postMessage`` (incoming webhooks truncate sooner).
MAX_TEXT = 40_000


def escape(text: str) -> str:
    """Slack's three control characters as entities (its ``mrkdwn`` escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _date(ts: float) -> str:
    """A Slack date token: each reader's local time, with a UTC fallback."""
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{readable(ts)}>"


def _field(name: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip(f"*{name}*\n{value}", 2000)}


def incident_blocks(message: Message, incident: IncidentSummary) -> list[dict[str, Any]]:
    """The section, context and button of one incident."""
    title = escape(incident.title)
    link = f"*<{incident.url}|{title}>*" if incident.url else f"*{title}*"
    fields = [
        _field("Severity", escape(incident.severity)),
        _field("Status", escape(status_line(message, incident))),
    ]
    place = where(incident)
    if place:
        fields.append(_field("Host", escape(place)))
    elif incident.labels:
        fields.append(_field("Labels", escape(labels_line(incident.labels))))
    fields.append(_field("Since", _date(incident.opened_at)))
    if incident.value:
        fields.append(_field("Value", escape(incident.value)))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(link, 3000)}, "fields": fields}
    ]
    if incident.responder:
        responder = clip(f"Responder: {escape(incident.responder)}", 3000)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": responder}]})
    if incident.url:
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open incident"},
            "url": clip(incident.url, 3000),
            "action_id": clip(f"open-{incident.id}", 255),
        }
        blocks.append({"type": "actions", "elements": [button]})
    return blocks


def blocks_of(message: Message, incidents: tuple[IncidentSummary, ...] | None = None) -> list[dict[str, Any]]:
    """The Block Kit layout of ``message`` (or of ``incidents`` under its title)."""
    shown = message.incidents if incidents is None else incidents
    header = {"type": "plain_text", "text": clip(title_of(message), 150)}
    blocks: list[dict[str, Any]] = [{"type": "header", "text": header}]
    if not shown or message.template.get("text"):
        # nothing structured to show, or a route's own wording: show the (rendered) text itself
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(text_of(message), 3000)}})
    for incident in shown[:MAX_INCIDENTS]:
        blocks.extend(incident_blocks(message, incident))
    if len(shown) > MAX_INCIDENTS:
        more = f"…and {len(shown) - MAX_INCIDENTS} more incidents"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    if message.kind == "approval" and message.detail:
        facts = "\n".join(f"*{escape(str(k))}*: {escape(str(v))}" for k, v in sorted(message.detail.items()))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(facts, 3000)}})
    return blocks


class SlackChannel:
    """POSTs ``{"text", "blocks"}`` to the incoming-webhook URL (``secrets.url``)."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._url = setting(config.secrets, "url")
        self._deps = deps

    def send(self, message: Message) -> DeliveryResult:
        if not self._url:
            return DeliveryResult("failed", error="the Slack channel has no webhook URL")
        payload = {"text": clip(text_of(message), MAX_TEXT), "blocks": blocks_of(message)}
        return post(self._deps, self._url, payload=payload).result
