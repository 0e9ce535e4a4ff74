"""Two server processes on one PostgreSQL database, one tenant: each transition is recorded once.

Batches go to the two servers in turn (``Feeder``), so each server stores half of them; one of them
holds the tenant's evaluation lease and evaluates (the other signals it), and the other takes over
when the holder is SIGKILLed. What is counted is the ``alert_transitions`` table and the incident
timeline: one row per transition, one incident, whatever process wrote it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infragent.store.sql import SqlStore
from support.detect import Deployment, DetectServer, Feeder, busy_rule, deployment, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(150),
    pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True),
]
RULE = "E2eHostBusyTwoServers"
EPISODE = [("inactive", "pending"), ("pending", "firing"), ("firing", "inactive")]


def _pid(server: DetectServer) -> int:
    assert server.proc is not None
    return server.proc.pid


def _holder(d: Deployment, servers: list[DetectServer]) -> DetectServer:
    by_pid = {_pid(s): s for s in servers}

    def held() -> DetectServer | None:
        pid = d.lease_owner_pid()
        return by_pid.get(pid) if pid is not None else None

    return wait_for(held, 20, "one of the servers to hold the tenant's lease")


def _sole_holder(d: Deployment, servers: list[DetectServer]) -> DetectServer | None:
    """The one server that counts the tenant's lease as held, if it is the one the table names and
    every other counts none; else None (say, mid-takeover)."""
    held = {s: d.api(s).self_metrics()["infragent_rule_leases_held"] for s in servers}
    holders = [s for s, n in held.items() if n == 1.0]
    others_zero = all(n == 0.0 for s, n in held.items() if s not in holders)
    if len(holders) == 1 and others_zero and _pid(holders[0]) == d.lease_owner_pid():
        return holders[0]
    return None


def _assert_one_episode(d: Deployment, server: DetectServer, incident_id: str) -> None:
    rows = d.transitions(RULE)
    assert [(t.from_status, t.to_status) for t in rows] == EPISODE
    assert {t.incident_id for t in rows[1:]} == {incident_id}
    api = d.api(server)
    assert [i["id"] for i in api.incidents(RULE)] == [incident_id]
    timeline = api.incident(incident_id)["timeline"]
    moves = [(e["detail"]["from"], e["detail"]["to"]) for e in timeline if e["kind"] == "alert"]
    assert moves == EPISODE[1:]
    assert [e["kind"] for e in timeline].count("opened") == 1


def test_two_servers_record_each_transition_once(store: SqlStore, db_url: str, tmp_path: Path) -> None:
    with deployment(store, db_url, tmp_path) as d:
        servers = [d.server().start(), d.server().start()]
        d.api(servers[0]).add_rule(busy_rule(RULE, function="last", window="20s", for_="5s"))
        with Feeder(d.api_key, [s.url for s in servers], level=1.0) as feed:
            [incident] = wait_for(
                lambda: d.api(servers[1]).incidents(RULE) or None, 30, "the incident to open"
            )
            assert incident["status"] == "open"
            # Exactly one process evaluates the tenant (the table and both gauges agree); both answer.
            wait_for(lambda: _sole_holder(d, servers), 10, "one server alone to hold the lease")
            assert d.api(servers[0]).incidents(RULE) == d.api(servers[1]).incidents(RULE)
            feed.level = 0.0
            wait_for(
                lambda: [i for i in d.api(servers[0]).incidents(RULE) if i["status"] == "resolved"] or None,
                20,
                "the incident to resolve",
            )
            feed.check()
        assert all(feed.sent[s.url] >= 5 for s in servers), feed.sent  # both servers took batches
        _assert_one_episode(d, servers[0], incident["id"])


def test_the_other_server_takes_over_a_killed_holder(store: SqlStore, db_url: str, tmp_path: Path) -> None:
    with deployment(store, db_url, tmp_path) as d:
        servers = [d.server().start(), d.server().start()]
        d.api(servers[0]).add_rule(busy_rule(RULE, function="last", window="20s", for_="5s"))
        with Feeder(d.api_key, [s.url for s in servers], level=1.0) as feed:
            holder = _holder(d, servers)
            [survivor] = [s for s in servers if s is not holder]
            api = d.api(survivor)
            [incident] = wait_for(lambda: api.incidents(RULE) or None, 30, "the incident to open")
            evaluated = api.self_metrics().get("infragent_rule_evaluations_total", 0)
            holder.kill()
            wait_for(lambda: d.lease_owner_pid() == _pid(survivor), 20, "the survivor to take the lease over")
            wait_for(
                lambda: api.self_metrics().get("infragent_rule_evaluations_total", 0) > evaluated,
                20,
                "the survivor to evaluate the tenant's alerts",
            )
            alert = api.alert(RULE)
            assert alert is not None and alert["status"] == "firing", alert
            assert [t.to_status for t in d.transitions(RULE)] == ["pending", "firing"]
            feed.level = 0.0
            wait_for(
                lambda: [i for i in api.incidents(RULE) if i["status"] == "resolved"] or None,
                20,
                "the incident to resolve",
            )
            feed.check()
        _assert_one_episode(d, survivor, incident["id"])
