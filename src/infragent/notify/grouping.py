"""When an aggregation group sends, and what: Alertmanager's group timers and notification log
(*nflog*) as pure decisions on the group row (``store/notify_schema.notify_groups``).

Timers (``on_member_change``): a new group flushes ``group_wait`` after it was created (so incidents
arriving together go out in one message); a group that has sent before flushes no earlier than
``group_interval`` after its last send (so a stream of changes yields at most one message per
interval); a change never postpones a flush already due earlier.

At a flush (``decide_flush``, Alertmanager's ``DedupStage.needsUpdate``), given every member and
the ids held back by a silence, an inhibition or a mute time (``suppressed``, ``notify/mute.py``),
a message about the members not held back is sent when:

1. a firing member was not in the last sent firing set (something new is wrong), or
2. resolved notifications are on (``"resolved" in notify_on``) and a member resolved that was sent
   as firing and not yet as resolved (a member that fired and resolved between two flushes was never
   announced, so its recovery is not either), or
3. something fires and ``repeat_interval`` has passed since the last send (a reminder).

The message's ``kind`` is ``resolved`` when nothing fires any more. Resolved members leave the group
at every flush or hold (``drop``): they were announced, or will never be. After a send, the next flush
is a reminder ``repeat_interval`` later while anything fires; a group with nothing firing is idle
(``None``) until a member changes.

When ``decide_flush`` answers None the group is *held* (``hold``): resolved members are dropped, and
the next flush is the reminder after the last send while something fires. While a firing member is
held back, the group is re-checked every ``group_interval`` instead, so a silence that ends or an
inhibiting incident that resolves is noticed within one interval, as Alertmanager's group ticks do.
A held-back member is neither news nor a reminder; a held-back resolved member leaves unannounced.

``apply_flush``/``apply_hold`` give the group's next state; the pipeline stores it (the nflog) in
the same transaction as the deliveries, so a restart never sends a flush twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Set
from dataclasses import dataclass, replace
from typing import Literal

from infragent.notify.model import RouteMatch

MemberStatus = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class GroupState:
    """A group's timers and notification log: the firing and resolved incident ids of the last
    message and when it was sent (``None``: never)."""

    created_at: float
    next_flush_at: float | None
    sent_firing: frozenset[str] = frozenset()
    sent_resolved: frozenset[str] = frozenset()
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class Member:
    incident_id: str
    status: MemberStatus
    changed_at: float


@dataclass(frozen=True, slots=True)
class Flush:
    """A message to send: ``firing`` and ``resolved`` incident ids (oldest change first), the next
    flush (``None``: idle), and the resolved members to remove from the group."""

    firing: tuple[str, ...]
    resolved: tuple[str, ...]
    kind: MemberStatus
    next_flush_at: float | None
    drop: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hold:
    """Nothing to send: the next flush, the resolved members to remove, and the firing ids the log
    keeps (those that resolved are forgotten, so a reopening is news again)."""

    next_flush_at: float | None
    drop: tuple[str, ...]
    sent_firing: frozenset[str]


def on_member_change(state: GroupState, match: RouteMatch, now: float) -> float:
    """When the group flushes after a member joined or changed at ``now`` (a time already past
    means at once)."""
    if state.sent_at is None:
        due = state.created_at + match.group_wait_s
    else:
        due = state.sent_at + match.group_interval_s
    return due if state.next_flush_at is None else min(due, state.next_flush_at)


def _ordered(members: Iterable[Member], status: MemberStatus) -> tuple[str, ...]:
    chosen = sorted((m.changed_at, m.incident_id) for m in members if m.status == status)
    return tuple(ident for _, ident in chosen)


def _split(
    members: Iterable[Member], suppressed: Collection[str]
) -> tuple[list[Member], bool, tuple[str, ...]]:
    """(members not held back, whether a firing member is held back, every resolved id)."""
    members = list(members)
    visible = [m for m in members if m.incident_id not in suppressed]
    held_firing = any(m.status == "firing" and m.incident_id in suppressed for m in members)
    return visible, held_firing, _ordered(members, "resolved")


def decide_flush(
    state: GroupState,
    members: Iterable[Member],
    match: RouteMatch,
    now: float,
    *,
    suppressed: Collection[str] = (),
) -> Flush | None:
    """The message a due group sends at ``now``, or None (then ``hold``). ``members``: every member
    of the group; ``suppressed``: the ids held back at this flush (module docstring)."""
    visible, held_firing, drop = _split(members, suppressed)
    firing = _ordered(visible, "firing") if "firing" in match.notify_on else ()
    announce: tuple[str, ...] = ()
    if "resolved" in match.notify_on:
        resolved = _ordered(visible, "resolved")
        announce = tuple(r for r in resolved if r in state.sent_firing and r not in state.sent_resolved)
    news = any(ident not in state.sent_firing for ident in firing)
    reminder = bool(firing) and state.sent_at is not None and now - state.sent_at >= match.repeat_interval_s
    if not (news or reminder or announce):
        return None
    if held_firing:
        next_at: float | None = now + match.group_interval_s
    else:
        next_at = now + match.repeat_interval_s if firing else None
    return Flush(firing, announce, "firing" if firing else "resolved", next_at, drop)


def hold(
    state: GroupState,
    members: Iterable[Member],
    match: RouteMatch,
    now: float,
    *,
    suppressed: Collection[str] = (),
) -> Hold:
    """What a due group that sends nothing (``decide_flush`` answered None) becomes."""
    visible, held_firing, drop = _split(members, suppressed)
    if held_firing:
        next_at: float | None = now + match.group_interval_s
    elif any(m.status == "firing" for m in visible) and state.sent_at is not None:
        next_at = state.sent_at + match.repeat_interval_s
    else:
        next_at = None
    return Hold(next_at, drop, state.sent_firing - set(drop))


def apply_flush(state: GroupState, flush: Flush, now: float) -> GroupState:
    """The group after ``flush`` was sent at ``now``: the log holds what the message said."""
    return replace(
        state,
        next_flush_at=flush.next_flush_at,
        sent_firing=frozenset(flush.firing),
        sent_resolved=frozenset(flush.resolved),
        sent_at=now,
    )


def apply_hold(state: GroupState, held: Hold) -> GroupState:
    return replace(
        state,
        next_flush_at=held.next_flush_at,
        sent_firing=held.sent_firing,
        sent_resolved=state.sent_resolved - set(held.drop),
    )


def due_escalations(
    match: RouteMatch, incident_opened_at: float, acknowledged: bool, fired_steps: Set[int], now: float
) -> list[int]:
    """The escalation steps of ``match`` due at ``now`` for an incident opened at
    ``incident_opened_at``: not fired yet and ``after`` elapsed; none once someone acknowledged it.
    The caller passes only incidents still active (a resolved one escalates no further)."""
    if acknowledged:
        return []
    return [
        i
        for i, step in enumerate(match.escalation)
        if i not in fired_steps and now >= incident_opened_at + step.after_s
    ]


def next_escalation_at(
    match: RouteMatch, incident_opened_at: float, acknowledged: bool, fired_steps: Set[int]
) -> float | None:
    """When the next escalation step of the incident falls due (None: none left), for scheduling."""
    if acknowledged:
        return None
    pending = [incident_opened_at + s.after_s for i, s in enumerate(match.escalation) if i not in fired_steps]
    return min(pending) if pending else None
