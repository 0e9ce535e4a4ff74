"""An incident as plain values: the contract between the incident core, the store, the API, the
responder and (next) notifications.

Statuses: ``open → acknowledged → remediating → resolved | escalated``. ``resolved`` and
``escalated`` end an episode; a signal with the same fingerprint within ``reopen_window_s`` of the
end reopens the same incident (its ``reopen_count`` and flap history grow) instead of opening a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    REMEDIATING = "remediating"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


ACTIVE_STATUSES = frozenset({IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.REMEDIATING})
IncidentSource = Literal["alert", "event"]

#: Timeline entry kinds (``TimelineEntry.kind``).
TimelineKind = Literal[
    "opened",
    "reopened",
    "joined",  # another alert or event joined the incident (grouping window, or a repeat)
    "alert",  # an alert transition (pending/firing/resolved)
    "event",
    "status",  # a status change (ack, resolve, escalate, remediating) with who did it
    "note",
    "decision",
    "command",
    "result",
    "flapping",
]


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """Per-tenant incident settings. 0 turns the grouping window and the auto-pause off."""

    #: a fingerprint seen again within this long after the incident ended reopens it
    reopen_window_s: float = 1800.0
    #: this many reopenings within ``flap_window_s`` mark the incident flapping
    flap_threshold: int = 3
    flap_window_s: float = 3600.0
    #: alerts with the same ``group_by`` labels within this long of the incident's opening join it
    group_window_s: float = 0.0
    group_by: tuple[str, ...] = ("host",)
    #: open an alert's incident only if it is still firing this long after it fired
    auto_pause_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    client_id: str
    fingerprint: str
    title: str
    severity: str
    status: IncidentStatus
    source: IncidentSource
    labels: dict[str, str]
    opened_at: float
    updated_at: float
    rule_name: str | None = None
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    reopen_count: int = 0
    flap_count: int = 0
    flapping: bool = False
    #: when each reopening happened (within ``flap_window_s``), for the flap counter
    reopened_at: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: float
    kind: TimelineKind
    actor: str
    detail: dict[str, Any] = field(default_factory=dict)
