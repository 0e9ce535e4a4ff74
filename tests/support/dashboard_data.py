"""Seed what the dashboard pages show, through the store's own functions, fast: hosts (the
``metric_hosts`` rows ingest keeps, in one transaction), host metrics (``write_batch``), incidents
opened by events, and commands with their results.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any

from infragent.incidents.model import IncidentPolicy
from infragent.model import ActionResult, Decision, Severity
from infragent.store import commands, events, incidents
from infragent.store.metrics import SqlMetricStore
from infragent.store.metrics.hosts import note_batch
from infragent.store.sql import SqlStore
from infragent.wire import MetricBatch, SeriesData


def add_hosts(store: SqlStore, client_id: str, seen: Iterable[tuple[str, float]]) -> None:
    """Hosts with their newest sample time, as ingest notes them (one upsert per host)."""
    with store.write() as conn:
        for host, ts in seen:
            idle = SeriesData(
                "system.cpu.utilization", "1", "gauge", False, {"cpu.mode": "idle"}, [ts], [0.75]
            )
            note_batch(
                conn, postgres=store.is_postgres, client_id=client_id, host=host, series=[idle], now=ts
            )


def host_metrics(metrics: SqlMetricStore, client_id: str, host: str, ts: list[float]) -> None:
    """One batch of a host agent's chart series at times ``ts`` (counters grow 1,000 B/s)."""
    n = len(ts)
    growing = [1000.0 * (t - ts[0]) for t in ts]

    def s(name: str, kind: str, attrs: dict[str, str], values: list[float]) -> SeriesData:
        return SeriesData(name, "1", kind, kind == "sum", attrs, ts, values)  # type: ignore[arg-type]

    series = [
        s("system.cpu.utilization", "gauge", {"cpu.mode": "idle"}, [0.75] * n),
        s("system.memory.utilization", "gauge", {"system.memory.state": "used"}, [0.5] * n),
        s(
            "system.filesystem.utilization",
            "gauge",
            {"system.filesystem.mountpoint": "/", "system.filesystem.state": "used"},
            [0.2] * n,
        ),
        s(
            "system.filesystem.utilization",
            "gauge",
            {"system.filesystem.mountpoint": "/var", "system.filesystem.state": "used"},
            [0.9] * n,
        ),
        s("system.disk.io", "sum", {"system.device": "sda", "disk.io.direction": "read"}, growing),
        s("system.disk.io", "sum", {"system.device": "sda", "disk.io.direction": "write"}, growing),
        s(
            "system.network.io",
            "sum",
            {"network.interface.name": "eth0", "network.io.direction": "receive"},
            growing,
        ),
        s(
            "system.network.io",
            "sum",
            {"network.interface.name": "eth0", "network.io.direction": "transmit"},
            growing,
        ),
        s("system.cpu.load_average.1m", "gauge", {}, [0.5] * n),
    ]
    metrics.write_batch(client_id, MetricBatch(f"b-{host}-{ts[0]}", host, {}, series), ts[-1])


def incident(
    store: SqlStore,
    client_id: str,
    now: float,
    node: str = "web-1",
    severity: Severity = Severity.CRITICAL,
    service: str = "web",
    type: str = "app_down",
    data: dict[str, Any] | None = None,
) -> str:
    """An incident opened by an event of ``node`` (a check of its agent going down); the event's
    ``data`` is ``{"error": "connection refused"}`` unless given."""
    with store.write() as conn:
        event = events.insert_event(
            conn,
            client_id,
            type=type,
            service=service,
            severity=severity,
            data={"error": "connection refused"} if data is None else data,
            node_id=node,
            now=now,
        )
        found = incidents.record_event(conn, event, IncidentPolicy(), now)
        return found


def command(
    store: SqlStore,
    client_id: str,
    agent_id: str,
    now: float,
    result: str | None,
    incident_id: str | None = None,
    output: str = "restarted",
) -> str:
    """A decided command (runbook ``restart``), finished with ``result`` (``ok``/``error``) or left queued."""
    with store.write() as conn:
        _, command_id = commands.record_decision(
            conn,
            client_id=client_id,
            agent_id=agent_id,
            event_ids=[],
            decision=Decision("runbook", "restart", "web is down: restart it", target="web"),
            now=now,
            actor="responder",
            incident_id=incident_id,
        )
        assert command_id is not None
        if result is not None:
            commands.record_result(
                conn,
                client_id,
                command_id,
                ActionResult(result, output),
                now + 1,
                "agent",
                "pull",  # type: ignore[arg-type]
            )
    return command_id


VOID = frozenset({"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _Tagged(HTMLParser):
    """Every element with a ``data-test`` attribute: its attributes and its text (nested included)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str]] = []
        self._open: list[tuple[str, dict[str, str] | None, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        got = {k: v or "" for k, v in attrs}
        if tag in VOID:
            if "data-test" in got:
                self.found.append(got | {"_tag": tag, "_text": ""})
            return
        entry = got | {"_tag": tag} if "data-test" in got else None
        if entry is not None:
            self.found.append(entry)
        self._open.append((tag, entry, []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            name, entry, text = self._open.pop()
            joined = "".join(text)
            if entry is not None:
                entry["_text"] = re.sub(r"\s+", " ", joined).strip()
            if self._open:
                self._open[-1][2].append(joined)
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)


def tagged(html: str) -> list[dict[str, str]]:
    parser = _Tagged()
    parser.feed(html)
    parser.close()
    return parser.found


def rows(html: str, test: str) -> list[dict[str, str]]:
    """The ``data-test=<test>`` elements' attributes and text (``_text``), in document order."""
    return [e for e in tagged(html) if e["data-test"] == test]


def one(html: str, test: str) -> dict[str, str]:
    found = rows(html, test)
    assert len(found) == 1, f"{len(found)} elements data-test={test!r}"
    return found[0]
