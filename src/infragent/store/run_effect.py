"""How well automatic remediation works: success rate and MTTR per runbook and per action.

Issue #14: "No open-source system measures how often its automatic fixes actually work." This
module is that measure, read from what the executor stored (``runbook_runs``, ``action_history``).

Definitions (``docs/responder.md`` "Effectiveness" says the same):

* A run **counts** when it has ended and was not a dry run (a shadow run sent nothing, so it
  proves nothing) and was not cancelled by a person (a cancel is neither a fix nor a failure).
* It **succeeded** when it ended ``completed`` with a verified recovery (``verified_at`` set: a
  verify step saw the incident's signal recover). A run that completed without verifying is not
  a success: nothing proved the service came back.
* **success rate** = succeeded / counted (None when nothing counts yet).
* **escalations**: counted runs that ended ``escalated`` (by a step, a budget, a breaker, an
  expired or rejected approval).
* **MTTR** (``runbook_runs.mttr_s``: incident opened or reopened → verified recovery), over the
  succeeded runs: the median, and the p95 by nearest rank (the smallest value with at least 95%
  of the values at or below it, so it is always one of the measured times).
* Per **action**: the automatic actions sent (``action_history``, not shadow ones) joined to their
  runs; ``actions`` counts the commands, ``runs`` the distinct runs that sent the action at least
  once, and success, escalations and MTTR are those of these runs; ``errors`` counts commands whose
  own outcome was not ``ok``.

``since`` bounds the runs by ``created_at`` (and the actions by their time); every read is scoped
by ``client_id``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from infragent.store.runbook_schema import action_history, runbook_runs

#: How many of the most recent runs each line lists.
LAST_RUNS: Final = 5


@dataclass(frozen=True, slots=True)
class RunBrief:
    id: str
    status: str
    outcome: str | None
    incident_id: str | None
    created_at: float
    ended_at: float | None
    mttr_s: float | None
    verified: bool


@dataclass(frozen=True, slots=True)
class Effect:
    """One runbook's or one action's record (see the module docstring for each figure)."""

    name: str
    runs: int
    #: commands sent (per action); equal to ``runs`` per runbook
    actions: int
    counted: int
    succeeded: int
    success_rate: float | None
    escalations: int
    failed: int
    cancelled: int
    dry_runs: int
    active: int
    errors: int
    mttr_median_s: float | None
    mttr_p95_s: float | None
    last_runs: tuple[RunBrief, ...]


@dataclass(frozen=True, slots=True)
class Effectiveness:
    at: float
    since: float | None
    runbooks: tuple[Effect, ...]
    actions: tuple[Effect, ...]


def p95(values: Sequence[float]) -> float | None:
    """The nearest-rank 95th percentile: one of ``values``, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _brief(r: Any) -> RunBrief:
    return RunBrief(
        r.id, r.status, r.outcome, r.incident_id, float(r.created_at), r.ended_at, r.mttr_s,
        r.verified_at is not None,
    )  # fmt: skip


def _counted(r: Any) -> bool:
    return r.ended_at is not None and not r.dry_run and r.status != "cancelled"


def _succeeded(r: Any) -> bool:
    return _counted(r) and r.status == "completed" and r.verified_at is not None


def _effect(name: str, runs: Sequence[Any], actions: int, errors: int) -> Effect:
    counted = [r for r in runs if _counted(r)]
    wins = [r for r in counted if _succeeded(r)]
    times = [float(r.mttr_s) for r in wins if r.mttr_s is not None]
    newest = sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)[:LAST_RUNS]
    return Effect(
        name=name,
        runs=len(runs),
        actions=actions,
        counted=len(counted),
        succeeded=len(wins),
        success_rate=len(wins) / len(counted) if counted else None,
        escalations=sum(1 for r in counted if r.outcome == "escalated"),
        failed=sum(1 for r in counted if r.outcome == "failed"),
        cancelled=sum(1 for r in runs if r.status == "cancelled"),
        dry_runs=sum(1 for r in runs if r.dry_run),
        active=sum(1 for r in runs if r.ended_at is None),
        errors=errors,
        mttr_median_s=statistics.median(times) if times else None,
        mttr_p95_s=p95(times),
        last_runs=tuple(_brief(r) for r in newest),
    )


def _group(rows: Iterable[Any], key: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in rows:
        out.setdefault(str(getattr(r, key)), []).append(r)
    return out


def effectiveness(
    conn: sa.Connection, client_id: str, now: float, since: float | None = None
) -> Effectiveness:
    """The tenant's record per runbook and per action, runs created from ``since`` up to ``now``."""
    t = runbook_runs.c
    cols = (
        t.id, t.runbook, t.status, t.outcome, t.incident_id, t.dry_run, t.created_at, t.ended_at,
        t.verified_at, t.mttr_s,
    )  # fmt: skip
    q = sa.select(*cols).where(t.client_id == client_id, t.created_at <= now)
    if since is not None:
        q = q.where(t.created_at >= since)
    runs = conn.execute(q).all()
    by_runbook = [_effect(name, rows, len(rows), 0) for name, rows in sorted(_group(runs, "runbook").items())]

    h = action_history.c
    aq = sa.select(h.action, h.run_id, h.outcome).where(
        h.client_id == client_id, h.automatic.is_(True), h.shadow.is_(False), h.at <= now
    )
    if since is not None:
        aq = aq.where(h.at >= since)
    sent = conn.execute(aq).all()
    run_by_id = {r.id: r for r in runs}
    missing = sorted({s.run_id for s in sent if s.run_id is not None and s.run_id not in run_by_id})
    if missing:  # an action sent within the window by a run created before it
        for r in conn.execute(sa.select(*cols).where(t.client_id == client_id, t.id.in_(missing))):
            run_by_id[r.id] = r
    by_action = []
    for action, rows in sorted(_group(sent, "action").items()):
        run_ids = {s.run_id for s in rows if s.run_id in run_by_id}
        errors = sum(1 for s in rows if s.outcome is not None and s.outcome != "ok")
        by_action.append(_effect(action, [run_by_id[i] for i in run_ids], len(rows), errors))
    return Effectiveness(now, since, tuple(by_runbook), tuple(by_action))
