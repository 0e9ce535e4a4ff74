"""The SDK client an app embeds: report events, declare actions, monitor health, receive commands.

Why synchronous httpx: most apps that embed us are not async, and the calls are rare (an event per
incident, a registration at start). Async apps call ``report_event`` from a worker thread
(``anyio.to_thread.run_sync``) or let the monitor thread do the reporting.

Why retries live here and not in the caller: losing the one event that says "the app is down"
because the server was briefly restarting is the failure this product exists to prevent. Only
transient failures are retried (the shared policy of :mod:`infragent.backoff`); a request the server
refuses (bad key, bad payload) fails at once with :class:`ReportError`, so a misconfiguration is loud.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import msgspec
from starlette.applications import Starlette

from infragent import signing
from infragent.backoff import RetryPolicy, classify_failure, classify_status, parse_retry_after
from infragent.errors import InfrAgentError
from infragent.model import Severity
from infragent.sdk.ledger import CommandLedger
from infragent.sdk.monitor import Monitor
from infragent.sdk.webhook import (
    DEFAULT_PATH,
    HANDLER_TIMEOUT_S,
    MAX_BODY_BYTES,
    ActionRegistry,
    Endpoint,
    Handler,
    create_webhook_app,
    webhook_endpoint,
)
from infragent.transport import transport_failure

logger = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/events"
AGENTS_PATH = "/api/v1/agents"
#: Standard Webhooks secrets carry at least 24 random bytes (see docs/sdk.md, Security).
MIN_SECRET_BYTES = 24
_SEVERITIES = ", ".join(s.value for s in Severity)

H = TypeVar("H", bound=Handler)


class ReportError(InfrAgentError):
    """The server did not accept an SDK request (an event or the action registration).

    ``status`` is the last HTTP status (None when no response came back at all), ``detail`` the
    server's ``detail`` or the transport error, ``attempts`` how many requests were made.
    ``retryable`` says whether the failure was transient (and retries ran out) or final.
    """

    def __init__(self, status: int | None, detail: str, *, attempts: int = 1) -> None:
        what = f"HTTP {status}" if status is not None else "no response"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{what}{tries}: {detail}")
        self.status = status
        self.detail = detail
        self.attempts = attempts

    @property
    def retryable(self) -> bool:
        return self.status is None or classify_status(self.status) == "retry"


def _detail(response: httpx.Response) -> str:
    """The server's ``{"detail": ...}`` as text, else the start of the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else msgspec.json.encode(detail).decode()
    return response.text[:500]


