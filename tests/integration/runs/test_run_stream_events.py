"""The stream's ``run`` event (live runbook runs on the incident page) against the real app under
uvicorn, on both databases: the audit entries a run and its approval write (``run.queued``,
``run.progress``, ``approval.approved``) reach the tenant's stream, and only that tenant's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from infragent.responder.step_run import Start
from infragent.store import run_admin
from support.notify_api import Tenant
from support.run_rows import APPROVED_RESTART, Clock, add_approval, advance, queue_run
from support.web import Site

STREAM = "/api/v1/stream"
READ_TIMEOUT = httpx.Timeout(10.0, read=5.0)


def events(lines: Iterator[str], until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """SSE events off the stream until ``until(found)`` (httpx's read timeout bounds each wait)."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if current.get("event"):
                found.append(current)
                if until(found):
                    return found
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    raise AssertionError(f"the stream ended after {found}")


def runs_of(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in found if e["event"] == "run"]


def test_run_and_approval_changes_reach_the_tenants_stream(
    site: Site, alpha: Tenant, beta: Tenant, clock: Clock
) -> None:
    stream = site.http.stream
    with (
        stream("GET", STREAM, headers=alpha.auth("read"), timeout=READ_TIMEOUT) as a,
        stream("GET", STREAM, headers=beta.auth("read"), timeout=READ_TIMEOUT) as b,
    ):
        ours, theirs = a.iter_lines(), b.iter_lines()
        for lines in (ours, theirs):
            events(lines, lambda f: any(e["event"] == "ready" for e in f))
        run_id = queue_run(site.store, alpha.client_id, APPROVED_RESTART, clock.now)
        advance(site.store, run_id, APPROVED_RESTART, Start(), clock.now)
        approval_id = add_approval(site.store, alpha.client_id, run_id, 1, clock.now)
        with site.store.write() as conn:
            run_admin.decide_approval(
                conn, alpha.client_id, approval_id, "key:x", True, "", clock.now
            ).checked()
        got = runs_of(events(ours, lambda f: len(runs_of(f)) == 3))
        # a change of beta's made after alpha's reaches beta's stream, and nothing of alpha's came first
        other = queue_run(site.store, beta.client_id, APPROVED_RESTART, clock.now)
        seen = runs_of(events(theirs, lambda f: len(runs_of(f)) >= 1))
    assert [(e["kind"], e["run_id"]) for e in got] == [
        ("run.queued", run_id),
        ("run.progress", run_id),
        ("approval.approved", run_id),
    ]
    assert got[1]["status"] == "waiting_approval" and got[1]["seq"] == 1 and got[1]["step"] == "restart"
    assert got[2]["approval_id"] == approval_id
    assert [(e["kind"], e["run_id"]) for e in seen] == [("run.queued", other)]
