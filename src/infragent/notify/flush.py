"""Group flushes: a due aggregation group → suppression verdicts → the flush decision → one
delivery per receiver, with the group's notification log advanced in the same transaction.

One transaction per group, holding the group's row (``outbox.claim_due_group``): the deliveries
(cause ``group:<id>:<flush number>``), the log (``sent_firing``, ``sent_resolved``, ``sent_at``,
``flush_count``, ``next_flush_at``) and the members dropped commit together. A process that dies
before the commit leaves the group due, and the next flush has the same number, so its deliveries
are the same rows; after the commit, the log says what was sent, and a restarted or second
process decides from it (Alertmanager's *nflog*): nothing is sent twice.

Members are read with their incidents, and an incident's current status wins over the member
row (a resolution not routed yet is a resolution); a member whose incident is gone is dropped.

Suppression (silences, inhibition, the route's mute and active times) is judged per member at
flush time. The decision is made on the members that are not suppressed, so a silenced incident
is not in the log and is sent when its silence ends. When suppression is what stopped a send (the
decision over every member would send), one ``suppressed`` delivery per receiver records it with
``suppressed_by``; its cause names the digest of the suppressed members and their states
(``suppressed:<group>:<digest>``), so one suppressed state is recorded once, not at every
interval. The log does not advance for it. A group with suppressed members is looked at again
after ``group_interval`` (or when the earliest silence involved ends, if sooner).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from infragent.config import Settings
from infragent.incidents.model import Incident, IncidentStatus
from infragent.notify.fanout import TenantView, create_deliveries, describe
from infragent.notify.grouping import Flush, GroupState, Member, MemberStatus, decide_flush, hold
from infragent.notify.model import RouteMatch, Suppression
from infragent.notify.route import incident_labels, match_routes
from infragent.notify.snapshot import group_message
from infragent.store import notify_inputs, outbox
from infragent.store.base import Database

logger = logging.getLogger(__name__)

#: A group whose flush raised is looked at again after this long (it must not block the others).
FAILED_FLUSH_RETRY_S = 30.0


def flush_due(store: Database, settings: Settings, now: float, limit: int) -> int:
    """Flush up to ``limit`` due groups, one transaction each; returns how many were looked at."""
    with store.read() as conn:
        if not outbox.has_due_group(conn, now):
            return 0
    done = 0
    more = True
    while more and done < limit:
        claimed: str | None = None
        try:
            with store.write() as conn:
                group = outbox.claim_due_group(conn, now)
                if group is None:
                    return done
                claimed = group.id
                flush_group(conn, settings, group, now)
                more = outbox.has_due_group(conn, now)  # this one is no longer due (``_sooner``)
        except Exception:
            if claimed is None:
                raise  # the claim itself failed: the database, not this group
            logger.exception("flushing notification group %s failed; retrying it later", claimed)
            with store.write() as conn:
                outbox.set_next_flush(conn, claimed, now + FAILED_FLUSH_RETRY_S)
        done += 1
    return done


def _status(incident: Incident) -> MemberStatus:
    return "resolved" if incident.status is IncidentStatus.RESOLVED else "firing"


def _find_match(view: TenantView, route_id: str, labels: Iterable[dict[str, str]]) -> RouteMatch | None:
    """The group's route as the members' labels reach it now (None: no member reaches it)."""
    for one in labels:
        for match in match_routes(view.root, one):
            if match.route_id == route_id:
                return match
    return None


def _digest(held: Mapping[str, str]) -> str:
    text = ",".join(f"{i}:{s}" for i, s in sorted(held.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flush_group(conn: sa.Connection, settings: Settings, group: outbox.GroupRow, now: float) -> None:
    """Flush one claimed group (the module docstring says how)."""
    view = TenantView(conn, group.client_id, settings, now)
    rows = outbox.members(conn, group.id)
    found = notify_inputs.incidents_by_id(conn, group.client_id, [r.incident_id for r in rows])
    gone = [r.incident_id for r in rows if r.incident_id not in found]
    members: list[Member] = []
    for r in rows:
        if r.incident_id in found:
            status = _status(found[r.incident_id])
            if status != r.status:
                outbox.set_member(conn, group.id, group.client_id, r.incident_id, status, now)
            members.append(Member(r.incident_id, status, r.changed_at))
    labels = {m.incident_id: incident_labels(found[m.incident_id]) for m in members}
    match = _find_match(view, group.route_id, labels.values())
    if match is None:
        if members:
            logger.info(
                "notification group %s: route %s no longer matches its members", group.id, group.route_id
            )
        outbox.drop_members(conn, group.id, gone)
        outbox.set_next_flush(conn, group.id, None)
        return
    verdicts = {m.incident_id: view.verdict(match, labels[m.incident_id], m.status) for m in members}
    held = {m.incident_id: m.status for m in members if verdicts[m.incident_id].verdict != "send"}
    state = GroupState(
        group.created_at, group.next_flush_at, group.sent_firing, group.sent_resolved, group.sent_at
    )
    ends = _silence_end(view, [verdicts[i] for i, s in held.items() if s == "firing"], now)
    flush = decide_flush(state, members, match, now, suppressed=held)
    if flush is not None:
        n = group.flush_count + 1
        _deliver(conn, settings, group, match, flush, found, now, cause=f"group:{group.id}:{n}")
        outbox.record_flush(
            conn,
            group.id,
            sent_firing=flush.firing,
            sent_resolved=flush.resolved,
            sent_at=now,
            flush_count=n,
            next_flush_at=_sooner(flush.next_flush_at, ends, match, now),
            drop=[*flush.drop, *gone],
        )
        return
    would = decide_flush(state, members, match, now) if held else None
    shown = {i: held[i] for i in (*would.firing, *would.resolved) if i in held} if would is not None else {}
    if would is not None and shown:
        reasons = "; ".join(dict.fromkeys(describe(verdicts[i]) for i in shown))
        cause = f"suppressed:{group.id}:{_digest(shown)}"
        _deliver(conn, settings, group, match, would, found, now, cause=cause, suppressed_by=reasons[:200])
    kept = hold(state, members, match, now, suppressed=held)
    outbox.record_hold(
        conn,
        group.id,
        sent_firing=kept.sent_firing,
        sent_resolved=state.sent_resolved - set(kept.drop),
        next_flush_at=_sooner(kept.next_flush_at, ends, match, now),
        drop=[*kept.drop, *gone],
    )


def _deliver(
    conn: sa.Connection,
    settings: Settings,
    group: outbox.GroupRow,
    match: RouteMatch,
    flush: Flush,
    found: dict[str, Incident],
    now: float,
    *,
    cause: str,
    suppressed_by: str | None = None,
) -> None:
    message = group_message(
        conn,
        client_id=group.client_id,
        kind=flush.kind,
        firing=[found[i] for i in flush.firing],
        resolved=[found[i] for i in flush.resolved],
        group_labels=group.group_labels,
        template=match.template,
        public_url=settings.public_url,
        now=now,
    )
    create_deliveries(
        conn,
        settings,
        message,
        receivers=match.receivers,
        cause=cause,
        now=now,
        group_id=group.id,
        route_id=match.route_id,
        suppressed_by=suppressed_by,
    )


def _silence_end(view: TenantView, held_firing: list[Suppression], now: float) -> float | None:
    """When the earliest silence holding back a firing member ends (None: no silence does), so the
    group is looked at again then rather than up to a ``group_interval`` later."""
    ends = {s.id: s.ends_at for s in view.silences}
    found = [ends[s.by] for s in held_firing if s.verdict == "silenced" and s.by in ends]
    return max(min(found), now) if found else None


def _sooner(a: float | None, b: float | None, match: RouteMatch, now: float) -> float | None:
    """The earlier of two due times (None: not due); never ``now`` or before, which would flush the
    group again in the same round for nothing."""
    due = min((t for t in (a, b) if t is not None), default=None)
    if due is None or math.isnan(due):
        return None
    return due if due > now else now + match.group_interval_s
