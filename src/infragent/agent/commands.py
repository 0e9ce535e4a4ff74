"""The agent's command pipeline: verify, deduplicate, check the local allowlist, run once, record.

Why one ``CommandProcessor`` for push and pull: the webhook endpoint (``push.py``) and the pull loop
hand it the same raw headers and bytes, so both modes get the same checks in the same order, each
failing closed before anything runs:

    size cap (413) → Standard Webhooks signature, ±300 s timestamp, replay (401, with the
    verifier's typed ``code``) → JSON shape (``wire.commands.Command``, 400) → command_id == webhook-id (400)
    → ledger: a known id returns its stored result, never runs again (``"duplicate": true``)
    → expiry (422) → allowlist render (422) → execute → result stored → 200

What "replay" means here: the replay cache is keyed on the *signed message* (``webhook-id`` and
``webhook-timestamp``), not on the id alone. A byte-identical copy of a message already received is
refused (401) even across restarts. A fresh signature over the same id — what the dispatcher sends
when it retries after a lost answer — can only come from a holder of the secret; it is let through
to the ledger, which answers with the stored result instead of running the command again. Keying on
the id alone would answer such a retry with 401 and make the server record a command that ran as
"rejected".

Every refusal is logged and kept in a bounded in-memory list with counts by reason, because a
message with a forged signature cannot be written to the ledger under an id it does not own.

``process_pulled`` (the pull loop's adapter) lives here and not in ``push.py``, and the body cap is
a constant of this module rather than an import from the SDK: an agent in pull mode loads neither
Starlette nor httpx, which the SDK's receiver and client need.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from infragent import signing
from infragent.agent.allowlist import Allowlist, Invocation, RejectedError
from infragent.agent.executor import ExecResult
from infragent.agent.ledger import LazyLedger, Ledger, LedgerError
from infragent.errors import ConfigError, SignatureError
from infragent.wire.commands import (
    Command,
    CommandResult,
    decode_command,
    result_fields,
    result_from_fields,
)

logger = logging.getLogger(__name__)

#: Recent refusals kept for the agent's status report; counts by reason are kept forever.
MAX_REFUSALS = 256
#: Largest signed command accepted, the same cap as the SDK receiver's (``sdk.webhook.MAX_BODY_BYTES``;
#: a unit test keeps the two equal).
MAX_BODY_BYTES = 1024 * 1024
#: The fields of the server's result report (``server/api/commands.py`` ``ResultIn``).
REPORT_FIELDS = ("status", "output", "exit_code", "duration_ms", "duplicate")

Reply = tuple[int, dict[str, Any]]


class CommandRunner(Protocol):
    """What runs a rendered action (``executor.Executor``); outcomes are values, not exceptions."""

    def run(self, call: Invocation) -> ExecResult: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request. ``command_id`` is as *claimed*: unverified for signature refusals."""

    at: float
    reason: str
    detail: str
    command_id: str | None = None
    action: str | None = None


class _MessageKeys:
    """Adapts the ledger's seen-id store to key on ``{webhook-id}.{webhook-timestamp}``."""

    def __init__(self, seen: signing.SeenIds, timestamp: str) -> None:
        self._seen = seen
        self._timestamp = timestamp

    def add_if_new(self, msg_id: str, now: float) -> bool:
        return self._seen.add_if_new(f"{msg_id}.{self._timestamp}", now)


