"""Receiving signed commands from the responder: action allowlist and the ASGI webhook endpoint.

Why an allowlist with a regex per parameter: the responder (possibly driven by an LLM) decides
*which* action to run, but the app decides *what may be run at all*. A command naming an action
the app never registered, or carrying a parameter that does not fully match its registered
pattern (``"nginx; rm -rf /"``), is refused before any handler code runs — even when it is
correctly signed, because a signature only proves who sent it, not that it is safe.

Order of checks, each failing closed: body size (413) → Standard Webhooks signature, timestamp
window and replay of this exact message (401, with the verifier's ``code``) → JSON shape (400) →
ledger: a command id seen before gets its stored answer with ``"duplicate": true`` and runs nothing
(``sdk/ledger.py`` says why replay and "once" are two questions) → allowlist and parameter patterns
(422) → handler, within ``handler_timeout_s``. The body is the shared ``wire.commands.Command`` and
every answer a ``wire.commands.CommandResult``, the same structs the server and the agent use.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infragent import signing
from infragent.errors import SignatureError, StoreError
from infragent.model import ActionSpec
from infragent.sdk.ledger import MEMORY, CommandLedger, Entry, FinalState, message_key
from infragent.wire.commands import (
    CommandResult,
    decode_command,
    encode_result,
    result_fields,
    result_from_fields,
)

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/webhooks/agent"
#: Commands are a few hundred bytes; anything near this is not a command and is not buffered.
MAX_BODY_BYTES = 1024 * 1024
#: A handler's time limit: below the server's dispatcher timeout (``webhook_timeout_s``, 10 s), so
#: the dispatcher always gets the real outcome instead of timing out and re-sending.
HANDLER_TIMEOUT_S = 8.0
#: How long past the handler timeout a ``running`` ledger entry is still taken to be alive.
STALE_MARGIN_S = 30.0

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
    ledger: CommandLedger | None = None,
    handler_timeout_s: float = HANDLER_TIMEOUT_S,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
) -> Endpoint:
    """A Starlette/FastAPI request handler for ``POST`` commands, to add to the user's own app.

    ``ledger`` defaults to an in-memory one (forgotten on restart); ``Client.webhook_endpoint``
    passes the persisted ledger of the app's data directory. Processes serving the same webhook URL
    on one host share the ledger by opening the same file.
    """
    if handler_timeout_s <= 0:
        raise ValueError(f"handler_timeout_s must be > 0, got {handler_timeout_s}")
    store = CommandLedger(MEMORY) if ledger is None else ledger
    # A running entry older than this belonged to a process that stopped: handlers end by the timeout.
    stale_after_s = handler_timeout_s + STALE_MARGIN_S

    async def endpoint(request: Request) -> Response:
        body = await read_capped(request, max_body_bytes)
        if body is None:
            logger.warning("webhook body over %d bytes refused", max_body_bytes)
            return _answer(CommandResult(error=f"body larger than {max_body_bytes} bytes"), 413)
        now = clock()
        headers = dict(request.headers)
        try:
            verified = await run_in_threadpool(_verify, secret, headers, body, now, store)
        except SignatureError as exc:
            logger.warning("webhook refused (%s): %s", exc.code, exc.reason)
            return _answer(CommandResult(error=exc.reason, code=exc.code), 401)
        except StoreError as exc:
            return _unavailable(exc)
        try:
            wire = decode_command(body)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            logger.warning("webhook %s: malformed command: %s", verified.msg_id, exc)
            return _answer(CommandResult(error=f"malformed command: {exc}"), 400)
        if wire.command_id != verified.msg_id:
            # The ledger is keyed on webhook-id; a different command_id would dodge it.
            logger.warning("webhook %s: command_id %r differs", verified.msg_id, wire.command_id)
            return _answer(CommandResult(error="command_id does not match webhook-id"), 400)
        cid = wire.command_id
        try:
            # Fail closed: what cannot be recorded as started must not start.
            known = await run_in_threadpool(
                lambda: store.begin(cid, wire.action, now, stale_after_s=stale_after_s)
            )
        except StoreError as exc:
            return _unavailable(exc)
        if known is not None:
            return _duplicate(known)
        action, reason = registry.check(wire.action, wire.params)
        if action is None:
            logger.warning("command %s rejected: %s", cid, reason)
            answer, status = CommandResult(status="rejected", output=reason), 422
        else:
            command = Command(
                command_id=cid,
                action=wire.action,
                target=wire.target,
                params=MappingProxyType(dict(wire.params)),
                event_ids=tuple(wire.event_ids),
                reason=wire.reason,
                issued_at=wire.issued_at,
            )
            answer, status = await _run(action, command, handler_timeout_s), 200
        state: FinalState = "rejected" if action is None else "done"
        try:
            await run_in_threadpool(
                lambda: store.finish(cid, result_fields(answer), clock(), state=state, http_status=status)
            )
        except StoreError as exc:
            # The entry stays "running" and is answered as interrupted later: never run twice.
            logger.error("command %s: result not stored: %s", cid, exc)
        return _answer(answer, status)

    return endpoint


def _verify(
    secret: str | list[str], headers: Mapping[str, str], body: bytes, now: float, ledger: CommandLedger
) -> signing.VerifiedMessage:
    """Signature, window, then replay of this exact message (webhook-id *and* webhook-timestamp)."""
    timestamp = headers.get(signing.HEADER_TIMESTAMP, "")
    return signing.verify(secret, headers, body, now=now, seen=_MessageKeys(ledger, timestamp))


class _MessageKeys:
    """The ledger as ``signing.SeenIds``, keyed on the whole signed message, not the id alone."""

    def __init__(self, ledger: CommandLedger, timestamp: str) -> None:
        self._ledger = ledger
        self._timestamp = timestamp

    def add_if_new(self, msg_id: str, now: float) -> bool:
        return self._ledger.add_if_new(message_key(msg_id, self._timestamp), now)


def _duplicate(entry: Entry) -> Response:
    """A command id seen before: its stored answer, marked ``duplicate``; the handler does not run."""
    logger.info("command %s already %s; answering with the stored result", entry.command_id, entry.state)
    if entry.result is None:
        return _answer(CommandResult(status="running", duplicate=True), 202)
    stored = msgspec.structs.replace(result_from_fields(entry.result), duplicate=True)
    return _answer(stored, entry.http_status or 200)


def _unavailable(exc: StoreError) -> Response:
    logger.error("webhook: command ledger unavailable: %s", exc)
    return _answer(CommandResult(status="error", error=f"command ledger unavailable: {exc}"), 503)


async def _run(action: Action, command: Command, timeout_s: float) -> CommandResult:
    """Run the handler within ``timeout_s`` (sync ones in a worker thread, so the event loop stays free).

    Why a timeout shorter than the dispatcher's: an answer the dispatcher stops waiting for is lost,
    and the command's real outcome with it. A sync handler cannot be killed: on timeout the answer
    is ``timeout`` and the thread is left to finish (logged when it does).
    """
    logger.info("command %s: running action %s", command.command_id, command.action)
    late = threading.Event()

    def call_sync() -> object:
        started = time.monotonic()
        try:
            return action.handler(command)
        finally:
            if late.is_set():
                logger.warning(
                    "command %s: action %s finished %.1f s after it started, past its %g s timeout",
                    command.command_id,
                    command.action,
                    time.monotonic() - started,
                    timeout_s,
                )

    try:
        with anyio.fail_after(timeout_s):
            outcome: object
            if inspect.iscoroutinefunction(action.handler):
                outcome = action.handler(command)
            else:
                outcome = await anyio.to_thread.run_sync(call_sync, abandon_on_cancel=True)
            # Also covers sync callables returning an awaitable (a partial of a coroutine function).
            result: object = await outcome if inspect.isawaitable(outcome) else outcome
    except TimeoutError:
        late.set()
        logger.error(
            "command %s: action %s timed out after %g s", command.command_id, command.action, timeout_s
        )
        output = f"action {command.action!r} did not finish within {timeout_s:g} s"
        return CommandResult(status="timeout", output=output)
    except Exception as exc:  # a handler is user code: report its failure, keep serving
        logger.exception("command %s: action %s failed", command.command_id, command.action)
        return CommandResult(status="error", output=str(exc))
    logger.info("command %s: action %s ok", command.command_id, command.action)
    return CommandResult(status="ok", output=_output(result))


def _answer(result: CommandResult, status_code: int = 200) -> Response:
    return Response(encode_result(result), status_code, media_type="application/json")


def create_webhook_app(
    secret: str | list[str],
    registry: ActionRegistry,
    *,
    path: str = DEFAULT_PATH,
    ledger: CommandLedger | None = None,
    handler_timeout_s: float = HANDLER_TIMEOUT_S,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """A standalone ASGI app serving ``POST {path}``, e.g. for ``uvicorn`` next to the main app."""
    endpoint = webhook_endpoint(
        secret,
        registry,
        ledger=ledger,
        handler_timeout_s=handler_timeout_s,
        max_body_bytes=max_body_bytes,
        clock=clock,
    )
    return Starlette(routes=[Route(path, endpoint, methods=["POST"])])
