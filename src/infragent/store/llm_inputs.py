"""Reading what the LLM may be shown about an incident on a host (``responder.context.ContextInputs``).

Why one read function: the context is only as bounded as its inputs, so the bounds live where the
rows are read, one query per kind, newest first, limited to what ``build_context`` would show
anyway; ``build_context`` then caps the bytes. Reads only: asking the LLM changes nothing.

What is read, all scoped by ``client_id`` (another tenant's incident reads as missing):

* the incident and its timeline (``store/incident_reads.py``);
* the host's recent events: those its agent or SDK instance (``node_id``) reported up to ``now``;
* 15-minute summaries of the host's metric series (``metric_series.host`` is the reporting
  ``node_id``): count, min, avg, max and last of the raw samples in ``[now - 900, now]``;
* the actions tried on the host: ``action_history`` rows (automatic actions of runbook runs, with
  the target and parameters of their command), the other commands sent to the host's agent (the
  legacy responder's, people's remote control) and its decisions that sent nothing (``escalate``,
  ``none``), oldest first;
* the host's allowlist as its agent reported it (none when the host never registered one).

The raw values go into ``ContextInputs`` as stored: redaction happens once, in ``build_context``.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa

from infragent.incidents.core import IncidentNotFoundError
from infragent.model import ActionSpec, Event
from infragent.responder.context import (
    MAX_EVENTS,
    MAX_HISTORY,
    MAX_METRICS,
    MAX_TIMELINE,
    ContextInputs,
    MetricSummary,
    PastAction,
)
from infragent.store import agents as agent_rows
from infragent.store import incident_reads
from infragent.store.events import event_from_row
from infragent.store.metrics import reads as metric_reads
from infragent.store.runbook_schema import action_history
from infragent.store.schema import agents, commands, decisions, events, metric_series

#: The window of the metric summaries (issue #14: "15-minute metric summaries of the host").
METRIC_WINDOW_S: Final = 15 * 60.0


def read_context_inputs(
    conn: sa.Connection, client_id: str, incident_id: str, node_id: str, question: str, now: float
) -> ContextInputs:
    """The inputs of the LLM context for ``incident_id`` on host ``node_id`` as of ``now``.

    Raises ``IncidentNotFoundError`` when the tenant has no such incident.
    """
    incident = incident_reads.get_incident(conn, client_id, incident_id)
    if incident is None:
        raise IncidentNotFoundError(incident_id)
    entries = [r.entry for r in incident_reads.timeline(conn, client_id, incident_id)]
    agent = agent_rows.get_agent(conn, client_id, node_id)
    allowed: dict[str, ActionSpec] = {a.name: a for a in agent.actions} if agent is not None else {}
    return ContextInputs(
        incident=incident,
        timeline=[e for e in entries if e.at <= now][-MAX_TIMELINE:],
        events=recent_events(conn, client_id, node_id, now),
        metrics=metric_summaries(conn, client_id, node_id, now),
        history=past_actions(conn, client_id, node_id, now),
        allowed=allowed,
        question=question,
        node_id=node_id,
    )


def recent_events(conn: sa.Connection, client_id: str, node_id: str, now: float) -> list[Event]:
    """The newest ``MAX_EVENTS`` events the host reported up to ``now``, oldest first."""
    rows = conn.execute(
        sa.select(events, agents.c.node_id)
        .join(agents, agents.c.id == events.c.agent_id)
        .where(events.c.client_id == client_id, agents.c.node_id == node_id, events.c.received_at <= now)
        .order_by(events.c.received_at.desc(), events.c.id)
        .limit(MAX_EVENTS)
    ).all()
    return [event_from_row(r, r.node_id) for r in reversed(rows)]


def metric_summaries(conn: sa.Connection, client_id: str, node_id: str, now: float) -> list[MetricSummary]:
    """Each of the host's series with samples in the last 15 minutes, by name and labels.

    At most ``MAX_METRICS`` series are looked at (a host with thousands of series would otherwise
    cost a read each); series without a sample in the window are left out.
    """
    s = metric_series.c
    found = conn.execute(
        sa.select(s.id, s.name, s.labels)
        .where(s.client_id == client_id, s.host == node_id)
        .order_by(s.name, s.labels_key)
        .limit(MAX_METRICS)
    ).all()
    out = []
    for sid, name, labels in found:
        _ts, values = metric_reads.chunk_samples(conn, int(sid), now - METRIC_WINDOW_S, now)
        if len(values) == 0:
            continue
        out.append(
            MetricSummary(
                name=name,
                labels=dict(labels),
                min=float(values.min()),
                avg=float(values.mean()),
                max=float(values.max()),
                last=float(values[-1]),
                count=len(values),
            )
        )
    return out


def past_actions(conn: sa.Connection, client_id: str, node_id: str, now: float) -> list[PastAction]:
    """The newest ``MAX_HISTORY`` actions tried on the host up to ``now``, oldest first (see the
    module docstring for the three sources); shadow (never sent) actions are left out."""
    h = action_history.c
    automatic = conn.execute(
        sa.select(h.at, h.action, h.outcome, h.runbook, h.command_id, commands.c.target, commands.c.params)
        .select_from(
            action_history.outerjoin(
                commands, sa.and_(commands.c.id == h.command_id, commands.c.client_id == client_id)
            )
        )
        .where(h.client_id == client_id, h.node_id == node_id, h.at <= now, sa.not_(h.shadow))
        .order_by(h.at.desc(), h.id.desc())
        .limit(MAX_HISTORY)
    ).all()
    seen = {r.command_id for r in automatic if r.command_id is not None}
    found = [
        (r.at, PastAction(r.at, r.action, r.target, _params(r.params), r.outcome, r.runbook))
        for r in automatic
    ]
    sent = conn.execute(
        sa.select(commands.c.id, commands.c.created_at, commands.c.action, commands.c.target)
        .add_columns(commands.c.params, commands.c.status, decisions.c.source)
        .join(agents, agents.c.id == commands.c.agent_id)
        .join(decisions, decisions.c.id == commands.c.decision_id)
        .where(commands.c.client_id == client_id, agents.c.node_id == node_id, commands.c.created_at <= now)
        .order_by(commands.c.created_at.desc(), commands.c.id)
        .limit(MAX_HISTORY)
    ).all()
    found += [
        (r.created_at, PastAction(r.created_at, r.action, r.target, _params(r.params), r.status, None))
        for r in sent
        if r.id not in seen
    ]
    passive = conn.execute(
        sa.select(decisions.c.created_at, decisions.c.action, decisions.c.source)
        .join(agents, agents.c.id == decisions.c.agent_id)
        .outerjoin(commands, commands.c.decision_id == decisions.c.id)
        .where(
            decisions.c.client_id == client_id,
            agents.c.node_id == node_id,
            decisions.c.created_at <= now,
            commands.c.id.is_(None),
        )
        .order_by(decisions.c.created_at.desc(), decisions.c.id)
        .limit(MAX_HISTORY)
    ).all()
    found += [
        (r.created_at, PastAction(r.created_at, r.action, None, {}, f"decided by {r.source}", None))
        for r in passive
    ]
    found.sort(key=lambda pair: pair[0])
    return [p for _, p in found[-MAX_HISTORY:]]


def _params(value: Any) -> dict[str, str]:
    """Stored parameters as strings (None: the command row is gone, or there was none)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}
