"""The per-tenant circuit breaker: when too many of a tenant's hosts are unhealthy at once, automatic
actions stop and one escalation says why.

Why: a fleet-wide problem (a bad deploy, a dead database, a network partition) is not fixed by
restarting every host, and restarting every host at once can turn it into an outage. When more
than ``open_above`` (default 40%) of a tenant's hosts are unhealthy at the same time, the breaker
opens; ``guardrails.mediate`` then denies every automatic action of the tenant, and the loop sends
the one escalation ``breaker_change`` reports as ``"opened"`` (not one per host).

Hysteresis, so that a fleet hovering at the threshold does not flap open and shut: it closes only
once the share has stayed at or below ``close_at`` (default 20%) for ``close_after_s`` (default
5 minutes) in a row; between the two shares it stays as it is. ``min_unhealthy`` (default 3)
keeps a small tenant out of it: one of two hosts down is 50%, but it says nothing about a fleet,
so the breaker opens only when at least that many hosts are unhealthy, and fewer count as calm.

Fail closed: host counts that cannot be right (negative, more unhealthy hosts than hosts, not
whole numbers) open the breaker with that reason; the next consistent counts judge it again.

Pure: ``evaluate(state, unhealthy, total, now)`` returns the next state; the loop stores it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from infragent.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Opens above ``open_above`` of the hosts unhealthy (with at least ``min_unhealthy``); closes
    after ``close_after_s`` at or below ``close_at``."""

    open_above: float = 0.40
    close_at: float = 0.20
    min_unhealthy: int = 3
    close_after_s: float = 300.0

    def __post_init__(self) -> None:
        if not (0 <= self.open_above < 1):
            raise ConfigError("breaker.open_above", "must be a share from 0 up to (not including) 1")
        if not (0 <= self.close_at <= self.open_above):
            raise ConfigError("breaker.close_at", "must be a share from 0 up to open_above")
        if isinstance(self.min_unhealthy, bool) or not isinstance(self.min_unhealthy, int):
            raise ConfigError("breaker.min_unhealthy", "must be a whole number")
        if self.min_unhealthy < 1:
            raise ConfigError("breaker.min_unhealthy", "must be 1 or more")
        if not (math.isfinite(self.close_after_s) and self.close_after_s >= 0):
            raise ConfigError("breaker.close_after", "must be a number of seconds, 0 or more")


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A tenant's breaker: ``open`` since ``since``; while open, ``calm_since`` is when the share
    last fell to ``close_at`` or below (None: not calm now). ``unhealthy``/``total``: the counts
    last judged; ``reason``: why it opened (what the escalation says)."""

    open: bool = False
    since: float | None = None
    calm_since: float | None = None
    unhealthy: int = 0
    total: int = 0
    reason: str = ""


def _counts_problem(unhealthy: object, total: object) -> str | None:
    def whole(n: object) -> bool:
        return isinstance(n, int) and not isinstance(n, bool)

    if not whole(unhealthy) or not whole(total):
        return f"host counts {unhealthy!r} of {total!r} are not whole numbers"
    assert isinstance(unhealthy, int) and isinstance(total, int)
    if unhealthy < 0 or total < 0 or unhealthy > total:
        return f"host counts {unhealthy} unhealthy of {total} cannot be right"
    return None


def evaluate(
    state: BreakerState, unhealthy: int, total: int, now: float, config: BreakerConfig | None = None
) -> BreakerState:
    """The breaker after judging ``unhealthy`` of ``total`` hosts at ``now``."""
    config = config or BreakerConfig()
    problem = _counts_problem(unhealthy, total)
    if problem is None and not math.isfinite(now):
        problem = f"the time {now!r} is not a finite number"
    if problem is not None:
        since = state.since if state.open and state.since is not None else now
        reason = f"{problem}; automatic actions stop until they are"
        return BreakerState(True, since, None, 0, 0, reason)
    share = unhealthy / total if total else 0.0
    if not state.open:
        if unhealthy >= config.min_unhealthy and share > config.open_above:
            reason = (
                f"{unhealthy} of {total} hosts ({share:.0%}) are unhealthy at once, more than "
                f"{config.open_above:.0%}: a fleet-wide problem is not fixed by restarting every host"
            )
            return BreakerState(True, now, None, unhealthy, total, reason)
        return replace(state, unhealthy=unhealthy, total=total)
    calm = share <= config.close_at or unhealthy < config.min_unhealthy
    if not calm:
        return replace(state, calm_since=None, unhealthy=unhealthy, total=total)
    calm_since = state.calm_since if state.calm_since is not None else now
    if now - calm_since >= config.close_after_s:
        return BreakerState(False, now, None, unhealthy, total, "")
    return replace(state, calm_since=calm_since, unhealthy=unhealthy, total=total)


def breaker_change(before: BreakerState, after: BreakerState) -> Literal["opened", "closed"] | None:
    """``"opened"`` when the loop must send the breaker's one escalation, ``"closed"`` when
    automatic actions resume, None when nothing changed."""
    if after.open and not before.open:
        return "opened"
    if before.open and not after.open:
        return "closed"
    return None
