"""The responder's ``WorkQueue`` over the database: claims, decisions and commands as work items.

Why an adapter and not the responder calling store modules: the responder is written against
``responder/ports.py`` only; claims stay per agent, and what makes them incident work (each event's
incident, which incidents are already decided, the decision stored on its incident) is added here
and in the store modules it calls. Each method is one write transaction fenced by the item's lease.
"""

from __future__ import annotations

from infragent.model import ActionResult, Decision
from infragent.responder.ports import WorkItem
from infragent.responder.steps import IncidentFacts, StepRunbook
from infragent.store import claims, commands, remediation, runs
from infragent.store.base import Database
from infragent.store.records import Claim
from infragent.wire.commands import Command


def work_item(claim: Claim, decided: frozenset[str] = frozenset()) -> WorkItem:
    """What the responder sees of a claim: the agent is the leased key, the token the lease;
    ``decided``: the incidents of its events that already have a decision this episode."""
    return WorkItem(
        key=claim.agent.id,
        lease=claim.token,
        client_id=claim.client.id,
        node_id=claim.agent.node_id,
        command_mode=claim.agent.command_mode,
        actions=claim.agent.actions,
        webhook_url=claim.client.webhook_url,
        webhook_secret=claim.client.webhook_secret,
        events=claim.events,
        prior=claim.prior,
        decided=decided,
    )


class SqlWorkQueue:
    """Implements ``responder.ports.WorkQueue``; one instance per responder (it holds no state)."""

    def __init__(self, db: Database, max_events: int = 1000) -> None:
        self.db = db
        self.max_events = max_events

    def claim_next(self, worker: str, lease_s: float, now: float) -> WorkItem | None:
        with self.db.write() as conn:
            claim = claims.claim(conn, worker, lease_s, now, self.max_events)
            if claim is None:
                return None
            incident_ids = (e.incident_id for e in claim.events if e.incident_id is not None)
            decided = remediation.decided_incidents(conn, claim.client.id, incident_ids)
        return work_item(claim, decided)

    def renew(self, item: WorkItem, now: float, lease_s: float) -> None:
        with self.db.write() as conn:
            claims.check_lease(conn, item.key, item.lease, now, extend_s=lease_s)

    def record_decision(self, item: WorkItem, decision: Decision, now: float, actor: str) -> str | None:
        with self.db.write() as conn:
            claims.check_lease(conn, item.key, item.lease, now)
            _, command_id = commands.record_decision(
                conn,
                client_id=item.client_id,
                agent_id=item.key,
                event_ids=item.event_ids,
                decision=decision,
                now=now,
                actor=actor,
                incident_id=item.incident_id,
            )
        return command_id

    def start_run(
        self, item: WorkItem, runbook: StepRunbook, facts: IncidentFacts, now: float, actor: str
    ) -> str:
        with self.db.write() as conn:
            claims.check_lease(conn, item.key, item.lease, now)
            return runs.insert_run(
                conn,
                client_id=item.client_id,
                runbook=runbook,
                facts=facts,
                node_id=item.node_id,
                incident_id=item.incident_id,
                now=now,
                actor=actor,
            )

    def mark_sent(self, item: WorkItem, command_id: str, now: float, actor: str, url: str) -> Command:
        with self.db.write() as conn:
            claims.check_lease(conn, item.key, item.lease, now)
            return commands.mark_sent(conn, item.client_id, command_id, now, actor, url)

    def record_result(
        self, item: WorkItem, command_id: str, result: ActionResult, now: float, actor: str
    ) -> None:
        with self.db.write() as conn:
            commands.record_result(conn, item.client_id, command_id, result, now, actor, mode="push")

    def queue_for_pull(self, item: WorkItem, command_id: str, now: float, actor: str) -> None:
        with self.db.write() as conn:
            claims.check_lease(conn, item.key, item.lease, now)
            commands.queue_for_pull(conn, item.client_id, command_id, item.node_id, now, actor)

    def complete(
        self, item: WorkItem, now: float, cooldown_until: float | None, actor: str, outcome: str
    ) -> None:
        with self.db.write() as conn:
            claims.release(
                conn,
                client_id=item.client_id,
                agent_id=item.key,
                token=item.lease,
                event_ids=item.event_ids,
                now=now,
                cooldown_until=cooldown_until,
                actor=actor,
                outcome=outcome,
                joined=[(e.id, e.incident_id) for e in item.joined],
            )

    def next_due(self, now: float) -> float | None:
        with self.db.read() as conn:
            return claims.next_due(conn, now)
