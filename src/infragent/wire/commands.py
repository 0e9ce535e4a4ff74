"""The signed command the server sends to an agent or SDK, and what comes back.

Why one definition: the responder (push), the pull queue (pull), the SDK's webhook and the agent's
command processor used to build and parse this body each on their own, as untyped dicts. One
msgspec struct is the contract; a field added here reaches every side at once.

Why reason codes and not messages: a refusal is acted upon (the responder decides "already
delivered" from a ``replay``), so it travels as a fixed code; the human text stays beside it and may
be reworded freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from infragent.errors import SignatureCode
from infragent.model import ResultStatus


class CommandStatus(StrEnum):
    """A command's life on the server: queued → sent → done | failed | rejected | expired."""

    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def open(self) -> bool:
        """Still waiting for a result (a responder that died may have to re-send it)."""
        return self in (CommandStatus.QUEUED, CommandStatus.SENT)


#: The command status that a result of each status ends in.
STATUS_OF_RESULT: dict[ResultStatus, CommandStatus] = {
    "ok": CommandStatus.DONE,
    "error": CommandStatus.FAILED,
    "rejected": CommandStatus.REJECTED,
    "timeout": CommandStatus.FAILED,
    "unreachable": CommandStatus.FAILED,
}

__all__ = ["STATUS_OF_RESULT", "Command", "CommandResult", "CommandStatus", "SignatureCode"]


class Command(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The body of a signed command; ``command_id`` equals the ``webhook-id`` it is signed under.

    ``expires_at`` is set for pull-mode commands (an agent refuses one past it); unknown fields are
    ignored so an older receiver accepts a newer server's commands.
    """

    command_id: str
    action: str
    target: str | None
    params: dict[str, str]
    event_ids: list[str]
    reason: str
    issued_at: float
    expires_at: float | None = None


class CommandResult(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=False):
    """A receiver's answer to a command (the JSON body of its reply, or a pull-mode report).

    Only the fields an answer sets are on the wire (``omit_defaults``), so each receiver keeps the
    exact JSON it documents: the SDK's ``{"status", "output"}`` after a run and ``{"error",
    "code"}`` on a 401, the agent's ``{"status", "reason", "output", "code"}`` refusals and its
    run results with ``exit_code``, ``duration_ms``, ``truncated``.

    * ``status`` is None only for a refusal before the command was read (the SDK's 400/401/413).
    * ``code`` is the machine-readable reason of a signature refusal (a ``SignatureCode`` on a 401);
      ``error`` (SDK) and ``output`` carry the human text, ``reason`` the agent's refusal vocabulary.
    * ``exit_code``, ``duration_ms`` and ``truncated`` describe a run: UNSET (absent) when the
      answer is not about one; ``exit_code``/``duration_ms`` are None (JSON null) for a run that
      has no value (a timeout, an HTTP action, an interrupted run).
    * ``duplicate`` says the receiver had this command id already and returns its stored result.
    """

    status: ResultStatus | Literal["running"] | None = None
    output: str | None = None
    command_id: str | None = None
    code: str | None = None
    duplicate: bool = False
    reason: str | None = None
    error: str | None = None
    exit_code: int | UnsetType | None = UNSET
    duration_ms: int | UnsetType | None = UNSET
    truncated: bool | UnsetType = UNSET


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)


def decode_command(body: bytes) -> Command:
    """Raise ``msgspec.DecodeError`` (``ValidationError`` included) for a body of another shape."""
    return _command_decoder.decode(body)


def encode_result(result: CommandResult) -> bytes:
    return _encoder.encode(result)


def result_fields(result: CommandResult) -> dict[str, Any]:
    """The answer as plain JSON types, exactly the fields that go on the wire."""
    fields: dict[str, Any] = msgspec.to_builtins(result)
    return fields


def result_from_fields(fields: Mapping[str, Any]) -> CommandResult:
    """A stored answer back as a struct; raise ``msgspec.ValidationError`` for another shape."""
    return msgspec.convert(dict(fields), CommandResult)


_encoder = msgspec.json.Encoder()
_command_decoder = msgspec.json.Decoder(Command)
