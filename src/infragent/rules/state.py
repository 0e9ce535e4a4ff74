"""An alert instance's state and its transitions: what is persisted on every transition.

Why ``active_since`` / ``firing_since`` / ``keep_firing_since`` as absolute times: a server restarted
in the middle of a ``for`` period reads them back and fires at the moment it would have without the
restart (Prometheus keeps these in memory and loses them: prometheus#13957, #15175).
``keep_firing_until`` is ``keep_firing_since + rule.keep_firing_for_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AlertStatus(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class AlertState:
    status: AlertStatus = AlertStatus.INACTIVE
    #: when the condition started to hold (Prometheus ``ActiveAt``); None while inactive
    active_since: float | None = None
    #: when the alert fired; None unless firing
    firing_since: float | None = None
    #: when the condition stopped holding while firing (the ``keep_firing_for`` clock); None otherwise
    keep_firing_since: float | None = None
    #: the group's value at the last evaluation (None: no data)
    last_value: float | None = None
    last_eval: float | None = None
    resolved_at: float | None = None
    #: per-kind memory (a reset's last sample, an event rule's last matched event time …)
    memo: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of status. ``firing → inactive`` is the one "resolved" notice of an episode."""

    at: float
    from_status: AlertStatus
    to_status: AlertStatus
    value: float | None
    reason: str

    @property
    def resolved(self) -> bool:
        return self.from_status is AlertStatus.FIRING and self.to_status is AlertStatus.INACTIVE

    @property
    def fired(self) -> bool:
        return self.to_status is AlertStatus.FIRING and self.from_status is not AlertStatus.FIRING
