"""A real agent ships, a real CPU hog makes the host busy: one incident opens, stays one, resolves.

The whole detection path with real processes: ``infragent agent`` collects ``system.cpu.utilization``
every second and ships it to ``infragent server`` (SQLite or PostgreSQL), whose evaluator runs the
threshold rule at ingest and on its tick; the incident is read back through the API.

The rule, ``sum by (host) (avg(system.cpu.utilization{cpu.mode!="idle"}[3s])) > 0.8 for 5s``, is
the shape of the default pack's HighCpu with short durations; ``support/detect.py`` says why 0.8.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infragent.store.sql import SqlStore
from support.detect import (
    TICK_S,
    busy_rule,
    cpu_hog,
    deployment,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
RULE = "E2eHostBusy"
FOR_S = 5.0


def test_cpu_hog_opens_one_incident_that_resolves_when_it_stops(
    store: SqlStore, db_url: str, tmp_path: Path
) -> None:
    with deployment(store, db_url, tmp_path) as d:
        server = d.server().start()
        api = d.api(server)
        agent = d.agent(server).start()
        # A shared machine may be busy by itself: the rule is added once the host is quiet, so that
        # what it sees is the hog (``wait_quiet`` skips the test if the host stays busy).
        d.wait_quiet(90)
        api.add_rule(busy_rule(RULE, function="avg", window="3s", for_="5s"))

        with cpu_hog(max_s=60) as hog:
            assert hog.started_at is not None
            incident = wait_for(lambda: next(iter(api.incidents(RULE)), None), 40, "the incident to open")
            assert incident["status"] == "open", incident
            rows = d.transitions(RULE)
            assert [(t.from_status, t.to_status) for t in rows] == [
                ("inactive", "pending"),
                ("pending", "firing"),
            ]
            pending, fired = rows
            assert pending.at >= hog.started_at
            # ``for`` is honoured: the alert fired when it had been pending for 5 s, not earlier.
            assert FOR_S - 1e-6 <= fired.at - pending.at <= FOR_S + TICK_S
            assert fired.incident_id == incident["id"]

            # It stays one incident while the host stays busy: three more batches evaluated.
            shipped = d.stored_batches()
            wait_for(lambda: d.stored_batches() >= shipped + 3, 20, "three more batches")
            assert [i["id"] for i in api.incidents(RULE)] == [incident["id"]]
            alert = api.alert(RULE)
            assert alert is not None and alert["status"] == "firing", alert
            assert alert["firing_since"] == pytest.approx(fired.at)
            assert alert["incident_id"] == incident["id"]
            assert len(d.transitions(RULE)) == 2
            hog.stop()

        assert hog.stopped_at is not None
        resolved = wait_for(
            lambda: next((i for i in api.incidents(RULE) if i["status"] == "resolved"), None),
            60,
            "the incident to resolve after the hog stopped",
        )
        assert resolved["id"] == incident["id"]
        assert agent.running

        rows = d.transitions(RULE)
        assert [(t.from_status, t.to_status) for t in rows] == [
            ("inactive", "pending"),
            ("pending", "firing"),
            ("firing", "inactive"),
        ]
        assert rows[2].at >= hog.stopped_at
        assert resolved["resolved_at"] == pytest.approx(rows[2].at)
        assert {t.incident_id for t in rows[1:]} == {incident["id"]}
        detail = api.incident(incident["id"])
        moves = [(e["detail"]["from"], e["detail"]["to"]) for e in detail["timeline"] if e["kind"] == "alert"]
        assert moves == [("pending", "firing"), ("firing", "inactive")]
        assert [i["id"] for i in api.incidents(RULE)] == [incident["id"]]