class CommandProcessor:
    """Turns one signed command (headers + raw body) into ``(http_status, result)``. Thread-safe."""

    def __init__(
        self,
        secrets: str | Sequence[str],
        allowlist: Allowlist,
        ledger: Ledger | LazyLedger,
        executor: CommandRunner,
        *,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_refusals: int = MAX_REFUSALS,
    ) -> None:
        self._secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        if not self._secrets:
            raise ConfigError("agent.command_secret", "at least one webhook secret is required")
        for secret in self._secrets:
            try:
                signing.sign(secret, "probe", 0, b"")
            except SignatureError as exc:
                raise ConfigError("agent.command_secret", exc.reason) from exc
        self._allowlist = allowlist
        self._ledger = ledger
        self._executor = executor
        self._clock = clock
        self.max_body_bytes = max_body_bytes
        self._refusals: collections.deque[Refusal] = collections.deque(maxlen=max_refusals)
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    # -- what the agent reports about refusals ----------------------------------------------

    def refusals(self) -> list[Refusal]:
        """The most recent refusals, oldest first."""
        with self._lock:
            return list(self._refusals)

    def refusal_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    # -- the pipeline ------------------------------------------------------------------------

    def refuse_oversize(self, headers: Mapping[str, str]) -> Reply:
        """For transports that stop reading at the cap (push): record and answer 413."""
        claimed = _header(headers, signing.HEADER_ID)
        detail = f"body larger than {self.max_body_bytes} bytes"
        return self._refuse(413, "body_too_large", detail, claimed)

    def handle(self, headers: Mapping[str, str], body: bytes) -> Reply:
        now = self._clock()
        if len(body) > self.max_body_bytes:
            return self.refuse_oversize(headers)
        timestamp = _header(headers, signing.HEADER_TIMESTAMP) or ""
        try:
            verified = signing.verify(
                self._secrets, headers, body, now=now, seen=_MessageKeys(self._ledger, timestamp)
            )
        except SignatureError as exc:
            claimed = _header(headers, signing.HEADER_ID)
            return self._refuse(401, exc.code, exc.reason, claimed, code=exc.code)
        except LedgerError as exc:
            detail = f"agent ledger unavailable: {exc}"
            return self._refuse(
                503, "ledger_unavailable", detail, _header(headers, signing.HEADER_ID), status="error"
            )
        try:
            command = decode_command(body)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            return self._refuse(400, "malformed", f"malformed command: {exc}", verified.msg_id)
        if command.command_id != verified.msg_id:
            detail = f"command_id {command.command_id!r} does not match webhook-id"
            return self._refuse(400, "id_mismatch", detail, verified.msg_id, command.action)
        return self._run_once(command, now)

    def _run_once(self, command: Command, now: float) -> Reply:
        cid = command.command_id
        try:
            existing = self._ledger.begin(cid, now, command.action)
        except LedgerError as exc:
            # Fail closed: what cannot be recorded as started must not start.
            detail = f"agent ledger unavailable: {exc}"
            return self._refuse(503, "ledger_unavailable", detail, cid, command.action, status="error")
        if existing is not None:
            logger.info("command %s already %s; returning the stored result", cid, existing.state)
            if existing.result is None:
                return 202, result_fields(CommandResult(command_id=cid, status="running", duplicate=True))
            stored = msgspec.structs.replace(
                result_from_fields(existing.result), command_id=cid, duplicate=True
            )
            return existing.http_status or 200, result_fields(stored)
        if command.expires_at is not None and now > command.expires_at:
            return self._reject(command, now, "expired", f"command expired at {command.expires_at:.0f}")
        if command.issued_at < now - self._ledger.keep_results_s:
            # Older than the ledger remembers: it could be a re-run of a pruned id.
            return self._reject(command, now, "too_old", "command was issued before the ledger's memory")
        try:
            call = self._allowlist.render(command.action, command.params)
        except RejectedError as exc:
            return self._reject(command, now, "not_allowed", exc.reason)
        logger.info("command %s: running %s (%s)", cid, command.action, command.reason)
        try:
            outcome = self._executor.run(call)
        except Exception as exc:  # the executor's boundary: record the failure, keep serving
            logger.exception("command %s: action %s failed inside the agent", cid, command.action)
            outcome = ExecResult("error", None, f"agent error: {type(exc).__name__}: {exc}", 0)
        result = result_fields(
            CommandResult(
                command_id=cid,
                status=outcome.status,
                output=outcome.output,
                exit_code=outcome.exit_code,
                duration_ms=outcome.duration_ms,
                truncated=outcome.truncated,
            )
        )
        logger.info("command %s: %s %s in %d ms", cid, command.action, outcome.status, outcome.duration_ms)
        try:
            self._ledger.finish(cid, result, self._clock())
        except LedgerError as exc:
            # The entry stays "running" and becomes "interrupted" on restart: never run twice.
            logger.error("command %s ran but its result could not be stored: %s", cid, exc)
            return 500, result
        return 200, result

    def _reject(self, command: Command, now: float, reason: str, detail: str) -> Reply:
        """Refusal of a verified command: recorded in the ledger too, so a re-send gets the same answer."""
        cid = command.command_id
        status, result = self._refuse(422, reason, detail, cid, command.action, run_fields=True)
        try:
            self._ledger.finish(command.command_id, result, now, state="rejected", http_status=status)
        except LedgerError as exc:
            logger.error("command %s: rejection not stored: %s", command.command_id, exc)
        return status, result

    def _refuse(
        self,
        http_status: int,
        reason: str,
        detail: str,
        command_id: str | None,
        action: str | None = None,
        *,
        status: Literal["rejected", "error"] = "rejected",
        code: str | None = None,
        run_fields: bool = False,
    ) -> Reply:
        """Record a refusal and build its answer; ``run_fields`` adds the empty run fields that a
        ledger-stored rejection carries (``exit_code`` null, ``duration_ms`` 0, not truncated)."""
        logger.warning(
            "command %s refused (%s): %s", command_id or "<no id>", reason, detail, extra={"reason": reason}
        )
        with self._lock:
            self._refusals.append(Refusal(self._clock(), reason, detail, command_id, action))
            self._counts[reason] += 1
        # For signature refusals command_id is only the claimed id; echoing it to its sender is
        # harmless, and the pull loop needs it to report the refusal against the right command.
        answer = CommandResult(status=status, reason=reason, output=detail, code=code, command_id=command_id)
        if run_fields:
            answer = msgspec.structs.replace(answer, exit_code=None, duration_ms=0, truncated=False)
        return http_status, result_fields(answer)


def process_pulled(processor: CommandProcessor, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Handle one command fetched by the pull loop; return what to report back to the server.

    ``headers`` are the Standard Webhooks headers the server attached to the command and ``body``
    its raw bytes, exactly as signed: re-encoding the JSON would break the signature.

    Returns ``{"command_id", "http_status", "result", "report"}``: ``result`` is what push mode
    would answer; ``report`` is the body for ``POST /api/v1/commands/{command_id}/result`` (only
    the server's ``ResultIn`` fields), or None when there is nothing to report yet (the id is still
    running in this agent; that run reports when it ends). Refusals are reported too, as
    ``rejected``, so the server does not wait forever for a command the agent will never run.
    """
    status, result = processor.handle(headers, body)
    command_id = result.get("command_id")
    report = None
    if result["status"] != "running":
        report = {key: result[key] for key in REPORT_FIELDS if key in result}
    return {"command_id": command_id, "http_status": status, "result": result, "report": report}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
