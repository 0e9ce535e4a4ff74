"""Push delivery: a ``wire.commands.Command`` as a Standard Webhooks-signed POST to the client's webhook URL.

Why the same ``webhook-id`` on every retry: it is the command id, the receiver's idempotency key.
Each attempt is signed afresh (new timestamp) so a retry after a long back-off is not stale.
What is retried, and how long to wait, is the shared policy of :mod:`infragent.backoff`: transport
failures, 408, 425, 429 and 5xx (but 501/505) are retried with full jitter, at least the receiver's
``Retry-After`` and at most ``backoff_cap_s``; any other answer is final.

Why the URL is guarded and the answer is parsed, never copied: the webhook URL is the tenant's
choice and what is stored from the answer can be read back (``GET /api/v1/events/{id}``), which
would make the server a proxy into its own network. So every connection goes through the outbound
policy (``outbound.transport``: checked after resolution, connected to the checked address, no
redirect followed) and a refusal is an ``ActionResult`` with ``code="outbound_refused"``, never a
connection; and only the receiver's documented result (``status``, ``output`` or ``error``,
``code``), parsed from JSON, is kept. Any other body is recorded as ``bad answer (N bytes,
content-type X)``, so not one byte of an unexpected answer reaches the store or the audit.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable

import httpx
import msgspec

from infragent import signing
from infragent.backoff import RetryPolicy, classify_failure, classify_status, parse_retry_after
from infragent.model import ActionResult, ResultStatus
from infragent.outbound.policy import OutboundPolicy, OutboundRefusedError, Resolver
from infragent.outbound.transport import guarded_client, system_resolver
from infragent.redact import redact
from infragent.transport import transport_failure
from infragent.wire.commands import Command, CommandResult, encode_command

logger = logging.getLogger(__name__)
MAX_OUTPUT = 10_000
#: The most of an answer that is read; a longer one is a bad answer, unread past this.
MAX_ANSWER_BYTES = 64 * 1024
#: ``ActionResult.code`` of a command the outbound policy kept from being sent.
OUTBOUND_REFUSED = "outbound_refused"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,60}/[A-Za-z0-9!#$&^_.+-]{1,60}")
_result_decoder = msgspec.json.Decoder(CommandResult)


class WebhookDispatcher:
    """Sends commands to tenants' webhook URLs under ``policy`` (``webhook_allowed_networks``).

    ``resolve`` is the name lookup of every connection (injected by tests; the system's otherwise).
    """

    def __init__(
        self,
        *,
        policy: OutboundPolicy,
        resolve: Resolver = system_resolver,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = guarded_client(policy, timeout_s=timeout_s, resolve=resolve)
        self._policy = RetryPolicy(max_retries=retries, base_s=backoff_base_s, cap_s=backoff_cap_s)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock

    def close(self) -> None:
        self._client.close()

    def send(self, url: str, secret: str, command: Command) -> ActionResult:
        """POST ``command`` (retrying per the shared policy) and say what became of it.

        The body is the msgspec JSON of the ``Command``, signed under ``webhook-id`` =
        ``command.command_id``. ``ActionResult.code`` is the receiver's machine-readable ``code``
        when its answer carries one (``replay`` on a 401 means it already had this command).
        """
        body = encode_command(command)
        command_id = command.command_id
        last = ActionResult(status="unreachable", output="not attempted", attempts=0)
        attempts = self._policy.attempts
        signed_at = -1
        for attempt in range(1, attempts + 1):
            # Each attempt carries a later timestamp than the one before, even within one second: a
            # byte-identical retry (same id and timestamp) is what a receiver refuses as a replay, so a
            # retry after a lost answer must be a fresh message, which gets the stored result instead.
            signed_at = max(int(self._clock()), signed_at + 1)
            headers = signing.signed_headers(secret, command_id, body, now=signed_at)
            headers["content-type"] = "application/json"
            retry_after: float | None = None
            try:
                with self._client.stream("POST", url, content=body, headers=headers) as response:
                    answer = _read_capped(response)
            except OutboundRefusedError as exc:
                logger.warning("command %s not sent to %s: %s", command_id, redact(url), exc.reason)
                output = f"not sent: {exc.reason} (outbound policy)"
                return ActionResult(status="rejected", output=output, attempts=attempt, code=OUTBOUND_REFUSED)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException):
                    last = ActionResult(status="timeout", output=f"timed out: {exc}", attempts=attempt)
                else:
                    output = f"{type(exc).__name__}: {exc}"
                    last = ActionResult(status="unreachable", output=output, attempts=attempt)
                if classify_failure(transport_failure(exc)) == "final":
                    return last
            else:
                last = _interpret(response, answer, attempt)
                if classify_status(response.status_code) != "retry":
                    return last
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            if attempt < attempts:
                delay = self._policy.delay_s(attempt - 1, self._rng, retry_after)
                logger.warning(
                    "command %s to %s failed (%s); retry in %.2fs",
                    command_id,
                    redact(url),
                    redact(last.output),
                    delay,
                )
                self._sleep(delay)
        return last


def _read_capped(response: httpx.Response) -> bytes | None:
    """The answer's body, or None when it is longer than ``MAX_ANSWER_BYTES`` (not read past that)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _documented(body: bytes | None) -> CommandResult | None:
    """The receiver's result when the body is the documented JSON (``docs/sdk.md``), else None."""
    if not body:
        return None
    try:
        result = _result_decoder.decode(body)
    except msgspec.DecodeError:  # not JSON, or JSON of another shape
        return None
    if result.status is None and result.error is None:
        return None  # a JSON object, but none of ours: nothing in it is a result
    return result


def bad_answer(response: httpx.Response, body: bytes | None) -> str:
    """What is recorded of an answer that is not a documented result: its size and type, no content."""
    size = f"more than {MAX_ANSWER_BYTES}" if body is None else str(len(body))
    declared = response.headers.get("content-type", "").split(";", 1)[0].strip()
    media = declared.lower() if _MEDIA_TYPE.fullmatch(declared) else "none" if not declared else "invalid"
    return f"bad answer ({size} bytes, content-type {media})"


def _interpret(response: httpx.Response, body: bytes | None, attempt: int) -> ActionResult:
    """The receiver's answer as an ``ActionResult``: its documented fields only, or ``bad answer``.

    A receiver is any user's endpoint, and an SSRF target answers whatever it serves, so nothing of
    the body is kept unless it parses as the documented result; ``code`` is kept only when it looks
    like one (a short lower-case word, ``replay`` on a 401 meaning it already had this command).
    """
    answer = _documented(body)
    if answer is None:
        output, code = bad_answer(response, body), None
    else:
        output = (answer.output or answer.error or "")[:MAX_OUTPUT]
        code = answer.code if answer.code is not None and _CODE.fullmatch(answer.code) else None
    http = response.status_code

    def result(status: ResultStatus, output: str = output) -> ActionResult:
        return ActionResult(status=status, output=output, http_status=http, attempts=attempt, code=code)

    if http >= 500 or classify_status(http) == "retry":  # the receiver failed to take it
        return result("error")
    if 300 <= http < 400:
        return result("rejected", f"the receiver answered a redirect ({http}); redirects are not followed")
    if http == 401:
        return result("rejected", f"receiver refused the signature: {output}")
    if http >= 400:
        return result("rejected")
    if answer is None:
        return result("error")
    if answer.status == "ok":
        return result("ok")
    if answer.status in ("rejected", "timeout"):  # the handler overran the receiver's own timeout
        return result(answer.status)
    return result("error")
