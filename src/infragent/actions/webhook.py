"""Push delivery: a ``wire.commands.Command`` as a Standard Webhooks-signed POST to the client's webhook URL.

Why the same ``webhook-id`` on every retry: it is the command id, the receiver's idempotency key.
Each attempt is signed afresh (new timestamp) so a retry after a long back-off is not stale.
What is retried, and how long to wait, is the shared policy of :mod:`infragent.backoff`: transport
failures, 408, 425, 429 and 5xx (but 501/505) are retried with full jitter, at least the receiver's
``Retry-After`` and at most ``backoff_cap_s``; any other answer is final.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from infragent import signing
from infragent.backoff import RetryPolicy, classify_failure, classify_status, parse_retry_after
from infragent.model import ActionResult, ResultStatus
from infragent.transport import transport_failure
from infragent.wire.commands import Command, encode_command

logger = logging.getLogger(__name__)
MAX_OUTPUT = 10_000


class WebhookDispatcher:
    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
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
        for attempt in range(1, attempts + 1):
            headers = signing.signed_headers(secret, command_id, body, now=self._clock())
            headers["content-type"] = "application/json"
            retry_after: float | None = None
            try:
                response = self._client.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.TimeoutException):
                    last = ActionResult(status="timeout", output=f"timed out: {exc}", attempts=attempt)
                else:
                    output = f"{type(exc).__name__}: {exc}"
                    last = ActionResult(status="unreachable", output=output, attempts=attempt)
                if classify_failure(transport_failure(exc)) == "final":
                    return last
            else:
                last = _interpret(response, attempt)
                if classify_status(response.status_code) != "retry":
                    return last
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            if attempt < attempts:
                delay = self._policy.delay_s(attempt - 1, self._rng, retry_after)
                logger.warning(
                    "command %s to %s failed (%s); retry in %.2fs", command_id, url, last.output, delay
                )
                self._sleep(delay)
        return last


def _interpret(response: httpx.Response, attempt: int) -> ActionResult:
    """The receiver's answer as an ``ActionResult``; any JSON shape (or none) is accepted.

    A receiver is any user's endpoint, so the body is read leniently: ``status``, ``output``
    (else ``error``) and ``code`` are taken when they are there with the right type, and a body
    that is not JSON leaves them unset.
    """
    try:
        data = response.json()
    except ValueError:
        data = None
    answer: dict[str, Any] = data if isinstance(data, dict) else {}
    text = answer.get("output") or answer.get("error") or response.text
    output = str(text)[:MAX_OUTPUT]
    code = answer.get("code") if isinstance(answer.get("code"), str) else None
    http = response.status_code

    def result(status: ResultStatus, output: str = output) -> ActionResult:
        return ActionResult(status=status, output=output, http_status=http, attempts=attempt, code=code)

    if http >= 500 or classify_status(http) == "retry":  # the receiver failed to take it
        return result("error")
    if http == 401:
        return result("rejected", f"receiver refused the signature: {output}")
    if http >= 400:
        return result("rejected")
    status = answer.get("status")
    if status == "ok":
        return result("ok")
    if status == "rejected":
        return result("rejected")
    return result("error")
