"""Slack through a bot token: one thread per incident, its root kept current.

For each incident of a message: when no thread is known (``message.threads[incident.id]``), post
a root message (``chat.postMessage``: the incident's Block Kit layout) and return its ``ts`` in
``DeliveryResult.threads`` for the worker to store (``notify_threads``); when one is known,
``chat.update`` the root to the current status and post this message's line as a reply in the
thread (``thread_ts``). A root that is gone (``message_not_found``, ``cant_update_message``) is
replaced by a new one, whose ``ts`` is returned.

Why partial progress is returned with a retry: a message about several incidents makes several
calls; when the third fails with a retryable error the first two roots exist, so ``retry`` carries
their ``ts`` and the retry updates them instead of posting second roots.

The Web API answers HTTP 200 with ``{"ok": false, "error": ...}``: ``ratelimited`` (with HTTP 429
and ``Retry-After``), ``internal_error``, ``fatal_error``, ``service_unavailable`` and
``request_timeout`` are retried; every other error (``invalid_auth``, ``not_authed``,
``channel_not_found``, ``not_in_channel``, ``account_inactive``, ``token_revoked``,
``msg_too_long``, ``invalid_blocks``…) is final: the same call fails the same way. ``channel`` must
be a channel id (``C…``): ``chat.update`` takes no channel name.
"""

from __future__ import annotations

from typing import Any

from infragent.notify.channels.base import (
    ChannelDeps,
    clip,
    incident_line,
    setting,
    status_line,
    text_of,
    title_of,
)
from infragent.notify.channels.http import post
from infragent.notify.channels.slack import MAX_TEXT, blocks_of, escape
from infragent.notify.model import AttemptOutcome, ChannelConfig, DeliveryResult, IncidentSummary, Message

DEFAULT_API_URL = "https://slack.com/api"
#: ``{"ok": false}`` errors worth another try (Slack's own "try again later" answers).
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
#: A root that cannot be updated any more: post a new one.
GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class _Call:
    """One Web API call's result and, when it posted, the message's ``ts``."""

    __slots__ = ("result", "slack_error", "ts")

    def __init__(self, result: DeliveryResult, ts: str = "", slack_error: str = "") -> None:
        self.result = result
        self.ts = ts
        self.slack_error = slack_error


class SlackBotChannel:
    """Posts and updates per-incident threads in ``settings.channel`` with ``secrets.token``."""

    def __init__(self, config: ChannelConfig, deps: ChannelDeps) -> None:
        self._token = setting(config.secrets, "token")
        self._channel = setting(config.settings, "channel")
        self._api = (setting(config.settings, "api_url") or DEFAULT_API_URL).rstrip("/")
        self._deps = deps

    def send(self, message: Message) -> DeliveryResult:
        if not self._token or not self._channel:
            return DeliveryResult("failed", error="the Slack bot channel has no token or no channel")
        if not message.incidents:  # a test send: one plain message, no thread
            call = self._call("chat.postMessage", self._layout(message, ()))
            return call.result
        created: dict[str, str] = {}
        last: DeliveryResult | None = None
        for incident in message.incidents:
            outcome = self._one(message, incident, created)
            if outcome.outcome != "delivered":
                return DeliveryResult(
                    outcome.outcome,
                    status_code=outcome.status_code,
                    retry_after_s=outcome.retry_after_s,
                    error=outcome.error,
                    threads=created,
                )
            last = outcome
        return DeliveryResult("delivered", status_code=last.status_code if last else None, threads=created)

    def _one(self, message: Message, incident: IncidentSummary, created: dict[str, str]) -> DeliveryResult:
        """Post a root for ``incident``, or update its root and reply in its thread."""
        root = self._layout(message, (incident,))
        ts = message.threads.get(incident.id)
        if ts:
            update = self._call("chat.update", {**root, "ts": ts})
            if update.slack_error not in GONE_ERRORS:
                if update.result.outcome != "delivered":
                    return update.result
                return self._call("chat.postMessage", self._reply(message, incident, ts)).result
        posted = self._call("chat.postMessage", root)
        if posted.result.outcome == "delivered" and posted.ts:
            created[incident.id] = posted.ts
        return posted.result

    def _layout(self, message: Message, incidents: tuple[IncidentSummary, ...]) -> dict[str, Any]:
        text = (
            text_of(message) if len(incidents) != 1 else f"{title_of(message)}\n{incident_line(incidents[0])}"
        )
        return {
            "channel": self._channel,
            "text": clip(text, MAX_TEXT),
            "blocks": blocks_of(message, incidents),
            "unfurl_links": False,
        }

    def _reply(self, message: Message, incident: IncidentSummary, ts: str) -> dict[str, Any]:
        lines = [f"*{escape(status_line(message, incident))}*", escape(incident_line(incident))]
        if incident.responder:
            lines.append(f"Responder: {escape(incident.responder)}")
        return {"channel": self._channel, "thread_ts": ts, "text": clip("\n".join(lines), MAX_TEXT)}

    def _call(self, method: str, payload: dict[str, Any]) -> _Call:
        headers = {
            "authorization": f"Bearer {self._token}",
            "content-type": "application/json; charset=utf-8",
        }
        answer = post(self._deps, f"{self._api}/{method}", payload=payload, headers=headers)
        body = answer.json()
        if not isinstance(body, dict) or "ok" not in body:
            if answer.result.outcome == "delivered":  # a 2xx that is not the Web API's answer
                error = f"HTTP {answer.status_code} from {answer.host}: not a Slack API answer"
                return _Call(answer.refine("retry", error))
            return _Call(answer.result)
        if body.get("ok") is True:
            ts = body.get("ts")
            return _Call(answer.refine("delivered", None), ts=ts if isinstance(ts, str) else "")
        code = str(body.get("error") or "unknown_error")[:100]
        outcome: AttemptOutcome = (
            "retry" if code in RETRYABLE_ERRORS or answer.result.outcome == "retry" else "failed"
        )
        return _Call(answer.refine(outcome, f"Slack API {method}: {code}"), slack_error=code)
