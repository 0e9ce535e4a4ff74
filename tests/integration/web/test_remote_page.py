"""Remote control from the host page's fragments, against the real app and a real SDK receiver.

The flow an operator's browser goes through, request by request as htmx sends them: the action's
parameter inputs, the confirm step (checked, nothing written), the confirmed command, and its
status fragment until it is done. Statuses are polled with a bound, never slept on.
"""

from __future__ import annotations

import re
import time

import pytest

from infragent.config import Settings
from infragent.model import ActionSpec
from infragent.server.web.templating import env
from infragent.store.records import AgentRecord
from infragent.store.sql import SqlStore
from support.databases import audit_entries, create_client
from support.remote import remote_settings
from support.responders import Receiver, register_node
from support.web import SignedInUser, Site

HOST = "web-1"
NODE = "web-1/web"
HTMX = {"HX-Request": "true"}
FORM = {"node_id": NODE, "action": "restart", "param-name": "nginx", "target": "nginx", "reason": ""}


@pytest.fixture
def settings() -> Settings:
    return remote_settings()


def as_htmx(person: SignedInUser) -> dict[str, str]:
    return {**person.browser_headers, **HTMX}


def test_an_operator_confirms_and_watches_the_command_finish(
    store: SqlStore, receiver: Receiver, site: Site
) -> None:
    register_node(store, receiver.reg, NODE)
    operator = site.person(receiver.reg.client.id, "operator")
    http = site.http

    r = http.get(
        f"/hosts/{HOST}/commands/params",
        params={"node_id": NODE, "action": "restart"},
        headers=as_htmx(operator),
    )
    assert r.status_code == 200 and 'name="param-name"' in r.text and "[a-z0-9_-]+" in r.text

    r = http.post(f"/hosts/{HOST}/commands", data=FORM, headers=as_htmx(operator))
    assert r.status_code == 200, r.text
    assert 'data-test="action-confirm"' in r.text and 'name="confirm" value="1"' in r.text
    assert "name=nginx" in r.text and NODE in r.text
    assert not [e for e in audit_entries(store, receiver.reg.client.id) if e.kind.startswith("command.")]

    r = http.post(f"/hosts/{HOST}/commands", data=FORM | {"confirm": "1"}, headers=as_htmx(operator))
    assert r.status_code == 202, r.text
    assert 'data-test="command-status"' in r.text and 'data-test="command-output"' in r.text
    match = re.search(r'data-command-id="([0-9a-f-]{36})"', r.text)
    assert match is not None
    command_id = match.group(1)
    assert "live:command from:document" in r.text or 'data-status="done"' in r.text

    deadline = time.monotonic() + 15
    while True:
        r = http.get(f"/hosts/{HOST}/commands/{command_id}", headers=as_htmx(operator))
        assert r.status_code == 200, r.text
        if 'data-status="done"' in r.text or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert 'data-status="done"' in r.text and "restarted nginx" in r.text
    assert "hx-trigger" not in r.text  # finished: the fragment stops refreshing itself
    assert receiver.runs == {command_id: 1}

    recent = http.get(f"/hosts/{HOST}/commands", headers=as_htmx(operator))
    assert recent.status_code == 200 and f'data-command-id="{command_id}"' in recent.text
    assert f"user:{operator.user_id}" in recent.text


def test_refusals_are_shown_in_the_fragment(store: SqlStore, receiver: Receiver, site: Site) -> None:
    register_node(store, receiver.reg, NODE)
    operator = site.person(receiver.reg.client.id, "operator")
    http = site.http
    bad = FORM | {"param-name": "nginx; reboot"}
    r = http.post(f"/hosts/{HOST}/commands", data=bad, headers=as_htmx(operator))
    assert r.status_code == 200 and 'data-test="action-error"' in r.text  # htmx swaps only a 2xx
    assert "does not match" in r.text and "action-confirm" not in r.text
    r = http.post(f"/hosts/{HOST}/commands", data=bad | {"confirm": "1"}, headers=operator.browser_headers)
    assert r.status_code == 422 and 'data-status="422"' in r.text
    # An agent that is not on this host (another host, another tenant) is not found here.
    r = http.post("/hosts/db-9/commands", data=FORM, headers=operator.browser_headers)
    assert r.status_code == 404 and "not found" in r.text
    assert not [e for e in audit_entries(store, receiver.reg.client.id) if e.kind == "command.requested"]


def test_viewers_and_other_tenants_cannot_send_or_see_commands(
    store: SqlStore, receiver: Receiver, site: Site
) -> None:
    register_node(store, receiver.reg, NODE)
    http = site.http
    operator = site.person(receiver.reg.client.id, "operator")
    r = http.post(f"/hosts/{HOST}/commands", data=FORM | {"confirm": "1"}, headers=as_htmx(operator))
    command_id = re.search(r'data-command-id="([0-9a-f-]{36})"', r.text).group(1)  # type: ignore[union-attr]

    viewer = site.person(receiver.reg.client.id, "viewer")
    r = http.post(f"/hosts/{HOST}/commands", data=FORM, headers=viewer.browser_headers)
    assert r.status_code == 403 and 'data-test="forbidden"' in r.text
    assert http.get(f"/hosts/{HOST}/commands/{command_id}", headers=viewer.browser_headers).status_code == 200

    # Without the CSRF header the operator's POST is refused too.
    assert http.post(f"/hosts/{HOST}/commands", data=FORM, headers=operator.cookie_only).status_code == 403

    other = create_client(store, "b@example.com", "Other", "http://127.0.0.1:9/x", now=time.time())
    outsider = site.person(other.client.id, "admin")
    theirs = http.get(f"/hosts/{HOST}/commands/{command_id}", headers=outsider.browser_headers)
    assert theirs.status_code == 404
    r = http.post(f"/hosts/{HOST}/commands", data=FORM, headers=outsider.browser_headers)
    assert r.status_code == 404


def test_the_partial_renders_one_form_per_agent_with_actions() -> None:
    agents = [
        AgentRecord(
            "a1", "c", "web-1", "host", "pull", (ActionSpec("restart", {"unit": r"[a-z]+"}),), 1.0, None
        ),
        AgentRecord("a2", "c", "web-1/web", "sdk", "push", (), 1.0, None),
    ]
    html = env.get_template("hosts/_remote.html").render(host=HOST, agents=agents, can=lambda _op: True)
    assert html.count('data-test="action-form"') == 1 and 'data-node="web-1"' in html
    for hook in ('data-test="action-select"', 'name="param-unit"', 'data-test="action-run"'):
        assert hook in html
    assert 'hx-post="/hosts/web-1/commands"' in html and "style=" not in html and "<script" not in html
    empty = env.get_template("hosts/_remote.html").render(host=HOST, agents=agents[1:], can=lambda _op: True)
    assert 'data-test="no-actions"' in empty and "action-form" not in empty
