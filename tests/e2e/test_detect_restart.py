"""The server SIGKILLed mid-``for`` and mid-firing: timers and incidents survive, nothing is doubled.

Samples are injected (``support.detect.Feeder``: the busy fraction every 0.5 s, stamped when sent,
kept and re-sent while the server is down, as the agent's spool does), so the test knows when the
condition started to hold. The rule reads ``last`` over 20 s: the newest sample stays in the window
while the server is down and restarts (≈2 s, plus the dead process's 2 s lease), so the condition
does not lapse for want of data, and one low sample ends it.

Mid-``for``: ``for: 10s``, long enough that the restarted server is normally back before the alert
is due and fires it on its own tick; either way the firing must be stamped with the persisted due
time, ``active_since + for`` (the pending transition's ``at`` + 10 s), and recorded once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infragent.store.sql import SqlStore
from support.detect import TICK_S, Deployment, DetectServer, Feeder, busy_rule, deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]
RULE = "E2eHostBusyRestart"


def _moves(d: Deployment) -> list[tuple[str, str]]:
    return [(t.from_status, t.to_status) for t in d.transitions(RULE)]


def _restart(d: Deployment, server: DetectServer) -> int:
    """Start ``server`` again and wait until it holds the tenant and has evaluated its alerts."""
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    api = d.api(server)
    wait_for(lambda: d.lease_owner_pid() == pid, 20, "the restarted server to take the tenant's lease")
    wait_for(
        lambda: api.self_metrics().get("infragent_rule_evaluations_total", 0) > 0,
        20,
        "the restarted server to evaluate the tenant's alerts",
    )
    return pid


def test_killed_while_pending_fires_at_the_persisted_due_time(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    for_s = 10.0
    with deployment(store, db_url, tmp_path) as d:
        server = d.server().start()
        api = d.api(server)
        api.add_rule(busy_rule(RULE, function="last", window="20s", for_="10s"))
        with Feeder(d.api_key, [server.url], level=1.0) as feed:
            pending = wait_for(lambda: next(iter(d.transitions(RULE)), None), 30, "the alert to be pending")
            assert (pending.from_status, pending.to_status) == ("inactive", "pending")
            due = pending.at + for_s
            server.kill()
            assert time.time() < due, "the server was not killed mid-for"
            assert _moves(d) == [("inactive", "pending")]

            _restart(d, server)
            fired = wait_for(
                lambda: d.transitions(RULE)[1:2] or None, due - time.time() + 20, "the alert to fire"
            )[0]
            feed.check()
            assert (fired.from_status, fired.to_status) == ("pending", "firing")
            assert due - 1e-6 <= fired.at <= due + TICK_S  # the persisted due time, not the restart's
            alert = api.alert(RULE)
            assert alert is not None and alert["status"] == "firing", alert
            assert alert["active_since"] == pytest.approx(pending.at)
            assert alert["firing_since"] == pytest.approx(fired.at)
            [incident] = wait_for(lambda: api.incidents(RULE) or None, 10, "the incident")
            assert incident["status"] == "open" and incident["id"] == fired.incident_id

            feed.level = 0.0
            wait_for(lambda: len(d.transitions(RULE)) >= 3, 20, "the alert to resolve")
        assert _moves(d) == [("inactive", "pending"), ("pending", "firing"), ("firing", "inactive")]
        [resolved] = wait_for(
            lambda: [i for i in api.incidents(RULE) if i["status"] == "resolved"] or None,
            10,
            "the resolution",
        )
        assert resolved["id"] == incident["id"]


@pytest.mark.parametrize("load_ends", ["after the restart", "while the server is down"])
def test_killed_while_firing_stays_firing_and_resolves_once(
    store: SqlStore, db_url: str, tmp_path: Path, load_ends: str
) -> None:
    with deployment(store, db_url, tmp_path) as d:
        server = d.server().start()
        api = d.api(server)
        api.add_rule(busy_rule(RULE, function="last", window="20s", for_="5s"))
        with Feeder(d.api_key, [server.url], level=1.0) as feed:
            [incident] = wait_for(lambda: api.incidents(RULE) or None, 30, "the incident to open")
            pending, fired = d.transitions(RULE)
            assert fired.to_status == "firing" and fired.incident_id == incident["id"]

            server.kill()
            if load_ends == "while the server is down":
                feed.level = 0.0
                backlog = len(feed.backlog)
                wait_for(lambda: len(feed.backlog) >= backlog + 2, 10, "low samples held back")
            _restart(d, server)
            feed.check()
            if load_ends == "after the restart":
                # Still firing after the restarted server evaluated it: no new episode, same incident.
                alert = api.alert(RULE)
                assert alert is not None and alert["status"] == "firing", alert
                assert alert["firing_since"] == pytest.approx(fired.at)
                assert alert["incident_id"] == incident["id"]
                assert _moves(d) == [("inactive", "pending"), ("pending", "firing")]
                assert [(i["id"], i["status"]) for i in api.incidents(RULE)] == [(incident["id"], "open")]
                feed.level = 0.0

            [resolved] = wait_for(
                lambda: [i for i in api.incidents(RULE) if i["status"] == "resolved"] or None,
                20,
                "the incident to resolve",
            )
        assert resolved["id"] == incident["id"]
        assert [i["id"] for i in api.incidents(RULE)] == [incident["id"]]
        rows = d.transitions(RULE)
        assert [(t.from_status, t.to_status) for t in rows] == [
            ("inactive", "pending"),
            ("pending", "firing"),
            ("firing", "inactive"),
        ]
        assert (rows[0].at, rows[1].at) == (pending.at, fired.at)
        assert rows[2].incident_id == incident["id"]
        detail = api.incident(incident["id"])
        moves = [(e["detail"]["from"], e["detail"]["to"]) for e in detail["timeline"] if e["kind"] == "alert"]
        assert moves == [("pending", "firing"), ("firing", "inactive")]
