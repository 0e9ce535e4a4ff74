"""Which events of a claimed item are decided on now, and which only join an incident already decided.

Why a plan between the claim and the decision: claims are per agent (the cooldown and the
exactly-once lease are per agent), decisions are per incident. A storm of 1,000 ``app_down`` events
of one service is one incident, and however its events fall into claims (one claim of 1,000, or a
hundred claims of ten while the responder keeps up), only the first claim decides; every later
event is marked processed as having joined that incident. An incident that ended and was reopened
is a new episode, and the store no longer lists it as decided, so it is decided again.

One incident per item: the item is narrowed to the events of the incident whose first event is the
oldest; the events of any other undecided incident stay pending for the agent's next claim (after
its cooldown, if this one acts), so an agent never gets two actions inside one cooldown. Events
without an incident (stored before incidents existed) are one group, decided as before.

Pure: no I/O, no clock; the store says what is decided (``WorkItem.decided``), this says what to do.
"""

from __future__ import annotations

from dataclasses import replace

from infragent.model import Event
from infragent.responder.ports import PriorDecision, WorkItem
from infragent.wire.commands import CommandStatus


def resends(prior: PriorDecision | None) -> bool:
    """Whether an earlier claimant's command may have been sent without its result being recorded:
    then the same command id is sent again (the receiver refuses a second run as a replay)."""
    return (
        prior is not None
        and prior.command_id is not None
        and prior.command_status is not None
        and CommandStatus(prior.command_status).open
    )


def plan(item: WorkItem) -> WorkItem:
    """The item narrowed to one group of events to decide on (``events``, ``incident_id``) and the
    events whose incident is already decided (``joined``); ``events`` is empty when every event of
    the claim joined a decided incident. Other events of the claim are left out: they stay pending.

    A prior decision whose command may be in flight is finished first: its incident's events are the
    group, although that incident counts as decided (by that very decision).
    """
    resuming = resends(item.prior)
    resume = item.prior.incident_id if item.prior is not None and resuming else None
    groups: dict[str | None, list[Event]] = {}
    joined = list(item.joined)
    for event in item.events:
        incident = event.incident_id
        if incident is not None and incident in item.decided and not (resuming and incident == resume):
            joined.append(event)
        else:
            groups.setdefault(incident, []).append(event)
    if not groups:
        return replace(item, events=(), incident_id=None, joined=tuple(joined))
    key = resume if resuming and resume in groups else next(iter(groups))
    return replace(item, events=tuple(groups[key]), incident_id=key, joined=tuple(joined))
