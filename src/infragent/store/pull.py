"""Pull-mode command queue: agents that accept no inbound connection fetch their commands here.

Kept apart from ``sql.py`` (claims and decisions) because it is the agent's side of the exchange;
it shares the store's transactions and audit chain.
"""

from __future__ import annotations

import sqlalchemy as sa

from infragent.model import ActionResult
from infragent.store.records import Claim, PulledCommand
from infragent.store.schema import agents, clients, commands, decisions, events
from infragent.store.sql import COMMAND_STATUS, SqlStore


class PullQueue:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def queue(self, claim: Claim, command_id: str, now: float, actor: str) -> None:
        """Leave a decided command queued; it is signed and handed over when the agent polls."""
        with self.store.write() as conn:
            self.store.check_lease(conn, claim, now)
            self.store.append_audit(
                conn,
                claim.client.id,
                actor,
                "command.queued",
                command_id,
                {"node_id": claim.agent.node_id},
                now,
            )

    def take(
        self, client_id: str, node_id: str, now: float, ttl_s: float, limit: int = 10
    ) -> list[PulledCommand]:
        """Hand the agent its queued commands (marking them sent); expire those older than ``ttl_s``."""
        q = (
            sa.select(commands, decisions.c.rationale)
            .join(agents, agents.c.id == commands.c.agent_id)
            .join(decisions, decisions.c.id == commands.c.decision_id)
            .where(
                agents.c.client_id == client_id, agents.c.node_id == node_id, commands.c.status == "queued"
            )
            .order_by(commands.c.created_at)
            .limit(limit)
        )
        if self.store.is_postgres:
            q = q.with_for_update(skip_locked=True, of=commands)
        out: list[PulledCommand] = []
        with self.store.write() as conn:
            rows = conn.execute(q).all()
            if not rows:
                return out
            secret = conn.execute(
                sa.select(clients.c.webhook_secret).where(clients.c.id == client_id)
            ).scalar_one()
            for row in rows:
                expired = row.created_at < now - ttl_s
                conn.execute(
                    commands.update()
                    .where(commands.c.id == row.id)
                    .values(status="expired" if expired else "sent", sent_at=now)
                )
                kind = "command.expired" if expired else "command.sent"
                self.store.append_audit(
                    conn, client_id, f"agent:{node_id}", kind, row.id, {"mode": "pull"}, now
                )
                if expired:
                    continue
                event_ids = conn.execute(
                    sa.select(events.c.id)
                    .where(events.c.decision_id == row.decision_id)
                    .order_by(events.c.received_at)
                ).scalars()
                payload = {
                    "command_id": row.id,
                    "action": row.action,
                    "target": row.target,
                    "params": dict(row.params),
                    "event_ids": list(event_ids),
                    "reason": row.rationale,
                    "issued_at": now,
                    "expires_at": row.created_at + ttl_s,
                }
                out.append(PulledCommand(row.id, secret, payload))
        return out

    def record_result(
        self, client_id: str, command_id: str, result: ActionResult, now: float, actor: str
    ) -> bool:
        """Store a result the agent reported; False when the command is not this client's.

        A repeated report (the agent retried after a lost answer) changes nothing.
        """
        with self.store.write() as conn:
            row = conn.execute(
                sa.select(commands.c.status).where(
                    commands.c.id == command_id, commands.c.client_id == client_id
                )
            ).first()
            if row is None:
                return False
            if row.status in ("sent", "queued"):
                conn.execute(
                    commands.update()
                    .where(commands.c.id == command_id)
                    .values(
                        status=COMMAND_STATUS[result.status],
                        finished_at=now,
                        attempts=result.attempts,
                        output=result.output[:10_000],
                    )
                )
                detail = {"status": result.status, "output": result.output[:2_000], "mode": "pull"}
                self.store.append_audit(conn, client_id, actor, "command.result", command_id, detail, now)
        return True
