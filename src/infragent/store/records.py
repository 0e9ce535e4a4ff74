"""Rows as the rest of the code sees them: plain frozen values, no SQLAlchemy types.

A ``Claim`` carries a ``PriorDecision``, which is the responder's value (``responder/ports.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infragent.model import ActionSpec, Event
from infragent.responder.ports import PriorDecision
from infragent.wire.commands import Command


@dataclass(frozen=True, slots=True)
class ClientRecord:
    id: str
    email: str
    company_name: str
    webhook_url: str
    webhook_secret: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Registration:
    client: ClientRecord
    api_key: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    client_id: str
    secret_hash: str
    scopes: tuple[str, ...]
    revoked: bool
    #: the end of a rotated key's grace period; None: no end
    expires_at: float | None = None
    name: str = ""
    created_at: float = 0.0
    last_used_at: float | None = None
    replaced_by: str | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    name: str
    password_hash: str
    created_at: float
    disabled_at: float | None = None
    last_login_at: float | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    """A user's role in one tenant (``auth/scopes.py`` ``ROLE_SCOPES``)."""

    user_id: str
    client_id: str
    role: str
    created_at: float


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One sign-in: ``id`` is the SHA-256 of the cookie's token; the role is read live from the
    membership, so a demoted or removed user loses the right at the next request."""

    id: str
    user_id: str
    client_id: str
    csrf_token: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    ip: str
    user_agent: str

    def live(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    client_id: str
    node_id: str
    kind: str
    command_mode: str
    actions: tuple[ActionSpec, ...]
    last_seen: float
    cooldown_until: float | None


@dataclass(frozen=True, slots=True)
class Claim:
    """One agent's pending events, leased to one responder; ``token`` fences late writers.

    ``store/workqueue.py`` hands it to the responder as a ``WorkItem``."""

    agent: AgentRecord
    client: ClientRecord
    token: str
    worker: str
    lease_until: float
    events: tuple[Event, ...]
    prior: PriorDecision | None = None

    @property
    def event_ids(self) -> list[str]:
        return [e.id for e in self.events]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    client_id: str
    at: float
    actor: str
    kind: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class EventDetail:
    """An event with the decision and command it led to and their audit trail (``GET /events/{id}``)."""

    event: Event
    decision: dict[str, Any] | None = None
    command: dict[str, Any] | None = None
    audit: list[AuditRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PulledCommand:
    """A command handed to a pull-mode agent; signed at delivery with the client's secret."""

    secret: str
    command: Command

    @property
    def id(self) -> str:
        return self.command.command_id
