"""Standard Webhooks v1 signing and verification, with a replay cache.

Why here and not in the SDK: the same code signs commands on the server, verifies them in the SDK
and in the host agent, so a wire drift cannot creep in between the two ends.

Signature: ``v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``; the header may carry
several space-separated signatures (key rotation). Secrets are ``whsec_`` + base64 of random bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from infragent.errors import SignatureError

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
TOLERANCE_S = 300
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


def new_secret(nbytes: int = 32) -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise SignatureError("bad_secret", "webhook secret is not valid base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` header value for one message."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: sign(secret, msg_id, ts, body),
    }


class SeenIds(Protocol):
    """Remembers message ids already accepted, so a captured message cannot be replayed."""

    def add_if_new(self, msg_id: str, now: float) -> bool:
        """Record ``msg_id``; return False when it was already seen."""
        ...


class MemorySeenIds:
    """Bounded in-memory replay cache; ids are kept at least twice the timestamp window."""

    def __init__(self, keep_s: float = 2 * TOLERANCE_S, max_ids: int = 100_000) -> None:
        self._keep_s = keep_s
        self._max = max_ids
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add_if_new(self, msg_id: str, now: float) -> bool:
        with self._lock:
            while self._ids:
                oldest, at = next(iter(self._ids.items()))
                if at >= now - self._keep_s and len(self._ids) < self._max:
                    break
                del self._ids[oldest]
            if msg_id in self._ids:
                return False
            self._ids[msg_id] = now
            return True


@dataclass(frozen=True, slots=True)
class VerifiedMessage:
    msg_id: str
    timestamp: int


def verify(
    secret: str | list[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    seen: SeenIds | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> VerifiedMessage:
    """Check signature, timestamp window and (when ``seen`` is given) replay; raise SignatureError.

    The error's ``code`` is one of ``wire.commands.SignatureCode``: ``missing_headers``,
    ``bad_timestamp`` (not an integer), ``stale`` (outside ``tolerance_s``), ``bad_signature``,
    ``replay`` (the id was accepted before) or ``bad_secret`` (our own secret is not base64).
    The replay cache is consulted last, so a forged message cannot poison it with a real id.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get(HEADER_ID)
    ts_raw = lower.get(HEADER_TIMESTAMP)
    sig_header = lower.get(HEADER_SIGNATURE)
    if not msg_id or not ts_raw or not sig_header:
        raise SignatureError(
            "missing_headers", "missing webhook-id, webhook-timestamp or webhook-signature header"
        )
    try:
        ts = int(ts_raw)
    except ValueError as exc:
        raise SignatureError("bad_timestamp", "webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError("stale", f"webhook-timestamp is more than {tolerance_s} s away from now")
    secrets_ = [secret] if isinstance(secret, str) else secret
    offered = [part for part in sig_header.split(" ") if part.startswith("v1,")]
    ok = False
    for s in secrets_:
        expected = sign(s, msg_id, ts, body)
        for candidate in offered:
            if hmac.compare_digest(expected.encode(), candidate.encode()):
                ok = True
    if not ok:
        raise SignatureError("bad_signature", "no webhook-signature matches")
    if seen is not None and not seen.add_if_new(msg_id, current):
        raise SignatureError("replay", f"webhook-id {msg_id!r} was already received (replay)")
    return VerifiedMessage(msg_id=msg_id, timestamp=ts)
