"""A Slack stand-in: incoming webhooks and the two Web API methods the bot channel calls.

    with SlackStandIn(token="xoxb-test", channels=("C0123456789",)) as slack:
        SlackChannel(... secrets={"url": slack.webhook_url} ...)
        SlackBotChannel(... settings={"channel": "C0123456789", "api_url": slack.api_url},
                        secrets={"token": "xoxb-test"} ...)
        slack.wait_for(1)
        root = slack.roots()[0]; slack.replies(root.ts); slack.api_error_next(1, "invalid_auth")

* ``POST /services/T000/B000/<webhook_token>`` (``webhook_url``): the body must be a JSON object
  with ``text`` or ``blocks`` (valid Block Kit: the checks below); answers 200 ``ok`` as text, or
  Slack's plain-text errors: 400 ``invalid_payload``/``no_text``/``invalid_blocks``, 404
  ``no_service`` (another token). ``fail_next`` answers with Slack's reason for the status
  (429 ``rate_limited``, 500 ``rollup_error``…).
* ``POST /api/chat.postMessage`` and ``/api/chat.update`` (``api_url``): ``Authorization: Bearer
  <token>`` (missing: ``not_authed``, wrong: ``invalid_auth``), JSON bodies; answers are HTTP 200
  with ``{"ok": true, "channel", "ts", "message"}`` or ``{"ok": false, "error"}``
  (``channel_not_found``, ``no_text``, ``invalid_blocks``, ``msg_too_long``, ``thread_not_found``,
  ``message_not_found``). ``api_error_next(n, error, after=k)`` answers ``n`` API calls, after
  ``k`` normal ones, with ``{"ok": false, "error": error}``; ``ratelimited`` comes with HTTP 429
  and ``Retry-After`` as Slack sends it. ``fail_next`` on the API answers
  ``{"ok": false, "error": ...}`` with the status.

State: ``messages`` (every post, webhook and API, in order, as ``SlackMessage``; a
``chat.update`` changes the message in place and appends its body to ``updates``), ``roots()``,
``replies(ts)``, ``message(ts)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from support.standins.base import Received, Reply, StandIn

BLOCK_TYPES = frozenset({"header", "section", "context", "actions", "divider", "image", "rich_text", "input"})
_WEBHOOK_REASONS = {
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
    500: "rollup_error",
}


@dataclass
class SlackMessage:
    """A message Slack holds: ``via`` is ``webhook`` or ``api``; replies carry ``thread_ts``."""

    channel: str
    ts: str
    text: str
    blocks: list[Any] | None
    via: str
    thread_ts: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)


def blocks_problem(blocks: Any) -> str | None:
    """Why Slack would refuse ``blocks`` (``invalid_blocks``), or None."""
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "blocks must be a list of at most 50"
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            return f"block {i}: unknown type"
        kind = block["type"]
        text = block.get("text")
        if kind == "header" and not (
            isinstance(text, dict)
            and text.get("type") == "plain_text"
            and 0 < len(text.get("text", "")) <= 150
        ):
            return f"block {i}: a header needs plain_text of 1-150 characters"
        if kind == "section":
            fields = block.get("fields", [])
            if text is None and not fields:
                return f"block {i}: a section needs text or fields"
            if text is not None and not (isinstance(text, dict) and 0 < len(text.get("text", "")) <= 3000):
                return f"block {i}: section text must be 1-3000 characters"
            if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
                return f"block {i}: at most 10 fields of at most 2000 characters"
        if kind in ("context", "actions"):
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= (10 if kind == "context" else 25):
                return f"block {i}: {kind} elements missing or too many"
            for element in elements if kind == "actions" else ():
                label = element.get("text", {}).get("text", "")
                if element.get("type") == "button" and (
                    not 0 < len(label) <= 75 or len(element.get("url", "")) > 3000
                ):
                    return f"block {i}: a button needs a 1-75 character label and a URL up to 3000"
    return None


class SlackStandIn(StandIn):
    name = "Slack stand-in"

    def __init__(
        self,
        token: str = "xoxb-test-token",
        *,
        webhook_token: str = "hooktoken0123456789abcdef",
        channels: tuple[str, ...] = ("C0123456789",),
    ) -> None:
        super().__init__()
        self.token = token
        self.webhook_token = webhook_token
        self.channels = channels
        self.messages: list[SlackMessage] = []
        self._api_errors: deque[tuple[str, float | None] | None] = deque()
        self._clock = 0

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/T000/B000/{self.webhook_token}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def api_error_next(self, n: int, error: str, *, retry_after: float | None = None, after: int = 0) -> None:
        """The next ``n`` Web API calls (after ``after`` ones answered normally) answer
        ``{"ok": false, "error": error}`` and change nothing."""
        with self._lock:
            self._api_errors.extend(None for _ in range(after))
            self._api_errors.extend((error, retry_after) for _ in range(n))

    def roots(self, channel: str | None = None) -> list[SlackMessage]:
        with self._lock:
            return [m for m in self.messages if m.thread_ts is None and channel in (None, m.channel)]

    def replies(self, ts: str) -> list[SlackMessage]:
        with self._lock:
            return [m for m in self.messages if m.thread_ts == ts]

    def message(self, ts: str) -> SlackMessage | None:
        with self._lock:
            return next((m for m in self.messages if m.ts == ts), None)

    # -- the vendor --------------------------------------------------------------------------------

    def clear(self) -> None:
        self.messages.clear()
        self._api_errors.clear()

    def failure_reply(self, request: Received, status: int, retry_after: float | str | None) -> Reply:
        if request.path.startswith("/api/"):
            error = (
                "ratelimited" if status == 429 else "internal_error" if status >= 500 else "invalid_request"
            )
            return Reply.json(status, {"ok": False, "error": error})
        return Reply.text(status, _WEBHOOK_REASONS.get(status, "invalid_payload"))

    def answer(self, request: Received) -> Reply:
        path = request.path.split("?", 1)[0]
        if path.startswith("/services/"):
            return self._webhook(request, path)
        if path in ("/api/chat.postMessage", "/api/chat.update"):
            return self._api(request, path.removeprefix("/api/"))
        return Reply.json(404, {"ok": False, "error": "unknown_method"})

    def _webhook(self, request: Received, path: str) -> Reply:
        if path != f"/services/T000/B000/{self.webhook_token}":
            return Reply.text(404, "no_service")
        body = request.json
        if not isinstance(body, dict):
            return Reply.text(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return Reply.text(400, "no_text")
        if "blocks" in body and blocks_problem(body["blocks"]) is not None:
            return Reply.text(400, "invalid_blocks")
        self.messages.append(
            SlackMessage("webhook", self._ts(), body.get("text", ""), body.get("blocks"), "webhook")
        )
        return Reply(200, b"ok", {"content-type": "text/html"})

    def _api(self, request: Received, method: str) -> Reply:
        def error(code: str) -> Reply:
            return Reply.json(200, {"ok": False, "error": code})

        scripted = self._api_errors.popleft() if self._api_errors else None
        if scripted is not None:
            code, retry_after = scripted
            if code == "ratelimited":
                wait = str(retry_after if retry_after is not None else 1)
                return Reply.json(429, {"ok": False, "error": code}, {"retry-after": wait})
            return error(code)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return error("not_authed")
        if auth[7:].strip() != self.token:
            return error("invalid_auth")
        body = request.json
        if not isinstance(body, dict):
            return error("invalid_json")
        channel = body.get("channel")
        if channel not in self.channels:
            return error("channel_not_found")
        text, blocks = body.get("text") or "", body.get("blocks")
        if not text and not blocks:
            return error("no_text")
        if blocks is not None and blocks_problem(blocks) is not None:
            return error("invalid_blocks")
        if len(text) > 40_000:
            return error("msg_too_long")
        if method == "chat.update":
            target = next((m for m in self.messages if m.ts == body.get("ts") and m.channel == channel), None)
            if target is None:
                return error("message_not_found")
            target.text, target.blocks = text, blocks
            target.updates.append(body)
            return Reply.json(200, {"ok": True, "channel": channel, "ts": target.ts, "text": text})
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and not any(
            m.ts == thread_ts and m.channel == channel and m.thread_ts is None for m in self.messages
        ):
            return error("thread_not_found")
        posted = SlackMessage(channel, self._ts(), text, blocks, "api", thread_ts)
        self.messages.append(posted)
        shown = {"type": "message", "text": text, "ts": posted.ts, "bot_id": "B0STANDIN"}
        if thread_ts is not None:
            shown["thread_ts"] = thread_ts
        return Reply.json(200, {"ok": True, "channel": channel, "ts": posted.ts, "message": shown})

    def _ts(self) -> str:
        self._clock += 1
        return f"1750000000.{self._clock:06d}"
