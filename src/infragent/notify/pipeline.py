"""The notification pipeline: incident changes → aggregation groups and immediate deliveries;
escalation-policy steps; approval requests. Group flushes are in ``notify/flush.py``.

Every function takes ``now`` and does one unit of work per write transaction (one change, one
group, one escalation step): what a unit decides and the mark that it was done commit together,
so a crash redoes a unit at most, never half of one, and the ``cause`` of each delivery makes the
redo insert nothing twice (``store/deliveries.py``).

Routing a change (``route_changes``), under the tenant's lock (``audit.lock_tenant``, the lock
every incident change takes first). Why the lock: two processes may route two changes of one
incident at once (opened, then resolved a moment later). Each takes the tenant's lock, then reads
the incident *as it is now*, so whichever routes last writes the incident's current state: a
member's status follows the incident, not the order changes were claimed in.

* ``opened`` / ``reopened``: the incident is a ``firing`` member of the group of each route it
  matches (``resolved`` if it was resolved meanwhile);
* ``resolved``: the incident becomes ``resolved`` in every group it is a member of (the groups
  that told people it fired; a route tree changed since does not strand it);
* either way the group's next flush comes from ``grouping.on_member_change``;
* ``escalated`` / ``acknowledged`` / ``approval``: per-incident deliveries at once to the
  receivers of each matching route whose ``notify_on`` has the kind, after the suppression
  verdict (an approval is never suppressed: ``notify/mute.py``); cause ``change:<id>``.

Lock order, so nothing deadlocks: a change row, then the tenant's lock, then group rows. A flush
holds one group row and takes no other lock; a delivery's record takes the delivery row, then
the tenant's lock (its audit entry). No transaction waits on a lock held by one that waits on it.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from infragent.config import Settings
from infragent.incidents.model import Incident, IncidentStatus
from infragent.notify.fanout import TenantView, create_deliveries, describe
from infragent.notify.flush import flush_due
from infragent.notify.grouping import GroupState, due_escalations, on_member_change
from infragent.notify.model import NotificationKind, RouteMatch
from infragent.notify.route import group_key, incident_labels, match_routes
from infragent.notify.snapshot import incident_message
from infragent.store import audit, deliveries, notify_inputs, outbox
from infragent.store.base import Database
from infragent.store.incident_reads import get_incident

__all__ = ["Quarantine", "escalate", "flush_due", "request_approval", "route_changes"]

logger = logging.getLogger(__name__)

#: Change kinds that move group membership; the others are notified per incident at once.
_GROUPED = frozenset({"opened", "reopened", "resolved"})
#: How far back (beyond the longest step) incidents are looked at for escalation steps.
ESCALATION_HORIZON_S = 86_400.0


class Quarantine:
    """Changes whose routing failed, left alone for a while (1 s, doubling, at most a minute).

    Why: changes are claimed oldest first; one that fails every time (a bug, a row the code cannot
    read) would otherwise be claimed again at once and stop every later change of every tenant.
    It is retried, not dropped: a transient failure must not lose a notification.
    """

    def __init__(self) -> None:
        self._until: dict[int, float] = {}
        self._failures: dict[int, int] = {}

    def skipped(self, now: float) -> list[int]:
        for change_id in [c for c, t in self._until.items() if t <= now]:
            del self._until[change_id]
        return sorted(self._until)

    def failed(self, change_id: int, now: float) -> None:
        n = self._failures.get(change_id, 0) + 1
        self._failures[change_id] = n
        self._until[change_id] = now + min(2.0 ** (n - 1), 60.0)

    def done(self, change_id: int) -> None:
        self._failures.pop(change_id, None)
        self._until.pop(change_id, None)


# -- routing changes -------------------------------------------------------------------------------


def route_changes(
    store: Database, settings: Settings, now: float, limit: int, *, quarantine: Quarantine | None = None
) -> int:
    """Route up to ``limit`` unprocessed changes, oldest first, one transaction each; returns how
    many were routed. A change whose routing raised is logged and left for later (``Quarantine``)."""
    done = 0
    quarantine = quarantine if quarantine is not None else Quarantine()
    with store.read() as conn:
        if not outbox.has_pending_change(conn, quarantine.skipped(now)):
            return 0
    more = True
    while more and done < limit:
        claimed: int | None = None
        try:
            with store.write() as conn:
                change = outbox.claim_change(conn, quarantine.skipped(now))
                if change is None:
                    return done
                claimed = change.id
                _route(conn, settings, change, now)
                outbox.mark_processed(conn, change.id, now)
                # asked here, not by another claim: an idle end costs no transaction of its own
                more = outbox.has_pending_change(conn, quarantine.skipped(now))
        except Exception:
            if claimed is None:
                raise  # the claim itself failed: the database, not this change
            logger.exception("routing notification change %s failed; it is retried later", claimed)
            quarantine.failed(claimed, now)
            continue
        quarantine.done(claimed)
        done += 1
    return done


def _route(conn: sa.Connection, settings: Settings, change: outbox.Change, now: float) -> None:
    audit.lock_tenant(conn, change.client_id)
    incident = get_incident(conn, change.client_id, change.incident_id)
    if incident is None:
        logger.warning("notification change %s: incident %s is gone", change.id, change.incident_id)
        return
    view = TenantView(conn, change.client_id, settings, now)
    labels = incident_labels(incident)
    matches = match_routes(view.root, labels)
    if change.kind in _GROUPED:
        _place(conn, incident, labels, matches, min(change.at, now))
    else:
        _notify_now(view, change, incident, labels, matches)


def _member_status(incident: Incident) -> str:
    return "resolved" if incident.status is IncidentStatus.RESOLVED else "firing"


def _place(
    conn: sa.Connection,
    incident: Incident,
    labels: dict[str, str],
    matches: list[RouteMatch],
    happened_at: float,
) -> None:
    """``happened_at``: when the change happened. A group created now counts its ``group_wait``
    from then, so a backlog routed late (the pipeline was down) is not held a second time, and
    members are ordered by it (a message lists the oldest first)."""
    status = _member_status(incident)
    client_id = incident.client_id
    by_route = {m.route_id: m for m in matches}
    if status == "firing":
        for match in matches:
            key, group_labels = group_key(match, labels)
            group = outbox.lock_group(conn, client_id, match.route_id, key, group_labels, happened_at)
            _set(conn, group, match, incident.id, status, happened_at)
        return
    for group_id in outbox.groups_of(conn, client_id, incident.id):
        member_of = outbox.lock_group_by_id(conn, group_id)
        if member_of is not None:  # its timings: the route as the incident reaches it now (or the first)
            _set(
                conn,
                member_of,
                by_route.get(member_of.route_id, matches[0]),
                incident.id,
                status,
                happened_at,
            )


def _set(
    conn: sa.Connection, group: outbox.GroupRow, match: RouteMatch, incident_id: str, status: str, at: float
) -> None:
    """The member's new status (changed ``at``), and the group's next flush if it moved."""
    previous = outbox.set_member(conn, group.id, group.client_id, incident_id, status, at)
    if previous == status:
        return
    state = GroupState(
        group.created_at, group.next_flush_at, group.sent_firing, group.sent_resolved, group.sent_at
    )
    due = on_member_change(state, match, at)
    if due != group.next_flush_at:
        outbox.set_next_flush(conn, group.id, due)


def _notify_now(
    view: TenantView,
    change: outbox.Change,
    incident: Incident,
    labels: dict[str, str],
    matches: list[RouteMatch],
) -> None:
    kind: NotificationKind = change.kind  # type: ignore[assignment]  # escalated | acknowledged | approval
    for match in matches:
        if kind not in match.notify_on:
            continue
        suppression = view.verdict(match, labels, kind)
        message = incident_message(
            view.conn,
            incident=incident,
            kind=kind,
            detail=change.detail,
            template=match.template,
            public_url=view.settings.public_url,
            now=view.now,
        )
        create_deliveries(
            view.conn,
            view.settings,
            message,
            receivers=match.receivers,
            cause=f"change:{change.id}",
            now=view.now,
            incident_id=incident.id,
            route_id=match.route_id,
            suppressed_by=None if suppression.verdict == "send" else describe(suppression),
        )


# -- escalation policies ---------------------------------------------------------------------------


def _episode_start(incident: Incident) -> float:
    """When the incident's current episode began: its last reopening, else its opening."""
    return max(incident.opened_at, *incident.reopened_at) if incident.reopened_at else incident.opened_at


