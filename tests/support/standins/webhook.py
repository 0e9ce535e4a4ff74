"""A receiver of InfrAgent's signed notification webhooks, as a careful customer would write one.

``WebhookReceiver(secret)`` checks each POST with ``infragent.signing.verify`` (signature and
timestamp window), answers 401 ``{"error", "code"}`` to one that fails (``accept_unsigned=True``
answers 200 anyway, to see what an adapter sends), and 200 ``{"status": "ok"}`` otherwise; a
repeated ``webhook-id`` is answered 200 again without being counted twice, as an idempotent
receiver does. ``clock`` is the receiver's "now" for the timestamp window (tests that sign with a
fixed clock pass the same one).

    with WebhookReceiver(secret) as hook:
        channel = WebhookChannel(ChannelConfig(..., settings={"url": hook.hook_url},
                                               secrets={"secret": secret}), deps)
        hook.wait_for(1)
        assert hook.checks[0].verified and hook.unique_ids == [message.id]

``checks`` has one ``Check(received, verified, webhook_id, error)`` per request, ``received``'s order;
``unique_ids`` lists the verified ``webhook-id``s, each once, in first-arrival order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from infragent import signing
from infragent.errors import SignatureError
from support.standins.base import Received, Reply, StandIn


@dataclass(frozen=True, slots=True)
class Check:
    """What the receiver made of one request."""

    received: Received
    verified: bool
    webhook_id: str | None
    #: the verification error's code (``bad_signature``, ``stale``, ``missing_headers``…), or None
    error: str | None


class WebhookReceiver(StandIn):
    name = "webhook receiver"

    def __init__(
        self,
        secret: str | list[str],
        *,
        accept_unsigned: bool = False,
        path: str = "/hook",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.secret = secret
        self.accept_unsigned = accept_unsigned
        self.path = path
        self._checks: list[Check] = []
        self._ids: dict[str, None] = {}

    @property
    def hook_url(self) -> str:
        return f"{self.url}{self.path}"

    @property
    def checks(self) -> list[Check]:
        with self._lock:
            return list(self._checks)

    @property
    def unique_ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    def answer(self, request: Received) -> Reply:
        if request.method != "POST" or request.path.split("?")[0] != self.path:
            return Reply.json(404, {"error": "not found"})
        try:
            verified = signing.verify(self.secret, request.headers, request.body, now=self.clock())
        except SignatureError as exc:
            self._checks.append(Check(request, False, request.headers.get("webhook-id"), exc.code))
            if self.accept_unsigned:
                return Reply.json(200, {"status": "ok"})
            return Reply.json(401, {"error": exc.reason, "code": exc.code})
        self._checks.append(Check(request, True, verified.msg_id, None))
        self._ids.setdefault(verified.msg_id, None)
        return Reply.json(200, {"status": "ok"})

    def clear(self) -> None:
        self._checks.clear()
        self._ids.clear()
