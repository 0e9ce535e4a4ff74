"""Remote control through the API, on SQLite and PostgreSQL (issue 12, point 3).

A push agent is the real SDK webhook app on loopback (``support.responders.receiver``): the command
travels signed through the same dispatcher as the responder's. A pull agent is played by the test
with the agent's own routes (poll, report). Statuses are read back through ``GET /api/v1/commands``
with a bounded poll, never a bare sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infragent import signing
from infragent.model import ActionSpec
from infragent.store.records import Registration
from infragent.store.sql import SqlStore
from support.databases import audit_entries, create_client, register_agent
from support.remote import remote_settings
from support.responders import Receiver, register_node
from support.web import Site, serve_site

PUSH_NODE = "web-1/web"  # the SDK's default node id is <host>/<service>: a '/' in the path
PULL_NODE = "db-1/agent"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def served(store: SqlStore) -> Iterator[Site]:
    with serve_site(store, remote_settings()) as s:
        yield s


@pytest.fixture
def client(served: Site) -> httpx.Client:
    return served.http


def mint(client: httpx.Client, admin_key: str, scope: str) -> str:
    r = client.post("/api/v1/keys", json={"scopes": [scope]}, headers=auth(admin_key))
    assert r.status_code == 201, r.text
    return str(r.json()["api_key"])


def pull_tenant(store: SqlStore, email: str = "pull@example.com") -> Registration:
    reg = create_client(store, email, "Acme", "http://127.0.0.1:9/unused", now=time.time())
    register_agent(
        store,
        reg.client.id,
        PULL_NODE,
        kind="host",
        command_mode="pull",
        actions=[ActionSpec("restart", {"svc": r"[a-z]+"}), ActionSpec("vacuum", {})],
        labels={},
        now=time.time(),
    )
    return reg


def finished(client: httpx.Client, command_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """The command once it has a final status (bounded: 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        r = client.get(f"/api/v1/commands/{command_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["finished"] or time.monotonic() > deadline:
            return dict(r.json())
        time.sleep(0.05)


def test_an_operator_runs_an_action_on_a_push_agent_and_sees_its_output(
    store: SqlStore, receiver: Receiver, served: Site, client: httpx.Client
) -> None:
    register_node(store, receiver.reg, PUSH_NODE)
    operator = served.person(receiver.reg.client.id, "operator")
    body = {"action": "restart", "params": {"name": "nginx"}, "target": "nginx", "reason": "stuck workers"}
    r = client.post(f"/api/v1/agents/{PUSH_NODE}/commands", json=body, headers=operator.browser_headers)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["status"] in ("queued", "sent", "done") and accepted["source"] == "user"
    assert accepted["requested_by"] == f"user:{operator.user_id}" and accepted["node_id"] == PUSH_NODE

    done = finished(client, accepted["command_id"], operator.browser_headers)
    assert done["status"] == "done", done
    assert done["output"] == "restarted nginx" and done["http_status"] == 200 and done["attempts"] == 1
    assert done["reason"] == "stuck workers" and done["sent_at"] is not None
    # The receiver ran it once, as asked, under the command id the server recorded.
    assert receiver.runs == {accepted["command_id"]: 1}
    [command] = receiver.commands
    assert (command.action, command.params, command.target) == ("restart", {"name": "nginx"}, "nginx")

    entries = audit_entries(store, receiver.reg.client.id)
    about = [(e.kind, e.actor) for e in entries if e.subject == accepted["command_id"]]
    actor = f"user:{operator.user_id}"
    assert about == [("command.requested", actor), ("command.sent", actor), ("command.result", actor)]
    [decision] = [e for e in entries if e.kind == "decision.made"]
    assert decision.actor == actor and decision.detail["source"] == "user"
    assert decision.detail["command_id"] == accepted["command_id"]
    [requested] = [e for e in entries if e.kind == "command.requested"]
    assert requested.detail["email"] == operator.email and requested.detail["params"] == {"name": "nginx"}


def test_a_pull_agent_fetches_the_command_and_its_report_finishes_it(
    store: SqlStore, client: httpx.Client
) -> None:
    reg = pull_tenant(store)
    operate = mint(client, reg.api_key, "operate")
    r = client.post(
        f"/api/v1/agents/{PULL_NODE}/commands",
        json={"action": "restart", "params": {"svc": "postgres"}},
        headers=auth(operate),
    )
    assert r.status_code == 202, r.text
    command_id = r.json()["command_id"]
    assert r.json()["status"] == "queued" and r.json()["requested_by"].startswith("key:")
    assert r.json()["reason"].startswith("requested by key:")

    # The agent percent-encodes its node id (agent/poller.py); the '/' must still reach its route.
    ingest = mint(client, reg.api_key, "ingest")
    r = client.get("/api/v1/agents/db-1%2Fagent/commands", params={"wait": 0}, headers=auth(ingest))
    assert r.status_code == 200, r.text
    [signed] = r.json()["commands"]
    verified = signing.verify(reg.client.webhook_secret, signed["headers"], signed["body"].encode())
    pulled = json.loads(signed["body"])
    assert verified.msg_id == pulled["command_id"] == command_id
    assert (pulled["action"], pulled["params"]) == ("restart", {"svc": "postgres"})
    # An operate key acts but does not read (scopes imply nothing but admin): the admin key reads.
    assert client.get(f"/api/v1/commands/{command_id}", headers=auth(operate)).status_code == 403
    assert client.get(f"/api/v1/commands/{command_id}", headers=auth(reg.api_key)).json()["status"] == "sent"

    report = {"status": "ok", "output": "restarted", "exit_code": 0}
    r = client.post(f"/api/v1/commands/{command_id}/result", json=report, headers=auth(ingest))
    assert r.status_code == 200, r.text
    done = finished(client, command_id, auth(reg.api_key))
    assert done["status"] == "done" and done["output"] == "exit 0: restarted"
    about = [
        (e.kind, e.actor.split(":")[0])
        for e in audit_entries(store, reg.client.id)
        if e.subject == command_id
    ]
    # the person's key asked and queued it; the agent fetched it and reported
    assert about == [
        ("command.requested", "key"),
        ("command.queued", "key"),
        ("command.sent", "agent"),
        ("command.result", "agent"),
    ]


def test_the_same_action_twice_while_it_runs_is_409(store: SqlStore, client: httpx.Client) -> None:
    reg = pull_tenant(store)
    operate = mint(client, reg.api_key, "operate")
    url = f"/api/v1/agents/{PULL_NODE}/commands"
    first = client.post(url, json={"action": "vacuum"}, headers=auth(operate))
    assert first.status_code == 202
    again = client.post(url, json={"action": "vacuum"}, headers=auth(operate))
    assert again.status_code == 409, again.text
    assert again.json()["detail"]["command_id"] == first.json()["command_id"]
    # Another action is not blocked: no cooldown applies to a person.
    other = client.post(url, json={"action": "restart", "params": {"svc": "pg"}}, headers=auth(operate))
    assert other.status_code == 202


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"action": "reboot"}, {"action": "reboot"}),
        ({"action": "restart", "params": {"svc": "pg; rm -rf /"}}, {"action": "restart", "param": "svc"}),
        ({"action": "restart", "params": {"user": "root"}}, {"action": "restart", "param": "user"}),
        ({"action": "escalate"}, {"action": "escalate"}),
    ],
)
def test_an_action_or_parameter_off_the_allowlist_is_422_naming_it(
    store: SqlStore, client: httpx.Client, body: dict[str, Any], named: dict[str, str]
) -> None:
    reg = pull_tenant(store)
    r = client.post(f"/api/v1/agents/{PULL_NODE}/commands", json=body, headers=auth(reg.api_key))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert {k: detail.get(k) for k in named} == named and detail["message"]
    kinds = {e.kind for e in audit_entries(store, reg.client.id)}
    assert not kinds & {"decision.made", "command.requested"}  # nothing recorded


