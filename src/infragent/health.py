"""The one up/down state machine: check results in, at most one transition out. Pure — no I/O, no clock.

Why one: the agent's checks and the SDK's monitor both decide when an app is down and when it is
back, and the server opens (and closes) one incident per transition. Two copies of that rule
would drift, and an app would page differently depending on who watched it.

Why thresholds: one lost packet must not page anyone, so a check goes ``down`` only after
``failures_before_down`` failures in a row, and ``up`` again after ``successes_before_up``
successes in a row. Each outage yields exactly one ``app_down`` and one ``app_recovered``, whatever
happens in between, because the server opens (and closes) one incident per transition.

``unavailable`` results (the check cannot run here, e.g. no systemd) neither count as failures
nor reset a streak: we do not know the answer, so we do not pretend to.

A ``definite`` failure (the kernel told us the process exited: ``agent/checks/exitwatch.py``) goes
``down`` at once, whatever ``failures_before_down`` says: the thresholds filter doubtful probes,
and a death the kernel reported is not in doubt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

ProbeStatus = Literal["up", "down", "unavailable"]
CheckStatus = Literal["unknown", "up", "down"]
TransitionKind = Literal["app_down", "app_recovered"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one probe saw. ``error`` says why it was not ``up``, in words an operator can act on.

    ``definite``: a failure that is certain (an exit reported by the kernel), not a probe that may
    have been unlucky; it skips ``failures_before_down``.
    """

    status: ProbeStatus
    latency_ms: float | None = None
    error: str | None = None
    definite: bool = False


@dataclass(frozen=True, slots=True)
class CheckTransition:
    """A change of a check's state, to be reported as an event at once.

    ``since`` is when the outage started (its first failure); ``down_at`` when it was detected (the
    ``app_down`` transition); ``downtime_s`` is set on recovery, counted from ``since``: that is
    when users started seeing errors. ``consecutive_failures`` counts the failures of the outage.
    """

    kind: TransitionKind
    check: str
    at: float
    since: float
    consecutive_failures: int
    error: str | None
    latency_ms: float | None
    downtime_s: float | None = None
    down_at: float | None = None

    def details(self) -> dict[str, Any]:
        """The agent's event payload; plain JSON types."""
        return {
            "check": self.check,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "consecutive_failures": self.consecutive_failures,
            "since": self.since,
            "downtime_s": self.downtime_s,
        }


@dataclass(frozen=True, slots=True)
class CheckState:
    """Everything ``step`` needs to know about one check's past.

    While the check is down, ``consecutive_failures`` counts every failure of the outage (a lone
    success short of ``successes_before_up`` does not reset it), so the recovery can report it.
    """

    name: str
    failures_before_down: int = 3
    successes_before_up: int = 1
    status: CheckStatus = "unknown"
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    failing_since: float | None = None  # first failure of the current streak or outage
    down_at: float | None = None  # when the current outage was detected (its app_down)
    last_error: str | None = None  # survives successes: the recovery reports what was wrong
    last_result: CheckResult | None = None
    last_at: float | None = None


#: The new state, and the transition the result caused, if any.
Step = tuple[CheckState, CheckTransition | None]


def step(state: CheckState, result: CheckResult, now: float) -> Step:
    """Fold one result into the state; return the new state and the transition it caused, if any."""
    if result.status == "unavailable":
        return replace(state, last_result=result, last_at=now, last_error=result.error), None
    if result.status == "down":
        return _on_failure(state, result, now)
    return _on_success(state, result, now)


def _on_failure(state: CheckState, result: CheckResult, now: float) -> Step:
    failures = state.consecutive_failures + 1
    since = state.failing_since if state.failing_since is not None else now
    new = replace(
        state,
        consecutive_failures=failures,
        consecutive_successes=0,
        failing_since=since,
        last_error=result.error,
        last_result=result,
        last_at=now,
    )
    if state.status == "down" or (failures < state.failures_before_down and not result.definite):
        return new, None
    transition = CheckTransition(
        kind="app_down",
        check=state.name,
        at=now,
        since=since,
        consecutive_failures=failures,
        error=result.error,
        latency_ms=result.latency_ms,
        down_at=now,
    )
    return replace(new, status="down", down_at=now), transition


def _on_success(state: CheckState, result: CheckResult, now: float) -> Step:
    successes = state.consecutive_successes + 1
    new = replace(state, consecutive_successes=successes, last_result=result, last_at=now)
    if state.status == "down":
        # Keep the outage's failure count and start while we wait for enough successes.
        if successes < state.successes_before_up:
            return new, None
        since = state.failing_since if state.failing_since is not None else now
        transition = CheckTransition(
            kind="app_recovered",
            check=state.name,
            at=now,
            since=since,
            consecutive_failures=state.consecutive_failures,
            error=state.last_error,
            latency_ms=result.latency_ms,
            downtime_s=now - since,
            down_at=state.down_at,
        )
        recovered = replace(new, status="up", consecutive_failures=0, failing_since=None, down_at=None)
        return recovered, transition
    # Not down: any success ends a failure streak that had not reached the threshold yet.
    new = replace(new, consecutive_failures=0, failing_since=None)
    if state.status == "unknown" and successes >= state.successes_before_up:
        new = replace(new, status="up")  # first sight of a healthy check is not news
    return new, None