def escalate(store: Database, settings: Settings, now: float) -> int:
    """Fire the escalation-policy steps that are due: for each unacknowledged incident still going,
    each route it matches with an ``escalation`` policy, each step past its ``after`` and not yet
    fired. Returns how many steps fired. A step fires once per incident (``notify_escalations``);
    one that would be suppressed is recorded as a ``suppressed`` delivery and fires when it no
    longer is. A tenant whose steps fail is logged and tried again at the next look; the others go on."""
    with store.read() as conn:
        tenants = notify_inputs.routed_tenants(conn)
    fired = 0
    for client_id in tenants:
        try:
            fired += _escalate_tenant(store, settings, client_id, now)
        except Exception:
            logger.exception("escalation steps of tenant %s failed; retrying at the next look", client_id)
    return fired


def _escalate_tenant(store: Database, settings: Settings, client_id: str, now: float) -> int:
    with store.read() as conn:
        view = TenantView(conn, client_id, settings, now)
        longest = _longest_step(view)
        if longest is None:
            return 0
        candidates = notify_inputs.unacknowledged(conn, client_id, now - longest - ESCALATION_HORIZON_S)
        due = [
            (incident, match, step)
            for incident in candidates
            for match in match_routes(view.root, incident_labels(incident))
            if match.escalation
            for step in due_escalations(
                match,
                _episode_start(incident),
                False,
                deliveries.fired_steps(conn, incident.id, match.route_id),
                now,
            )
        ]
    fired = 0
    for incident, match, step in due:
        with store.write() as conn:
            fired += _fire(TenantView(conn, client_id, settings, now), incident, match, step)
    return fired


