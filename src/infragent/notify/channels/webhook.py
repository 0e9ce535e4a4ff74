"""The generic webhook channel: a documented JSON body, signed with Standard Webhooks.

Why Standard Webhooks (``infragent.signing``): it is what the command webhooks already speak, so a
receiver verifies notifications with the same few lines (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<HMAC-SHA256>``) or any Standard Webhooks library. ``webhook-id`` is the
delivery id, the same on every retry of one delivery: the receiver's idempotency key. Each attempt
is signed afresh at the current time, so a retry after a long back-off is not refused as stale.

The body (``docs/notifications.md`` documents each field; times are Unix seconds)::

    {"type": "infragent.notification", "id": "<delivery id>", "kind": "firing", "tenant": "<client id>",
     "created_at": 1750000000.0, "title": "...", "text": "...", "group_labels": {...},
     "firing_count": 2, "resolved_count": 0, "incidents": [{"id", "title", "severity", "status",
     "fingerprint", "labels", "opened_at", "rule_name", "resolved_at", "acknowledged_by", "value",
     "responder", "url"}], "detail": {...}}
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from infragent import signing
from infragent.errors import SignatureError
from infragent.notify.channels.base import ChannelDeps, setting, text_of, title_of
from infragent.notify.channels.http import encode, post
from infragent.notify.model import ChannelConfig, DeliveryResult, Message

#: ``type`` of every notification body (a receiver can tell it from a command).
BODY_TYPE = "infragent.notification"


def body_of(message: Message) -> dict[str, Any]:
    """The documented JSON body of ``message`` (see the module docstring)."""
    return {
        "type": BODY_TYPE,
        "id": message.id,
        "kind": message.kind,
        "tenant": message.client_id,
        "created_at": message.created_at,
        "title": title_of(message),
        "text": text_of(message),
        "group_labels": dict(message.group_labels),
        "firing_count": message.firing_count,
        "resolved_count": message.resolved_count,
        "incidents": [asdict(incident) for incident in message.incidents],
        "detail": dict(message.detail),
    }


class WebhookChannel:
    """POSTs ``body_of(message)`` to ``settings.url``, signed with ``secrets.secret``."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._url = setting(config.settings, "url")
        self._secret = setting(config.secrets, "secret")
        self._deps = deps

    def send(self, message: Message) -> DeliveryResult:
        if not self._url or not self._secret:
            return DeliveryResult("failed", error="the webhook channel has no url or no signing secret")
        try:
            body = encode(body_of(message))
        except TypeError as exc:
            return DeliveryResult("failed", error=f"the message could not be encoded as JSON: {exc}")
        try:
            headers = signing.signed_headers(self._secret, message.id, body, now=self._deps.clock())
        except SignatureError:  # bad_secret: the stored secret is not base64
            return DeliveryResult("failed", error="the webhook signing secret is not a valid whsec_ secret")
        return post(self._deps, self._url, content=body, headers=headers).result
