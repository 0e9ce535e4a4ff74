"""SqlStore: clients, keys, agents, events, decisions, commands and the audit log over SQLAlchemy Core.

Why claims are per agent: the cooldown and the coalescing of events are per agent, so one responder
owns all of an agent's pending events at a time. PostgreSQL picks free agents with
``FOR UPDATE SKIP LOCKED``; SQLite serializes claimers with ``BEGIN IMMEDIATE``. Both then write a
lease (owner, token, expiry): a responder that dies leaves the agent to be claimed again once the
lease expires, and every later write checks the token, so a late writer cannot finish a claim it lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa

from infragent import signing
from infragent.auth import apikeys
from infragent.errors import StoreError
from infragent.model import ActionResult, ActionSpec, Decision, Event, Severity
from infragent.store import audit as audit_chain
from infragent.store.records import (
    AgentRecord,
    AuditRecord,
    Claim,
    ClientRecord,
    EventDetail,
    KeyRecord,
    PriorDecision,
    Registration,
)
from infragent.store.schema import agents, api_keys, audit_log, clients, commands, decisions, events

NOTIFY_CHANNEL = "infragent_events"
COMMAND_STATUS = {
    "ok": "done",
    "error": "failed",
    "rejected": "rejected",
    "timeout": "failed",
    "unreachable": "failed",
}


class LeaseLostError(StoreError):
    """The claim's lease expired and another responder took the agent over."""


def _new_id() -> str:
    return str(uuid.uuid4())


def _client(row: sa.Row[Any]) -> ClientRecord:
    return ClientRecord(
        row.id, row.email, row.company_name, row.webhook_url, row.webhook_secret, row.created_at
    )


def _agent(row: sa.Row[Any]) -> AgentRecord:
    specs = tuple(
        ActionSpec(a["name"], dict(a.get("params", {})), a.get("description", "")) for a in row.actions
    )
    return AgentRecord(
        row.id,
        row.client_id,
        row.node_id,
        row.kind,
        row.command_mode,
        specs,
        row.last_seen,
        row.cooldown_until,
    )


def _event(row: sa.Row[Any], node_id: str) -> Event:
    return Event(
        row.id,
        row.client_id,
        row.agent_id,
        node_id,
        row.type,
        row.service,
        Severity(row.severity),
        dict(row.data),
        row.received_at,
        row.processed_at,
    )


def _audit(row: sa.Row[Any]) -> AuditRecord:
    return AuditRecord(
        row.id,
        row.client_id,
        row.at,
        row.actor,
        row.kind,
        row.subject,
        dict(row.detail),
        row.prev_hash,
        row.hash,
    )


class SqlStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(infragent_readonly=True) as conn:
            yield conn

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- audit -------------------------------------------------------------------------------------

    def append_audit(
        self,
        conn: sa.Connection,
        client_id: str,
        actor: str,
        kind: str,
        subject: str,
        detail: dict[str, Any],
        now: float,
    ) -> None:
        if self.is_postgres:  # one writer per client chain at a time
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:c))"), {"c": client_id})
        prev = (
            conn.execute(
                sa.select(audit_log.c.hash)
                .where(audit_log.c.client_id == client_id)
                .order_by(audit_log.c.id.desc())
                .limit(1)
            ).scalar()
            or audit_chain.GENESIS
        )
        digest = audit_chain.entry_hash(prev, now, actor, kind, subject, detail)
        conn.execute(
            audit_log.insert().values(
                client_id=client_id,
                at=now,
                actor=actor,
                kind=kind,
                subject=subject,
                detail=detail,
                prev_hash=prev,
                hash=digest,
            )
        )

    def audit_entries(self, client_id: str, subjects: Sequence[str] | None = None) -> list[AuditRecord]:
        q = sa.select(audit_log).where(audit_log.c.client_id == client_id).order_by(audit_log.c.id)
        if subjects is not None:
            q = q.where(audit_log.c.subject.in_(list(subjects)))
        with self._read() as conn:
            return [_audit(r) for r in conn.execute(q)]

    # -- clients and keys ----------------------------------------------------------------------------

    def create_client(self, email: str, company_name: str, webhook_url: str, now: float) -> Registration:
        client = ClientRecord(_new_id(), email, company_name, webhook_url, signing.new_secret(), now)
        key = apikeys.generate()
        with self.write() as conn:
            conn.execute(clients.insert().values(**asdict(client)))
            conn.execute(
                api_keys.insert().values(
                    key_id=key.key_id,
                    client_id=client.id,
                    secret_hash=key.secret_hash,
                    scopes=["ingest", "read", "admin"],
                    created_at=now,
                )
            )
            self.append_audit(
                conn,
                client.id,
                "api",
                "client.registered",
                client.id,
                {"email": email, "company_name": company_name, "key_id": key.key_id},
                now,
            )
        return Registration(client=client, api_key=key.plaintext)

    def get_client(self, client_id: str) -> ClientRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(clients).where(clients.c.id == client_id)).first()
        return _client(row) if row else None

    def get_key(self, key_id: str) -> KeyRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        return KeyRecord(
            row.key_id, row.client_id, row.secret_hash, tuple(row.scopes), row.revoked_at is not None
        )

    # -- agents --------------------------------------------------------------------------------------

    def _ensure_agent(self, conn: sa.Connection, client_id: str, node_id: str, now: float) -> str:
        found = conn.execute(
            sa.select(agents.c.id).where(agents.c.client_id == client_id, agents.c.node_id == node_id)
        ).scalar()
        if found is not None:
            conn.execute(agents.update().where(agents.c.id == found).values(last_seen=now))
            return str(found)
        agent_id = _new_id()
        conn.execute(
            agents.insert().values(
                id=agent_id,
                client_id=client_id,
                node_id=node_id,
                kind="sdk",
                command_mode="push",
                actions=[],
                labels={},
                last_seen=now,
            )
        )
        return agent_id

    def register_agent(
        self,
        client_id: str,
        node_id: str,
        *,
        kind: str,
        command_mode: str,
        actions: Sequence[ActionSpec],
        labels: dict[str, str],
        now: float,
    ) -> AgentRecord:
        with self.write() as conn:
            agent_id = self._ensure_agent(conn, client_id, node_id, now)
            conn.execute(
                agents.update()
                .where(agents.c.id == agent_id)
                .values(
                    kind=kind,
                    command_mode=command_mode,
                    labels=labels,
                    actions=[
                        {"name": a.name, "params": a.params, "description": a.description} for a in actions
                    ],
                )
            )
            self.append_audit(
                conn,
                client_id,
                "api",
                "agent.registered",
                agent_id,
                {"node_id": node_id, "actions": [a.name for a in actions]},
                now,
            )
            row = conn.execute(sa.select(agents).where(agents.c.id == agent_id)).one()
        return _agent(row)

    def get_agent(self, client_id: str, node_id: str) -> AgentRecord | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(agents).where(agents.c.client_id == client_id, agents.c.node_id == node_id)
            ).first()
        return _agent(row) if row else None

    # -- events --------------------------------------------------------------------------------------

    def insert_event(
        self,
        client_id: str,
        *,
        type: str,
        service: str,
        severity: Severity,
        data: dict[str, Any],
        node_id: str,
        now: float,
    ) -> Event:
        event_id = _new_id()
        with self.write() as conn:
            agent_id = self._ensure_agent(conn, client_id, node_id, now)
            conn.execute(
                events.insert().values(
                    id=event_id,
                    client_id=client_id,
                    agent_id=agent_id,
                    type=type,
                    service=service,
                    severity=severity.value,
                    data=data,
                    received_at=now,
                )
            )
            self.append_audit(
                conn,
                client_id,
                "api",
                "event.received",
                event_id,
                {"type": type, "service": service, "severity": severity.value, "node_id": node_id},
                now,
            )
            if self.is_postgres:
                conn.execute(sa.text("SELECT pg_notify(:ch, :p)"), {"ch": NOTIFY_CHANNEL, "p": event_id})
        return Event(event_id, client_id, agent_id, node_id, type, service, severity, data, now)

    def list_events(self, client_id: str, status: str | None = None, limit: int = 100) -> list[Event]:
        q = (
            sa.select(events, agents.c.node_id)
            .join(agents, agents.c.id == events.c.agent_id)
            .where(events.c.client_id == client_id)
            .order_by(events.c.received_at.desc())
            .limit(limit)
        )
        if status == "pending":
            q = q.where(events.c.processed_at.is_(None))
        elif status == "processed":
            q = q.where(events.c.processed_at.is_not(None))
        with self._read() as conn:
            return [_event(r, r.node_id) for r in conn.execute(q)]

    def get_event_detail(self, client_id: str, event_id: str) -> EventDetail | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(events, agents.c.node_id)
                .join(agents, agents.c.id == events.c.agent_id)
                .where(events.c.client_id == client_id, events.c.id == event_id)
            ).first()
            if row is None:
                return None
            decision = command = None
            subjects = [event_id]
            if row.decision_id:
                d = conn.execute(sa.select(decisions).where(decisions.c.id == row.decision_id)).first()
                decision = dict(d._mapping) if d else None
                c = conn.execute(sa.select(commands).where(commands.c.decision_id == row.decision_id)).first()
                command = dict(c._mapping) if c else None
                subjects += [row.decision_id] + ([c.id] if c else [])
        return EventDetail(
            _event(row, row.node_id), decision, command, self.audit_entries(client_id, subjects)
        )

    def pending_count(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(events).where(events.c.processed_at.is_(None))
                ).scalar_one()
            )

    # -- claims --------------------------------------------------------------------------------------

    def claim(self, worker: str, lease_s: float, now: float, max_events: int = 1000) -> Claim | None:
        """Lease one agent that has pending events and is out of cooldown; None when there is none."""
        has_pending = (
            sa.select(events.c.id)
            .where(events.c.agent_id == agents.c.id, events.c.processed_at.is_(None))
            .exists()
        )
        q = (
            sa.select(agents)
            .where(
                sa.or_(agents.c.lease_until.is_(None), agents.c.lease_until < now),
                sa.or_(agents.c.cooldown_until.is_(None), agents.c.cooldown_until <= now),
                has_pending,
            )
            .limit(1)
        )
        if self.is_postgres:
            q = q.with_for_update(skip_locked=True, of=agents)
        token = _new_id()
        with self.write() as conn:
            row = conn.execute(q).first()
            if row is None:
                return None
            conn.execute(
                agents.update()
                .where(agents.c.id == row.id)
                .values(lease_owner=worker, lease_token=token, lease_until=now + lease_s)
            )
            rows = conn.execute(
                sa.select(events)
                .where(events.c.agent_id == row.id, events.c.processed_at.is_(None))
                .order_by(events.c.received_at)
                .limit(max_events)
            ).all()
            client = _client(conn.execute(sa.select(clients).where(clients.c.id == row.client_id)).one())
            prior = self._prior_decision(conn, [r.decision_id for r in rows if r.decision_id])
        return Claim(
            _agent(row),
            client,
            token,
            worker,
            now + lease_s,
            tuple(_event(r, row.node_id) for r in rows),
            prior,
        )

    def _prior_decision(self, conn: sa.Connection, decision_ids: list[str]) -> PriorDecision | None:
        if not decision_ids:
            return None
        d = conn.execute(sa.select(decisions).where(decisions.c.id == decision_ids[0])).one()
        c = conn.execute(sa.select(commands).where(commands.c.decision_id == d.id)).first()
        return PriorDecision(
            d.id,
            d.action,
            d.target,
            dict(d.params),
            d.rationale,
            d.source,
            c.id if c else None,
            c.status if c else None,
        )

    def check_lease(
        self, conn: sa.Connection, claim: Claim, now: float, extend_s: float | None = None
    ) -> None:
        values: dict[str, Any] = {"lease_until": now + extend_s} if extend_s else {"lease_token": claim.token}
        res = conn.execute(
            agents.update()
            .where(agents.c.id == claim.agent.id, agents.c.lease_token == claim.token)
            .values(**values)
        )
        if res.rowcount != 1:
            raise LeaseLostError(f"lease on agent {claim.agent.node_id!r} was lost")

    def renew(self, claim: Claim, now: float, lease_s: float) -> None:
        with self.write() as conn:
            self.check_lease(conn, claim, now, extend_s=lease_s)

    def record_decision(
        self, claim: Claim, decision: Decision, now: float, actor: str
    ) -> tuple[str, str | None]:
        """Store the decision (and the command it implies) before anything is sent."""
        decision_id = _new_id()
        command_id = _new_id() if decision.acts else None
        with self.write() as conn:
            self.check_lease(conn, claim, now)
            conn.execute(
                decisions.insert().values(
                    id=decision_id,
                    client_id=claim.client.id,
                    agent_id=claim.agent.id,
                    source=decision.source,
                    action=decision.action,
                    target=decision.target,
                    params=decision.params,
                    rationale=decision.rationale,
                    prompt=decision.prompt,
                    answer=decision.answer,
                    created_at=now,
                )
            )
            if command_id:
                conn.execute(
                    commands.insert().values(
                        id=command_id,
                        client_id=claim.client.id,
                        agent_id=claim.agent.id,
                        decision_id=decision_id,
                        action=decision.action,
                        target=decision.target,
                        params=decision.params,
                        status="queued",
                        created_at=now,
                        attempts=0,
                    )
                )
            conn.execute(
                events.update().where(events.c.id.in_(claim.event_ids)).values(decision_id=decision_id)
            )
            self.append_audit(
                conn,
                claim.client.id,
                actor,
                "decision.made",
                decision_id,
                {
                    "source": decision.source,
                    "action": decision.action,
                    "target": decision.target,
                    "params": decision.params,
                    "rationale": decision.rationale,
                    "event_ids": claim.event_ids,
                    "command_id": command_id,
                    "prompt": decision.prompt,
                    "answer": decision.answer,
                },
                now,
            )
        return decision_id, command_id

    def mark_command_sent(self, claim: Claim, command_id: str, now: float, actor: str, url: str) -> None:
        with self.write() as conn:
            self.check_lease(conn, claim, now)
            conn.execute(
                commands.update().where(commands.c.id == command_id).values(status="sent", sent_at=now)
            )
            self.append_audit(conn, claim.client.id, actor, "command.sent", command_id, {"url": url}, now)

    def record_result(
        self, claim: Claim, command_id: str, result: ActionResult, now: float, actor: str
    ) -> None:
        status = COMMAND_STATUS[result.status]
        with self.write() as conn:
            conn.execute(
                commands.update()
                .where(commands.c.id == command_id)
                .values(
                    status=status,
                    finished_at=now,
                    attempts=result.attempts,
                    http_status=result.http_status,
                    output=result.output[:10_000],
                )
            )
            self.append_audit(
                conn,
                claim.client.id,
                actor,
                "command.result",
                command_id,
                {
                    "status": result.status,
                    "http_status": result.http_status,
                    "attempts": result.attempts,
                    "output": result.output[:2_000],
                },
                now,
            )

    def complete(
        self, claim: Claim, now: float, cooldown_until: float | None, actor: str, outcome: str
    ) -> None:
        """Mark the claimed events processed and release the agent, atomically and fenced by the token."""
        with self.write() as conn:
            res = conn.execute(
                agents.update()
                .where(agents.c.id == claim.agent.id, agents.c.lease_token == claim.token)
                .values(lease_owner=None, lease_token=None, lease_until=None, cooldown_until=cooldown_until)
            )
            if res.rowcount != 1:
                raise LeaseLostError(f"lease on agent {claim.agent.node_id!r} was lost")
            conn.execute(
                events.update()
                .where(events.c.id.in_(claim.event_ids), events.c.processed_at.is_(None))
                .values(processed_at=now)
            )
            for event_id in claim.event_ids:
                self.append_audit(
                    conn,
                    claim.client.id,
                    actor,
                    "event.processed",
                    event_id,
                    {"outcome": outcome, "coalesced": len(claim.event_ids)},
                    now,
                )

    def next_cooldown_end(self, now: float) -> float | None:
        """When the earliest agent with pending events becomes claimable again (cooldown or lease over)."""
        has_pending = (
            sa.select(events.c.id)
            .where(events.c.agent_id == agents.c.id, events.c.processed_at.is_(None))
            .exists()
        )
        q = sa.select(agents.c.cooldown_until, agents.c.lease_until).where(
            has_pending, sa.or_(agents.c.cooldown_until > now, agents.c.lease_until > now)
        )
        with self._read() as conn:
            rows = conn.execute(q).all()
        ends = [max(r.cooldown_until or 0.0, r.lease_until or 0.0) for r in rows]
        return min(ends) if ends else None


def open_store(url: str) -> SqlStore:
    """Create the engine for ``url`` and bring its schema to the latest migration."""
    from infragent.store.engine import create_engine
    from infragent.store.migrate import upgrade

    engine = create_engine(url)
    upgrade(engine)
    return SqlStore(engine)