def test_another_tenants_agent_and_command_are_404(store: SqlStore, client: httpx.Client) -> None:
    ours = pull_tenant(store)
    theirs = create_client(store, "b@example.com", "Other", "http://127.0.0.1:9/x", now=time.time())
    r = client.post(
        f"/api/v1/agents/{PULL_NODE}/commands", json={"action": "vacuum"}, headers=auth(ours.api_key)
    )
    assert r.status_code == 202
    command_id = r.json()["command_id"]
    r = client.post(
        f"/api/v1/agents/{PULL_NODE}/commands", json={"action": "vacuum"}, headers=auth(theirs.api_key)
    )
    assert r.status_code == 404 and r.json()["detail"]["node_id"] == PULL_NODE
    assert client.get(f"/api/v1/commands/{command_id}", headers=auth(theirs.api_key)).status_code == 404
    missing = client.post("/api/v1/agents/nope/commands", json={"action": "x"}, headers=auth(ours.api_key))
    assert missing.status_code == 404


def test_viewers_and_ingest_keys_are_403_but_may_read_what_they_are_allowed(
    store: SqlStore, served: Site, client: httpx.Client
) -> None:
    reg = pull_tenant(store)
    url = f"/api/v1/agents/{PULL_NODE}/commands"
    ingest = mint(client, reg.api_key, "ingest")
    r = client.post(url, json={"action": "vacuum"}, headers=auth(ingest))
    assert r.status_code == 403 and r.json()["required_scope"] == "operate"
    command_id = client.post(url, json={"action": "vacuum"}, headers=auth(reg.api_key)).json()["command_id"]
    assert client.get(f"/api/v1/commands/{command_id}", headers=auth(ingest)).status_code == 403

    viewer = served.person(reg.client.id, "viewer")
    r = client.post(url, json={"action": "restart", "params": {"svc": "pg"}}, headers=viewer.browser_headers)
    assert r.status_code == 403, r.text
    seen = client.get(f"/api/v1/commands/{command_id}", headers=viewer.browser_headers)  # a viewer reads them
    assert seen.status_code == 200 and seen.json()["action"] == "vacuum"
    agents = client.get("/api/v1/agents", headers=viewer.browser_headers).json()["agents"]
    assert [(a["node_id"], a["command_mode"]) for a in agents] == [(PULL_NODE, "pull")]
    assert agents[0]["actions"][0] == {"name": "restart", "params": {"svc": "[a-z]+"}, "description": ""}


def test_a_signed_in_post_without_the_csrf_header_is_refused(
    store: SqlStore, served: Site, client: httpx.Client
) -> None:
    reg = pull_tenant(store)
    operator = served.person(reg.client.id, "operator")
    url = f"/api/v1/agents/{PULL_NODE}/commands"
    r = client.post(url, json={"action": "vacuum"}, headers=operator.cookie_only)
    assert r.status_code == 403, r.text
    assert not [e for e in audit_entries(store, reg.client.id) if e.kind == "command.requested"]
    assert client.post(url, json={"action": "vacuum"}, headers=operator.browser_headers).status_code == 202
