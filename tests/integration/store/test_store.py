from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from infragent.auth import apikeys
from infragent.errors import StoreError
from infragent.model import Decision, Severity
from infragent.responder.ports import LeaseLostError
from infragent.store import (
    claims,
    notify_schema,  # noqa: F401  (its tables join the metadata)
    runbook_schema,  # noqa: F401  (its tables join the metadata)
    tenants,
)
from infragent.store.audit import verify_chain
from infragent.store.records import Claim, Registration
from infragent.store.schema import audit_log, metadata
from infragent.store.sql import SqlStore, open_store
from infragent.store.workqueue import SqlWorkQueue, work_item
from support.databases import (
    audit_entries,
    create_client,
    get_event_detail,
    insert_event,
    list_events,
    pending_count,
)


def _event(
    store: SqlStore, reg: Registration, now: float, node: str = "host-1/web", type_: str = "app_down"
) -> str:
    return insert_event(
        store,
        reg.client.id,
        type=type_,
        service="web",
        severity=Severity.CRITICAL,
        data={"n": now},
        node_id=node,
        now=now,
    ).id


def _claim(store: SqlStore, worker: str, lease_s: float, now: float) -> Claim | None:
    with store.write() as conn:
        return claims.claim(conn, worker, lease_s, now)


def _complete(store: SqlStore, claim: Claim, now: float, cooldown_until: float | None, outcome: str) -> None:
    SqlWorkQueue(store).complete(work_item(claim), now, cooldown_until, claim.worker, outcome)


def _decide(store: SqlStore, claim: Claim, decision: Decision, now: float) -> str | None:
    return SqlWorkQueue(store).record_decision(work_item(claim), decision, now, claim.worker)


def test_migrations_create_exactly_the_schema(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_api_key_is_stored_hashed(store: SqlStore, client_reg: Registration) -> None:
    key_id, secret = apikeys.parse(client_reg.api_key) or ("", "")
    with store.read() as conn:
        record = tenants.get_key(conn, key_id)
    assert record is not None and record.client_id == client_reg.client.id
    assert secret not in record.secret_hash and apikeys.matches(secret, record.secret_hash)
    assert client_reg.client.webhook_secret.startswith("whsec_")


def test_claim_is_exclusive_and_lease_expiry_allows_reclaim(
    store: SqlStore, client_reg: Registration
) -> None:
    ids = [_event(store, client_reg, 1000.0 + i) for i in range(3)]
    claim = _claim(store, "w1", lease_s=10, now=1010.0)
    assert claim is not None and claim.event_ids == ids
    assert _claim(store, "w2", lease_s=10, now=1015.0) is None  # leased
    late = _claim(store, "w2", lease_s=10, now=1021.0)  # lease expired: re-claimed
    assert late is not None and late.event_ids == ids
    with pytest.raises(LeaseLostError):  # the first worker can no longer finish or record
        _complete(store, claim, 1022.0, None, "x")
    with pytest.raises(LeaseLostError):
        _decide(store, claim, Decision("policy", "none", "r"), 1022.0)
    _complete(store, late, 1022.0, None, "none")
    assert pending_count(store) == 0
    assert all(e.processed_at == 1022.0 for e in list_events(store, client_reg.client.id, "processed"))


def test_cooldown_keeps_events_pending_until_it_ends(store: SqlStore, client_reg: Registration) -> None:
    _event(store, client_reg, 1000.0)
    claim = _claim(store, "w", lease_s=60, now=1001.0)
    assert claim is not None
    _complete(store, claim, 1002.0, cooldown_until=1300.0, outcome="restart:ok")
    later = [_event(store, client_reg, 1100.0), _event(store, client_reg, 1200.0)]
    assert _claim(store, "w", lease_s=60, now=1250.0) is None
    with store.read() as conn:
        assert claims.next_due(conn, 1250.0) == 1300.0
    claim2 = _claim(store, "w", lease_s=60, now=1300.5)
    assert claim2 is not None and claim2.event_ids == later


def test_claim_takes_the_agent_with_the_oldest_pending_event_first(
    store: SqlStore, client_reg: Registration
) -> None:
    """A noisy agent (created first, always with fresh events) cannot starve a quiet one."""
    noisy, quiet = "noisy/web", "quiet/web"
    _event(store, client_reg, 1000.0, node=noisy)  # the noisy agent's row is written first
    quiet_event = _event(store, client_reg, 1001.0, node=quiet)
    for i in range(10):
        _event(store, client_reg, 1002.0 + i, node=noisy)
    first = _claim(store, "w", lease_s=60, now=1100.0)
    assert first is not None and first.agent.node_id == noisy  # its oldest (1000) is older than 1001
    _complete(store, first, 1101.0, cooldown_until=None, outcome="none")
    for i in range(10):  # the noisy agent keeps reporting while the quiet one waits
        _event(store, client_reg, 1102.0 + i, node=noisy)
    second = _claim(store, "w", lease_s=60, now=1200.0)
    assert second is not None and second.agent.node_id == quiet
    assert second.event_ids == [quiet_event]
    third = _claim(store, "w2", lease_s=60, now=1200.0)  # the quiet one is leased: the noisy one next
    assert third is not None and third.agent.node_id == noisy and len(third.events) == 10


def test_decision_survives_a_dead_claimant(store: SqlStore, client_reg: Registration) -> None:
    _event(store, client_reg, 1000.0)
    claim = _claim(store, "w1", lease_s=5, now=1000.0)
    assert claim is not None
    command_id = _decide(store, claim, Decision("runbook", "restart", "rb", target="web"), 1001.0)
    again = _claim(store, "w2", lease_s=5, now=1010.0)
    assert again is not None and again.prior is not None
    assert (again.prior.command_id, again.prior.command_status, again.prior.action) == (
        command_id,
        "queued",
        "restart",
    )


def test_tenant_isolation(store: SqlStore, client_reg: Registration) -> None:
    other = create_client(store, "b@example.com", "Other", "http://127.0.0.1:9/h", now=1.0)
    mine = _event(store, client_reg, 1000.0)
    assert get_event_detail(store, other.client.id, mine) is None
    assert list_events(store, other.client.id) == []
    assert get_event_detail(store, client_reg.client.id, mine) is not None


def test_audit_chain_detects_tampering(store: SqlStore, client_reg: Registration) -> None:
    for i in range(3):
        _event(store, client_reg, 1000.0 + i)
    entries = audit_entries(store, client_reg.client.id)
    kinds = [e.kind for e in entries if not e.kind.startswith("rule.")]  # the default pack's rules
    assert kinds[:3] == ["client.registered", "agent.registered", "event.received"]
    assert verify_chain(entries) is None
    victim = next(e for e in entries if e.kind == "event.received")
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(audit_log).where(audit_log.c.id == victim.id).values(detail={"type": "forged"})
        )
    assert verify_chain(audit_entries(store, client_reg.client.id)) == victim.id


def test_a_closed_store_refuses_transactions_instead_of_opening_a_new_pool(db_url: str) -> None:
    """A late writer (a shutdown flush after the owner closed the store) gets StoreError, not a new
    connection nobody would close."""
    closing = open_store(db_url)
    with closing.read() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    closing.close()
    with pytest.raises(StoreError, match="closed"), closing.write():
        pass
    with pytest.raises(StoreError, match="closed"), closing.read():
        pass
