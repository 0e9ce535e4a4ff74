"""Push delivery: a command as a Standard Webhooks-signed POST to the client's webhook URL.

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
import orjson

from infragent import signing
from infragent.backoff import RetryPolicy, classify_failure, classify_status, parse_retry_after
from infragent.model import ActionResult
from infragent.sdk.retry import transport_failure

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

    def send(self, url: str, secret: str, command_id: str, payload: dict[str, Any]) -> ActionResult:
        body = orjson.dumps(payload)
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
                last = self._interpret(response, attempt)
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

    @staticmethod
    def _interpret(response: httpx.Response, attempt: int) -> ActionResult:
        try:
            data = response.json()
        except ValueError:
            data = {}
        output = (
            data.get("output") or data.get("error") or response.text
            if isinstance(data, dict)
            else response.text
        )
        output = str(output)[:MAX_OUTPUT]
        code = response.status_code
        if code >= 500 or classify_status(code) == "retry":  # the receiver failed to take it
            return ActionResult(status="error", output=output, http_status=code, attempts=attempt)
        if code == 401:
            return ActionResult(
                status="rejected",
                output=f"receiver refused the signature: {output}",
                http_status=code,
                attempts=attempt,
            )
        if code >= 400:
            return ActionResult(status="rejected", output=output, http_status=code, attempts=attempt)
        status = data.get("status") if isinstance(data, dict) else None
        if status == "ok":
            return ActionResult(status="ok", output=output, http_status=code, attempts=attempt)
        if status == "rejected":
            return ActionResult(status="rejected", output=output, http_status=code, attempts=attempt)
        return ActionResult(status="error", output=output, http_status=code, attempts=attempt)
