"""The overview page against the real app and both databases: hosts online/offline by the 90 s rule,
open incidents by severity, the last 24 h of actions with their success rate, recent incidents,
only the signed-in tenant's, and the live refresh it asks htmx for."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest

from infragent.model import Severity
from infragent.store import agents, incidents
from infragent.store.dashboard import ONLINE_WINDOW_S
from infragent.store.sql import SqlStore
from support.dashboard_data import add_hosts, command, incident, one, rows
from support.web import Site

NOW = float(int(time.time()))


@pytest.fixture
def clock() -> Callable[[], float]:
    """The app's time stands still at ``NOW``: the seed's "10 s ago" is the page's too."""
    return lambda: NOW


@pytest.fixture
def web(site: Site, acme: str) -> httpx.Client:
    """A viewer of ``acme``, signed in."""
    site.sign_in(acme, "viewer")
    return site.http


def figures(html: str) -> dict[str, str]:
    names = ["hosts-online", "hosts-offline", "incidents-open", "incidents-critical", "incidents-warning"]
    names += ["incidents-info", "actions-24h", "actions-success-rate"]
    return {name: one(html, name)["_text"] for name in names}


def test_an_empty_tenant(web: httpx.Client) -> None:
    page = web.get("/")
    assert page.status_code == 200
    assert figures(page.text) == {
        "hosts-online": "0",
        "hosts-offline": "0",
        "incidents-open": "0",
        "incidents-critical": "0",
        "incidents-warning": "0",
        "incidents-info": "0",
        "actions-24h": "0",
        "actions-success-rate": "—",
    }
    assert "No incidents yet" in page.text


def test_figures_count_this_tenant_only(web: httpx.Client, store: SqlStore, acme: str, other: str) -> None:
    edge = NOW - ONLINE_WINDOW_S
    add_hosts(store, acme, [("a", NOW - 5), ("b", edge), ("c", edge - 1)])  # b is online at exactly 90 s
    add_hosts(store, other, [("x", NOW), ("y", NOW)])
    crit = [incident(store, acme, NOW - 50 + i, node=f"n{i}") for i in range(2)]
    warn = incident(store, acme, NOW - 40, node="w", severity=Severity.WARNING)
    info = incident(store, acme, NOW - 30, node="i", severity=Severity.INFO)
    incident(store, other, NOW - 30, node="o")
    with store.write() as conn:
        incidents.set_status(
            conn, acme, warn, incidents.IncidentStatus.ACKNOWLEDGED, "t", NOW - 2
        )  # still open
        incidents.set_status(conn, acme, info, incidents.IncidentStatus.RESOLVED, "t", NOW - 1)  # not open
        agent = agents.get_agent(conn, acme, "n0")
        theirs = agents.get_agent(conn, other, "o")
    assert agent is not None and theirs is not None
    for result in ("ok", "ok", "ok", "error", None):  # None: still queued, not finished
        command(store, acme, agent.id, NOW - 3600, result)
    command(store, acme, agent.id, NOW - 90_000, "error")  # older than 24 h
    command(store, other, theirs.id, NOW - 60, "error")

    page = web.get("/")
    assert figures(page.text) == {
        "hosts-online": "2",
        "hosts-offline": "1",
        "incidents-open": "3",
        "incidents-critical": "2",
        "incidents-warning": "1",
        "incidents-info": "0",
        "actions-24h": "5",
        "actions-success-rate": "75%",
    }
    recent = [r["data-incident-id"] for r in rows(page.text, "incident-row")]
    assert recent[:2] == [info, warn] and set(recent) == {*crit, warn, info}


def test_the_figures_refresh_live_as_a_fragment(web: httpx.Client, store: SqlStore, acme: str) -> None:
    page = web.get("/")
    # the figures' trigger (the menu's inbox badge has one of its own)
    trigger = next(t for t in re.findall(r'hx-trigger="([^"]*)"', page.text) if "live:host" in t)
    for event in ("live:incident", "live:host", "live:command"):
        assert f"{event} from:document throttle:1s" in trigger
    incident(store, acme, NOW - 1)
    fragment = web.get("/?fragment=1", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert one(fragment.text, "incidents-open")["_text"] == "1"


def test_signed_out_goes_to_sign_in(site: Site) -> None:
    r = site.http.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    htmx = site.http.get("/", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login?next=/"
