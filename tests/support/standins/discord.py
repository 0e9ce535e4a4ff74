"""A Discord stand-in: the execute-webhook endpoint with Discord's checks and error shapes.

    with DiscordStandIn() as discord:
        DiscordChannel(... secrets={"url": discord.webhook_url} ...)
        discord.wait_for(1); discord.messages[0]["embeds"]

* ``POST /api/webhooks/<webhook_id>/<token>`` (``webhook_url``): another id answers 404
  ``{"message": "Unknown Webhook", "code": 10015}``, another token 401 ``{"message": "Invalid
  Webhook Token", "code": 50027}``; a body that is not a JSON object, or has neither ``content``
  nor ``embeds``, 400 ``{"message": "Cannot send an empty message", "code": 50006}``; one over
  Discord's limits (content 2,000, 10 embeds, title 256, description 4,096, 25 fields of
  256/1,024, 6,000 characters over all embeds) 400 ``{"message": "Invalid Form Body", "code":
  50035, "errors": {...}}``.
* ``?wait=true``: 200 with the created message (``id``, ``channel_id``, ``content``, ``embeds``,
  ``timestamp``); without it, 204 and no body.
* ``fail_next(n, 429)`` answers Discord's rate-limit body ``{"message": "You are being rate
  limited.", "retry_after": <retry_after or 1.0>, "global": false}`` and ``Retry-After``.

``messages`` holds the accepted bodies, each with the ``id`` Discord gave it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.standins.base import Received, Reply, StandIn


def form_errors(body: dict[str, Any]) -> dict[str, Any]:
    """Discord's ``errors`` for a body over its limits (empty when within them)."""
    errors: dict[str, Any] = {}
    if len(body.get("content") or "") > 2000:
        errors["content"] = "Must be 2000 or fewer in length."
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        errors["embeds"] = "Must be 10 or fewer in length."
    total = 0
    for i, embed in enumerate(embeds):
        title, description = embed.get("title", ""), embed.get("description", "")
        fields = embed.get("fields", [])
        if len(title) > 256 or len(description) > 4096 or len(fields) > 25:
            errors[f"embeds.{i}"] = "title, description or fields over the limit"
        for j, f in enumerate(fields):
            if not f.get("name") or not f.get("value") or len(f["name"]) > 256 or len(f["value"]) > 1024:
                errors[f"embeds.{i}.fields.{j}"] = "name 1-256, value 1-1024"
        if not isinstance(embed.get("color", 0), int):
            errors[f"embeds.{i}.color"] = "Value is not int."
        total += (
            len(title)
            + len(description)
            + sum(len(f.get("name", "")) + len(f.get("value", "")) for f in fields)
        )
    if total > 6000:
        errors["embeds"] = "Embed size exceeds maximum size of 6000"
    return errors


class DiscordStandIn(StandIn):
    name = "Discord stand-in"

    def __init__(self, webhook_id: str = "1234567890", token: str = "discord-webhook-token-abc") -> None:
        super().__init__()
        self.webhook_id = webhook_id
        self.token = token
        self.messages: list[dict[str, Any]] = []

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{self.webhook_id}/{self.token}"

    def clear(self) -> None:
        self.messages.clear()

    def failure_reply(self, request: Received, status: int, retry_after: float | str | None) -> Reply:
        if status == 429:
            wait = float(retry_after) if isinstance(retry_after, int | float) else 1.0
            return Reply.json(
                429, {"message": "You are being rate limited.", "retry_after": wait, "global": False}
            )
        return Reply.json(status, {"message": f"{status}: error", "code": 0})

    def answer(self, request: Received) -> Reply:
        split = urlsplit(request.path)
        parts = split.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 4 or parts[:2] != ["api", "webhooks"]:
            return Reply.json(404, {"message": "404: Not Found", "code": 0})
        if parts[2] != self.webhook_id:
            return Reply.json(404, {"message": "Unknown Webhook", "code": 10015})
        if parts[3] != self.token:
            return Reply.json(401, {"message": "Invalid Webhook Token", "code": 50027})
        body = request.json
        if not isinstance(body, dict) or not (body.get("content") or body.get("embeds")):
            return Reply.json(400, {"message": "Cannot send an empty message", "code": 50006})
        errors = form_errors(body)
        if errors:
            return Reply.json(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})
        created = {
            "id": str(1_000_000 + len(self.messages)),
            "channel_id": "9876543210",
            "webhook_id": self.webhook_id,
            "content": body.get("content", ""),
            "embeds": body.get("embeds", []),
            "timestamp": "2025-06-15T16:26:40.000000+00:00",
        }
        self.messages.append({**body, "id": created["id"]})
        if parse_qs(split.query).get("wait") == ["true"]:
            return Reply.json(200, created)
        return Reply(204)
