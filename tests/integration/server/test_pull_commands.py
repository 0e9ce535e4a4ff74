"""Pull mode: the responder queues, the agent long-polls a signed command and reports the result."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from infragent import signing
from infragent.config import Settings
from infragent.model import ActionSpec, Severity
from infragent.server.app import create_app
from infragent.store import commands
from infragent.store.records import Registration
from infragent.store.sql import SqlStore
from support.databases import (
    audit_entries,
    create_client,
    get_event_detail,
    insert_event,
    pending_count,
    register_agent,
)
from support.responders import make_responder
from support.servers import serve

NODE = "db-1"


@pytest.fixture
def pull_client(store: SqlStore) -> Registration:
    reg = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/unused", now=time.time())
    register_agent(
        store,
        reg.client.id,
        NODE,
        kind="host",
        command_mode="pull",
        actions=[ActionSpec("restart", {})],
        labels={},
        now=time.time(),
    )
    return reg


@pytest.fixture
def http(store: SqlStore) -> Iterator[httpx.Client]:
    with (
        serve(create_app(Settings(command_ttl_s=300), store=store)) as base,
        httpx.Client(base_url=base) as c,
    ):
        yield c


def _auth(reg: Registration) -> dict[str, str]:
    return {"Authorization": f"Bearer {reg.api_key}"}


def test_queued_command_is_pulled_signed_and_its_result_recorded(
    store: SqlStore, pull_client: Registration, http: httpx.Client
) -> None:
    event = insert_event(
        store,
        pull_client.client.id,
        type="app_down",
        service="postgres",
        severity=Severity.CRITICAL,
        data={},
        node_id=NODE,
        now=time.time(),
    )
    make_responder(store).drain()
    assert pending_count(store) == 0  # processed: the command waits for the agent
    r = http.get(f"/api/v1/agents/{NODE}/commands", params={"wait": 0}, headers=_auth(pull_client))
    assert r.status_code == 200
    [cmd] = r.json()["commands"]
    verified = signing.verify(pull_client.client.webhook_secret, cmd["headers"], cmd["body"].encode())
    body = json.loads(cmd["body"])
    assert body["command_id"] == verified.msg_id and body["action"] == "restart"
    assert body["target"] == "postgres" and body["event_ids"] == [event.id]
    # Handed over once: a second poll finds nothing.
    assert (
        http.get(
            f"/api/v1/agents/{NODE}/commands", params={"wait": 0}, headers=_auth(pull_client)
        ).status_code
        == 204
    )
    result = {"status": "ok", "output": "restarted", "exit_code": 0, "duration_ms": 12.5}
    r = http.post(f"/api/v1/commands/{body['command_id']}/result", json=result, headers=_auth(pull_client))
    assert r.status_code == 200
    assert (
        http.post(
            f"/api/v1/commands/{body['command_id']}/result", json=result, headers=_auth(pull_client)
        ).status_code
        == 200
    )  # a retried report changes nothing
    detail = get_event_detail(store, pull_client.client.id, event.id)
    assert detail is not None and detail.command is not None
    assert detail.command["status"] == "done" and detail.command["output"] == "exit 0: restarted"
    kinds = [a.kind for a in detail.audit]
    assert kinds == [
        "event.received",
        "decision.made",
        "command.queued",
        "event.processed",
        "command.sent",
        "command.result",
    ]


def test_long_poll_waits_then_answers_204(pull_client: Registration, http: httpx.Client) -> None:
    started = time.monotonic()
    r = http.get(f"/api/v1/agents/{NODE}/commands", params={"wait": 0.5}, headers=_auth(pull_client))
    assert r.status_code == 204 and time.monotonic() - started >= 0.45


def test_long_poll_returns_as_soon_as_a_command_is_queued(
    store: SqlStore, pull_client: Registration, http: httpx.Client
) -> None:
    import threading

    def later() -> None:
        time.sleep(0.3)
        insert_event(
            store,
            pull_client.client.id,
            type="app_down",
            service="pg",
            severity=Severity.CRITICAL,
            data={},
            node_id=NODE,
            now=time.time(),
        )
        make_responder(store).drain()

    t = threading.Thread(target=later)
    t.start()
    r = http.get(
        f"/api/v1/agents/{NODE}/commands", params={"wait": 10}, headers=_auth(pull_client), timeout=15
    )
    t.join()
    assert r.status_code == 200 and len(r.json()["commands"]) == 1


def test_other_clients_cannot_pull_or_report(
    store: SqlStore, pull_client: Registration, http: httpx.Client
) -> None:
    insert_event(
        store,
        pull_client.client.id,
        type="app_down",
        service="pg",
        severity=Severity.CRITICAL,
        data={},
        node_id=NODE,
        now=time.time(),
    )
    make_responder(store).drain()
    other = create_client(store, "x@example.com", "Other", "http://127.0.0.1:9/h", now=1.0)
    assert (
        http.get(f"/api/v1/agents/{NODE}/commands", params={"wait": 0}, headers=_auth(other)).status_code
        == 204
    )
    [cmd] = http.get(
        f"/api/v1/agents/{NODE}/commands", params={"wait": 0}, headers=_auth(pull_client)
    ).json()["commands"]
    command_id = json.loads(cmd["body"])["command_id"]
    r = http.post(f"/api/v1/commands/{command_id}/result", json={"status": "ok"}, headers=_auth(other))
    assert r.status_code == 404
    bad = http.post(
        f"/api/v1/commands/{command_id}/result", json={"status": "done"}, headers=_auth(pull_client)
    )
    assert bad.status_code == 422 and "status" in bad.json()["detail"]


def test_commands_past_their_ttl_expire_instead_of_running(
    store: SqlStore, pull_client: Registration
) -> None:
    insert_event(
        store,
        pull_client.client.id,
        type="app_down",
        service="pg",
        severity=Severity.CRITICAL,
        data={},
        node_id=NODE,
        now=time.time(),
    )
    make_responder(store).drain()
    with store.write() as conn:
        assert commands.take(conn, pull_client.client.id, NODE, time.time() + 301, ttl_s=300) == []
    kinds = [a.kind for a in audit_entries(store, pull_client.client.id)]
    assert "command.expired" in kinds and "command.sent" not in kinds
