"""Push delivery: a command as a Standard Webhooks-signed POST to the client's webhook URL.

Why the same ``webhook-id`` on every retry: it is the command id, the receiver's idempotency key.
Each attempt is signed afresh (new timestamp) so a retry after a long back-off is not stale.
Only transport failures and 5xx are retried; a 4xx answer is final.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import httpx

from infragent import signing
from infragent.model import ActionResult
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
    ) -> None:
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._retries = retries
        self._base = backoff_base_s
        self._cap = backoff_cap_s
        self._sleep = sleep
        self._rng = rng or random.Random()

    def close(self) -> None:
        self._client.close()

    def send(self, url: str, secret: str, command: Command) -> ActionResult:
        command_id = command.command_id
        body = encode_command(command)
        last = ActionResult(status="unreachable", output="not attempted", attempts=0)
        for attempt in range(1, self._retries + 2):
            headers = signing.signed_headers(secret, command_id, body)
            headers["content-type"] = "application/json"
            try:
                response = self._client.post(url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                last = ActionResult(status="timeout", output=f"timed out: {exc}", attempts=attempt)
            except httpx.TransportError as exc:
                last = ActionResult(
                    status="unreachable", output=f"{type(exc).__name__}: {exc}", attempts=attempt
                )
            else:
                result = self._interpret(response, attempt)
                if response.status_code < 500:
                    return result
                last = result
            if attempt <= self._retries:
                delay = self._rng.uniform(0, min(self._cap, self._base * 2 ** (attempt - 1)))
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
        if code >= 500:
            return ActionResult(status="error", output=output, http_status=code, attempts=attempt)
        if code == 401:
            reason = data.get("code") if isinstance(data, dict) else None
            return ActionResult(
                status="rejected",
                output=f"receiver refused the signature: {output}",
                http_status=code,
                attempts=attempt,
                code=reason if isinstance(reason, str) else None,
            )
        if code >= 400:
            return ActionResult(status="rejected", output=output, http_status=code, attempts=attempt)
        status = data.get("status") if isinstance(data, dict) else None
        if status == "ok":
            return ActionResult(status="ok", output=output, http_status=code, attempts=attempt)
        if status == "rejected":
            return ActionResult(status="rejected", output=output, http_status=code, attempts=attempt)
        return ActionResult(status="error", output=output, http_status=code, attempts=attempt)
