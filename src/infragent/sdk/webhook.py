"""Receiving signed commands from the responder: action allowlist and the ASGI webhook endpoint.

Why an allowlist with a regex per parameter: the responder (possibly driven by an LLM) decides
*which* action to run, but the app decides *what may be run at all*. A command naming an action
the app never registered, or carrying a parameter that does not fully match its registered
pattern (``"nginx; rm -rf /"``), is refused before any handler code runs — even when it is
correctly signed, because a signature only proves who sent it, not that it is safe.

Order of checks, each failing closed: body size (413) → Standard Webhooks signature, timestamp
window and replay (401, with the verifier's ``code``) → JSON shape (400) → allowlist and parameter
patterns (422) → handler. The body is the shared ``wire.commands.Command`` and every answer a
``wire.commands.CommandResult``, the same structs the server and the agent use.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infragent import signing
from infragent.errors import SignatureError
from infragent.model import ActionSpec
from infragent.wire.commands import CommandResult, decode_command, encode_result

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/webhooks/agent"
#: Commands are a few hundred bytes; anything near this is not a command and is not buffered.
MAX_BODY_BYTES = 1024 * 1024

HandlerResult = str | dict[str, Any] | None
Handler = Callable[["Command"], HandlerResult | Awaitable[HandlerResult]]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Command:
    """One command from the responder, as handed to an action handler.

    Frozen, with a read-only ``params`` mapping and a tuple of event ids, so a handler cannot
    alter what was validated against the allowlist before acting on it.
    """

    command_id: str
    action: str
    target: str | None
    params: Mapping[str, str]
    event_ids: tuple[str, ...]
    reason: str
    issued_at: float


@dataclass(frozen=True, slots=True)
class Action:
    """A registered action: what the server is told (``spec``) and what runs (``handler``)."""

    spec: ActionSpec
    handler: Handler
    patterns: Mapping[str, re.Pattern[str]]


class ActionRegistry:
    """The app's allowlist of actions; thread-safe for reads once registration is done."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def add(
        self, name: str, handler: Handler, params: Mapping[str, str] | None = None, description: str = ""
    ) -> Action:
        """Register ``handler`` under ``name``; bad names or patterns fail here, not at run time."""
        if not name or not name.strip():
            raise ValueError("action name must be a non-empty string")
        if name in self._actions:
            raise ValueError(f"action {name!r} is already registered")
        patterns: dict[str, re.Pattern[str]] = {}
        for param, pattern in (params or {}).items():
            try:
                patterns[param] = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"action {name!r}: parameter {param!r} has a bad regex: {exc}") from exc
        spec = ActionSpec(name=name, params=dict(params or {}), description=description)
        action = Action(spec=spec, handler=handler, patterns=MappingProxyType(patterns))
        self._actions[name] = action
        return action

    def get(self, name: str) -> Action | None:
        return self._actions.get(name)

    def specs(self) -> list[ActionSpec]:
        return [action.spec for action in self._actions.values()]

    def check(self, action_name: str, params: Mapping[str, str]) -> tuple[Action | None, str | None]:
        """Return the action, or the reason the command must be rejected (never both).

        Every parameter sent must be registered and *fully* match its pattern; parameters the
        handler expects but the command omits are the handler's business (it fails loudly).
        """
        action = self._actions.get(action_name)
        if action is None:
            return None, f"action {action_name!r} is not allowed by this client"
        for param, value in params.items():
            pattern = action.patterns.get(param)
            if pattern is None:
                return None, f"parameter {param!r} is not allowed for action {action_name!r}"
            if pattern.fullmatch(value) is None:
                return None, f"parameter {param!r} does not match {pattern.pattern!r}"
        return action, None


def _output(result: object) -> str:
    """Render a handler's return value as the reply's ``output`` string (the wire wants a str)."""
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    if isinstance(result, Mapping):
        return json.dumps(result, sort_keys=True, default=str)
    return str(result)


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it exceeds ``limit``; stops reading as soon as it does."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_endpoint(
    secret: str | list[str],
    registry: ActionRegistry,
    *,
    seen: signing.SeenIds | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
) -> Endpoint:
    """A Starlette/FastAPI request handler for ``POST`` commands, to add to the user's own app.

    ``seen`` defaults to a fresh in-memory replay cache; pass one shared store when several
    processes serve the same webhook URL, or a replay to another worker would be accepted.
    """
    replay_cache: signing.SeenIds = signing.MemorySeenIds() if seen is None else seen

    async def endpoint(request: Request) -> Response:
        body = await read_capped(request, max_body_bytes)
        if body is None:
            logger.warning("webhook body over %d bytes refused", max_body_bytes)
            return _answer(CommandResult(error=f"body larger than {max_body_bytes} bytes"), 413)
        try:
            verified = signing.verify(secret, request.headers, body, now=clock(), seen=replay_cache)
        except SignatureError as exc:
            logger.warning("webhook refused (%s): %s", exc.code, exc.reason)
            return _answer(CommandResult(error=exc.reason, code=exc.code), 401)
        try:
            wire = decode_command(body)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            logger.warning("webhook %s: malformed command: %s", verified.msg_id, exc)
            return _answer(CommandResult(error=f"malformed command: {exc}"), 400)
        if wire.command_id != verified.msg_id:
            # The replay cache is keyed on webhook-id; a different command_id would dodge it.
            logger.warning("webhook %s: command_id %r differs", verified.msg_id, wire.command_id)
            return _answer(CommandResult(error="command_id does not match webhook-id"), 400)
        action, reason = registry.check(wire.action, wire.params)
        if action is None:
            logger.warning("command %s rejected: %s", wire.command_id, reason)
            return _answer(CommandResult(status="rejected", output=reason), 422)
        command = Command(
            command_id=wire.command_id,
            action=wire.action,
            target=wire.target,
            params=MappingProxyType(dict(wire.params)),
            event_ids=tuple(wire.event_ids),
            reason=wire.reason,
            issued_at=wire.issued_at,
        )
        return await _run(action, command)

    return endpoint


async def _run(action: Action, command: Command) -> Response:
    """Run the handler (sync ones in a worker thread, so the event loop stays responsive)."""
    logger.info("command %s: running action %s", command.command_id, command.action)
    try:
        outcome: object
        if inspect.iscoroutinefunction(action.handler):
            outcome = action.handler(command)
        else:
            outcome = await run_in_threadpool(action.handler, command)
        # Also covers sync callables returning an awaitable (a partial of a coroutine function).
        result: object = await outcome if inspect.isawaitable(outcome) else outcome
    except Exception as exc:  # a handler is user code: report its failure, keep serving
        logger.exception("command %s: action %s failed", command.command_id, command.action)
        return _answer(CommandResult(status="error", output=str(exc)))
    logger.info("command %s: action %s ok", command.command_id, command.action)
    return _answer(CommandResult(status="ok", output=_output(result)))


def _answer(result: CommandResult, status_code: int = 200) -> Response:
    return Response(encode_result(result), status_code, media_type="application/json")


def create_webhook_app(
    secret: str | list[str],
    registry: ActionRegistry,
    *,
    path: str = DEFAULT_PATH,
    seen: signing.SeenIds | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """A standalone ASGI app serving ``POST {path}``, e.g. for ``uvicorn`` next to the main app."""
    endpoint = webhook_endpoint(secret, registry, seen=seen, max_body_bytes=max_body_bytes, clock=clock)
    return Starlette(routes=[Route(path, endpoint, methods=["POST"])])