class Client:
    """Talks to one InfrAgent server on behalf of one service instance (``node_id``).

    ``handler_timeout_s`` bounds each action handler (default 8 s, below the server's 10 s
    ``webhook_timeout_s``). ``data_dir`` holds the command ledger (``sdk-commands.sqlite3``: results
    of commands run, replay keys), opened on the first ``webhook_app``/``webhook_endpoint``; the
    default is ``~/.local/state/infragent/sdk/<service>``.

    ``sleep``, ``rng`` and ``clock`` are injectable so retry behaviour is testable without
    waiting; leave them alone in production.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        webhook_secret: str | list[str] | None,
        *,
        service: str | None = None,
        node_id: str | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        handler_timeout_s: float = HANDLER_TIMEOUT_S,
        data_dir: Path | str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        if handler_timeout_s <= 0:
            raise ValueError(f"handler_timeout_s must be > 0, got {handler_timeout_s}")
        if webhook_secret is not None:
            for secret in [webhook_secret] if isinstance(webhook_secret, str) else webhook_secret:
                _check_secret(secret)
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.node_id = node_id or (_default_node_id(service) if service else None)
        self.policy = RetryPolicy(max_retries=max_retries, base_s=backoff_base_s, cap_s=backoff_cap_s)
        self.actions = ActionRegistry()
        self._webhook_secret = webhook_secret
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # jitter, not crypto
        self._clock = clock
        self.handler_timeout_s = handler_timeout_s
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir(service)
        self._ledger: CommandLedger | None = None
        self._ledger_lock = threading.Lock()
        self._monitors: list[Monitor] = []
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )

    # -- events --------------------------------------------------------------------------------

    def report_event(
        self,
        type: str,
        service: str | None = None,
        severity: str = "warning",
        data: Mapping[str, Any] | None = None,
        node_id: str | None = None,
    ) -> str:
        """Send one event and return the server's ``event_id``; retries transient failures.

        Raises ValueError for a bad argument (nothing is sent), ReportError when the server
        refuses the event or retries run out.
        """
        if not type:
            raise ValueError("event type is required")
        try:
            level = Severity(severity)
        except ValueError:
            raise ValueError(f"severity must be one of {_SEVERITIES}; got {severity!r}") from None
        service = service or self.service
        if not service:
            raise ValueError("service is required (pass it here or to Client(service=...))")
        payload = {
            "type": type,
            "service": service,
            "severity": level.value,
            "data": dict(data or {}),
            "node_id": node_id or self.node_id or _default_node_id(service),
        }
        body = msgspec.json.encode(payload)  # encode once: a TypeError surfaces before any request
        response = self._post(EVENTS_PATH, body)
        try:
            event_id = response.json()["event_id"]
        except (ValueError, KeyError, TypeError):
            event_id = None
        if not isinstance(event_id, str):
            raise ReportError(response.status_code, "response has no event_id")
        logger.debug("event %s of %s reported as %s", type, service, event_id)
        return event_id

    # -- actions -------------------------------------------------------------------------------

    def action(
        self, name: str, *, params: Mapping[str, str] | None = None, description: str = ""
    ) -> Callable[[H], H]:
        """Decorator registering ``fn(command) -> str | dict | None`` as the handler of ``name``.

        ``params`` maps each allowed parameter to a regex the value must *fully* match; a command
        with any other parameter is rejected. The description defaults to the docstring's first
        line: the responder shows it to the LLM when choosing an action.
        """

        def register(fn: H) -> H:
            doc = (fn.__doc__ or "").strip().splitlines()
            self.actions.add(name, fn, params, description or (doc[0] if doc else ""))
            return fn

        return register

    def register_actions(self) -> None:
        """Tell the server which actions this instance allows; the responder sends no others."""
        node_id = self.node_id
        if node_id is None:
            raise ValueError("register_actions needs Client(service=...) or Client(node_id=...)")
        actions = [
            {"name": s.name, "params": s.params, "description": s.description} for s in self.actions.specs()
        ]
        payload = {"node_id": node_id, "kind": "sdk", "command_mode": "push", "actions": actions}
        self._post(AGENTS_PATH, msgspec.json.encode(payload))
        logger.info("registered %d actions for %s", len(actions), node_id)

    # -- monitoring ----------------------------------------------------------------------------

    def monitor(
        self,
        health_url: str,
        *,
        service: str | None = None,
        interval_s: float = 30.0,
        timeout_s: float = 5.0,
        failures_before_down: int = 1,
        expect_status: Container[int] = range(200, 400),
    ) -> Monitor:
        """A :class:`Monitor` reporting through this client; call ``start()`` (or use ``with``).

        The client closes it on ``close()``.
        """
        service = service or self.service
        if not service:
            raise ValueError("service is required (pass it here or to Client(service=...))")
        monitor = Monitor(
            self,
            health_url,
            service=service,
            interval_s=interval_s,
            timeout_s=timeout_s,
            failures_before_down=failures_before_down,
            expect_status=expect_status,
            clock=self._clock,
        )
        self._monitors.append(monitor)
        return monitor

    # -- webhooks ------------------------------------------------------------------------------

    def webhook_endpoint(
        self, *, ledger: CommandLedger | None = None, max_body_bytes: int = MAX_BODY_BYTES
    ) -> Endpoint:
        """The command endpoint as a request handler, to add to an existing Starlette/FastAPI app."""
        return webhook_endpoint(
            self._require_secret(),
            self.actions,
            ledger=self.ledger() if ledger is None else ledger,
            handler_timeout_s=self.handler_timeout_s,
            max_body_bytes=max_body_bytes,
            clock=self._clock,
        )

    def webhook_app(
        self,
        path: str = DEFAULT_PATH,
        *,
        ledger: CommandLedger | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> Starlette:
        """A standalone ASGI app serving ``POST {path}``; endpoints of one client share its ledger."""
        return create_webhook_app(
            self._require_secret(),
            self.actions,
            path=path,
            ledger=self.ledger() if ledger is None else ledger,
            handler_timeout_s=self.handler_timeout_s,
            max_body_bytes=max_body_bytes,
            clock=self._clock,
        )

    def ledger(self) -> CommandLedger:
        """The persisted command ledger in ``data_dir``, opened once; raises StoreError if it cannot be."""
        with self._ledger_lock:
            if self._ledger is None:
                self._ledger = CommandLedger.in_directory(self.data_dir)
                logger.info("SDK command ledger at %s", self._ledger.path)
            return self._ledger

    def _require_secret(self) -> str | list[str]:
        if self._webhook_secret is None:
            raise ValueError("webhook_secret is required to receive commands")
        return self._webhook_secret

    # -- transport -----------------------------------------------------------------------------

    def _post(self, path: str, body: bytes) -> httpx.Response:
        """POST with the retry policy; return the 2xx response or raise ReportError."""
        attempts = self.policy.attempts
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = self._http.post(path, content=body)
            except httpx.TransportError as exc:
                if classify_failure(transport_failure(exc)) == "final":
                    raise  # e.g. an unsupported URL scheme: the same on every try
                if attempt == attempts:
                    raise ReportError(None, f"{type(exc).__name__}: {exc}", attempts=attempt) from exc
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return response
                status = response.status_code
                if classify_status(status) != "retry" or attempt == attempts:
                    raise ReportError(status, _detail(response), attempts=attempt)
                reason = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            delay = self.policy.delay_s(attempt - 1, self._rng, retry_after)
            logger.warning(
                "POST %s failed (%s); retry %d/%d in %.2f s", path, reason, attempt, attempts - 1, delay
            )
            self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop monitors created by this client and close its connections."""
        monitors, self._monitors = self._monitors, []
        for monitor in monitors:
            monitor.close()
        self._http.close()
        with self._ledger_lock:
            ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_secret(secret: str) -> None:
    """Fail at start-up, not on the first command, and refuse keys anyone could guess.

    An empty key still "verifies" (HMAC accepts it), which would let anyone sign commands.
    """
    try:
        key = base64.b64decode(secret.removeprefix(signing.SECRET_PREFIX), validate=True)
    except ValueError as exc:
        raise ValueError("webhook_secret is not whsec_ + base64") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"webhook_secret must hold at least {MIN_SECRET_BYTES} random bytes")


def default_data_dir(service: str | None) -> Path:
    """``~/.local/state/infragent/sdk/<service>``: per user and per service, outside the app's code.

    Not read from the environment: the SDK is a library, and the app passes ``data_dir`` from its own
    configuration when this default does not suit it (a read-only home, a container volume).
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", service or "default")
    return Path.home() / ".local" / "state" / "infragent" / "sdk" / name


def _default_node_id(service: str) -> str:
    return f"{socket.gethostname()}/{service}"
