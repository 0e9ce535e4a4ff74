"""Discord through a channel webhook: the title as ``content`` and one embed per incident.

Each embed: the incident's title linked to its page, a colour by severity (green once resolved),
the status and responder lines as its description, inline fields (severity, status, host or
labels, since, value) and the time it opened. ``allowed_mentions: {"parse": []}`` keeps any text
(a label, a title) from pinging ``@everyone`` or a role.

Discord's limits are kept: ``content`` 2,000 characters, 10 embeds, an embed title 256, a
description 4,096, 25 fields of 256/1,024, and 6,000 characters over all embeds: embeds are added
while they fit, and the incidents left out are counted in ``content``.

The URL gets ``?wait=true`` so Discord answers 200 with the created message once it is stored
(instead of 204 before), and an error is an error. A 429's JSON body (``{"retry_after": 1.5,
"global": false}``) is more precise than its ``Retry-After`` header and is preferred; 4xx bodies
(``{"code": 50035, "message": "Invalid Form Body"}``) are quoted as message and code.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from infragent.notify.channels.base import (
    ChannelDeps,
    clip,
    iso,
    labels_line,
    setting,
    status_line,
    text_of,
    title_of,
    where,
)
from infragent.notify.channels.http import Answer, post
from infragent.notify.model import ChannelConfig, DeliveryResult, IncidentSummary, Message

MAX_EMBEDS = 10
MAX_EMBED_CHARS = 6000
SEVERITY_COLORS = {"critical": 0xE01E5A, "warning": 0xECB22E, "info": 0x36C5F0}
RESOLVED_COLOR = 0x2EB67D
OTHER_COLOR = 0x9B9B9B


def with_wait(url: str) -> str:
    """``url`` with ``wait=true`` in its query (other parameters, such as ``thread_id``, kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("wait", "true")])))


def embed_of(message: Message, incident: IncidentSummary) -> dict[str, Any]:
    """One incident as a Discord embed."""
    place = where(incident)
    fields = [
        {"name": "Severity", "value": clip(incident.severity, 1024), "inline": True},
        {"name": "Status", "value": clip(incident.status, 1024), "inline": True},
        {"name": "Host", "value": clip(place, 1024), "inline": True}
        if place
        else {"name": "Labels", "value": clip(labels_line(incident.labels) or "-", 1024), "inline": False},
        {"name": "Since", "value": f"<t:{int(incident.opened_at)}:R>", "inline": True},
    ]
    if incident.value:
        fields.append({"name": "Value", "value": clip(incident.value, 1024), "inline": True})
    lines = [status_line(message, incident)]
    if incident.responder:
        lines.append(f"Responder: {incident.responder}")
    embed: dict[str, Any] = {
        "title": clip(incident.title, 256),
        "description": clip("\n".join(lines), 1024),
        "color": RESOLVED_COLOR
        if incident.status == "resolved"
        else SEVERITY_COLORS.get(incident.severity, OTHER_COLOR),
        "fields": fields,
        "timestamp": iso(incident.opened_at),
    }
    if incident.url:
        embed["url"] = incident.url
    return embed


def embed_size(embed: dict[str, Any]) -> int:
    """What Discord counts towards its 6,000-character limit: titles, descriptions, field texts."""
    fields = sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", ()))
    return len(embed.get("title", "")) + len(embed.get("description", "")) + fields


def payload_of(message: Message) -> dict[str, Any]:
    """The execute-webhook body: ``content``, ``embeds`` within Discord's limits, no mentions."""
    embeds: list[dict[str, Any]] = []
    used = 0
    for incident in message.incidents[:MAX_EMBEDS]:
        embed = embed_of(message, incident)
        if used + embed_size(embed) > MAX_EMBED_CHARS:
            break
        embeds.append(embed)
        used += embed_size(embed)
    content = f"**{title_of(message)}**"
    if not message.incidents or message.template.get("text"):
        content += f"\n{text_of(message)}"
    if len(embeds) < len(message.incidents):
        content += f"\n…and {len(message.incidents) - len(embeds)} more incidents"
    return {"content": clip(content, 2000), "embeds": embeds, "allowed_mentions": {"parse": []}}


class DiscordChannel:
    """POSTs ``payload_of(message)`` to the webhook URL (``secrets.url``) with ``?wait=true``."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._url = setting(config.secrets, "url")
        self._deps = deps

    def send(self, message: Message) -> DeliveryResult:
        if not self._url:
            return DeliveryResult("failed", error="the Discord channel has no webhook URL")
        try:
            url = with_wait(self._url)
        except ValueError:
            return DeliveryResult("failed", error="the Discord webhook URL is not a valid URL")
        return _interpret(post(self._deps, url, payload=payload_of(message)))


def _interpret(answer: Answer) -> DeliveryResult:
    """Discord's JSON error body read into the result (``retry_after``, message and code)."""
    result = answer.result
    body = answer.json()
    if result.outcome == "delivered" or not isinstance(body, dict) or answer.status_code is None:
        return result
    if answer.status_code == 429:
        wait = body.get("retry_after")
        scope = "global" if body.get("global") else "this webhook"
        error = f"HTTP 429 from {answer.host}: rate limited ({scope})"
        seconds = float(wait) if isinstance(wait, int | float) and 0 <= wait < 86_400 else None
        return answer.refine(result.outcome, error, retry_after_s=seconds)
    text = body.get("message")
    if isinstance(text, str):
        code = body.get("code")
        said = clip(text, 200) + (f" (code {code})" if isinstance(code, int) else "")
        return answer.refine(result.outcome, f"HTTP {answer.status_code} from {answer.host}: {said}")
    return result
