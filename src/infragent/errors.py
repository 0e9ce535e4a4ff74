"""The InfrAgent exception tree.

Why one root: callers at loop boundaries (responder step, ingest batch, agent tick) catch
``InfrAgentError`` for expected failures and let anything else reach ``logger.exception``.

    InfrAgentError
    ├── ConfigError            a setting is unknown or has a bad value (names it)
    ├── SignatureError         a signed message failed verification (reason in ``reason``)
    ├── StoreError             the database refused or lost an operation
    │   └── NotFoundError      the object does not exist for this tenant
    └── LlmError               an LLM provider failed (transport, status, shape, timeout)
"""

from __future__ import annotations

from typing import Literal

#: Why a signed message was refused; travels as ``code`` in a receiver's 401 body
#: (``wire.commands``), so a sender acts on the code, never on the wording of the message.
SignatureCode = Literal["missing_headers", "bad_timestamp", "stale", "bad_signature", "replay", "bad_secret"]


class InfrAgentError(Exception):
    """Root of every error InfrAgent raises on purpose."""


class ConfigError(InfrAgentError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"configuration error: {key}: {message}")
        self.key = key
        self.message = message


class SignatureError(InfrAgentError):
    """A signed message was refused: ``code`` says why, for programs; ``reason`` for people.

    Why both: the receiver's 401 carries ``code`` and the dispatcher acts on it (a ``replay`` of a
    re-sent command means "already delivered"), so the text can be reworded without changing what
    any program does.
    """

    def __init__(self, code: SignatureCode, reason: str) -> None:
        super().__init__(reason)
        self.code: SignatureCode = code
        self.reason = reason


class StoreError(InfrAgentError):
    pass


class NotFoundError(StoreError):
    pass


class LlmError(InfrAgentError):
    pass