def _longest_step(view: TenantView) -> float | None:
    """The longest ``after`` of any escalation step in the tenant's tree; None when it has none."""
    longest: float | None = None
    stack = [view.root]
    while stack:
        route = stack.pop()
        for step in route.escalation:
            longest = max(longest or 0.0, step.after_s)
        stack.extend(route.routes)
    return longest


def _fire(view: TenantView, incident: Incident, match: RouteMatch, step: int) -> int:
    spec = match.escalation[step]
    labels = incident_labels(incident)
    suppression = view.verdict(match, labels, "escalation")
    detail: dict[str, Any] = {"step": step + 1, "after_s": spec.after_s, "route_id": match.route_id}
    message = incident_message(
        view.conn,
        incident=incident,
        kind="escalation",
        detail=detail,
        template=match.template,
        public_url=view.settings.public_url,
        now=view.now,
    )
    where = f"{incident.id}:{match.route_id}:{step}"
    if suppression.verdict != "send":
        create_deliveries(
            view.conn,
            view.settings,
            message,
            receivers=spec.receivers,
            cause=f"suppressed:escalation:{where}",
            now=view.now,
            incident_id=incident.id,
            route_id=match.route_id,
            suppressed_by=describe(suppression),
        )
        return 0
    if not deliveries.fire_step(view.conn, incident.client_id, incident.id, match.route_id, step, view.now):
        return 0  # another process fired it
    create_deliveries(
        view.conn,
        view.settings,
        message,
        receivers=spec.receivers,
        cause=f"escalation:{where}",
        now=view.now,
        incident_id=incident.id,
        route_id=match.route_id,
    )
    return 1


# -- approval requests -----------------------------------------------------------------------------


def request_approval(
    conn: sa.Connection, client_id: str, incident_id: str, detail: dict[str, Any], now: float
) -> int:
    """Ask people to approve an action on the incident (the responder, in its own transaction):
    an ``approval`` change, notified at once to the routes that notify on ``approval``, never
    suppressed. ``detail`` says what (action, parameters, expiry, link). Returns the change id."""
    return outbox.enqueue_change(conn, client_id, incident_id, "approval", now, detail)
