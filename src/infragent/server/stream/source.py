"""What the stream reads from the databases, turned into events: the feed's tails, a resumed
client's catch-up, the hosts' states and the default live chart values.

Every method is blocking (one short transaction) and runs in a worker thread (``feeds.py``); the
event loop only fans the events out. The SQL lives in ``store/stream_reads.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from infragent.server.stream.cursor import Cursor, Event
from infragent.store import stream_reads as reads
from infragent.store.base import Database
from infragent.store.metrics import MetricReader
from infragent.store.stream_reads import (
    CommandChange,
    NotificationChange,
    Positions,
    RunChange,
    TimelineChange,
)


@dataclass(frozen=True, slots=True)
class MetricsPoint:
    """A host's newest value of each chart series (keys = the host page's chart keys) at ``ts``."""

    ts: float
    values: dict[str, float]


#: ``sample(client_id, host, after_ts)``: the points of the host's chart series newer than
#: ``after_ts``, oldest first. The host page's chart definitions provide the real one.
Sampler = Callable[[str, str, float], list[MetricsPoint]]

#: the load series of the default sampler (the agent's cpu collector)
LOAD = "system.cpu.load_average.1m"


@dataclass(frozen=True, slots=True)
class Tail:
    """What one read of the tails found: events in order and the cursor after them."""

    events: list[Event]
    cursor: Cursor
    #: rows remain before ``upto``: read again without waiting
    more: bool


@dataclass(frozen=True, slots=True)
class HostState:
    host: str
    last_seen: float
    online: bool

    def event(self, cursor: Cursor) -> Event:
        data = {"host": self.host, "online": self.online, "last_seen": self.last_seen}
        return Event("host", data, cursor)


def incident_event(change: TimelineChange, cursor: Cursor) -> Event:
    data = {
        "incident_id": change.incident_id,
        "status": change.status,
        "title": change.title,
        "severity": change.severity,
        "kind": change.kind,
        "at": change.at,
    }
    return Event("incident", data, cursor, "t", change.id)


def command_event(change: CommandChange, cursor: Cursor) -> Event:
    data = {
        "command_id": change.command_id,
        "host": change.host,
        "action": change.action,
        "status": change.status,
        "output": change.output,
        "requested_by": change.requested_by,
        "at": change.at,
    }
    return Event("command", data, cursor, "a", change.audit_id)


def notification_event(change: NotificationChange, cursor: Cursor) -> Event:
    """An in-app notification, for its recipients' streams only. The data says what it is about
    (no channel, no secret); the page fetches the user's own unread count (``/inbox/count``)."""
    data = {
        "delivery_id": change.delivery_id,
        "incident_ids": list(change.incident_ids),
        "title": change.title,
        "at": change.at,
    }
    owners = frozenset(f"user:{u}" for u in change.users)
    return Event("notification", data, cursor, "a", change.audit_id, owners=owners)


def run_event(change: RunChange, cursor: Cursor) -> Event:
    """A runbook run or one of its approvals changed (audit kinds ``run.*``, ``approval.*``): the
    kind, the run, and the status, outcome or step the entry names. The page re-reads the run."""
    data = {
        "kind": change.kind,
        "run_id": change.run_id,
        "approval_id": change.approval_id,
        "status": change.status,
        "outcome": change.outcome,
        "seq": change.seq,
        "step": change.step,
        "at": change.at,
    }
    return Event("run", data, cursor, "a", change.audit_id)


@dataclass
class StreamSource:
    """The stream's reads over the server's store and metric store."""

    store: Database
    metric_store: MetricReader
    #: a host is online when its newest sample is at most this old
    online_s: float
    #: rows read per tail per call
    batch: int = 100
    sampler: Sampler | None = field(default=None)

    def positions(self, client_id: str) -> Positions:
        with self.store.read() as conn:
            return reads.positions(conn, client_id)

    def tail(self, client_id: str, start: Cursor, upto: Positions, limit: int | None = None) -> Tail:
        """Incident, command, notification and run events after ``start`` up to ``upto``: timeline rows
        first, then audit entries, each event's cursor the position right after it."""
        n = limit or self.batch
        with self.store.read() as conn:
            changes = reads.timeline_between(conn, client_id, start.timeline, upto.timeline, n)
            audited, examined = reads.audit_between(conn, client_id, start.audit, upto.audit, n)
        events: list[Event] = []
        t_done = upto.timeline if len(changes) < n else changes[-1].id
        for c in changes:
            events.append(incident_event(c, Cursor(c.id, start.audit, start.hosts_ms)))
        t_done = max(t_done, start.timeline)
        for change in audited:
            after = Cursor(t_done, change.audit_id, start.hosts_ms)
            if isinstance(change, NotificationChange):
                events.append(notification_event(change, after))
            elif isinstance(change, RunChange):
                events.append(run_event(change, after))
            else:
                events.append(command_event(change, after))
        a_done = max(examined, start.audit)
        more = t_done < upto.timeline or a_done < upto.audit
        return Tail(events, Cursor(t_done, a_done, start.hosts_ms), more)

    def host_times(self, client_id: str, since: float | None = None) -> list[tuple[str, float]]:
        with self.store.read() as conn:
            return reads.host_last_seen(conn, client_id, since)

    def host_exists(self, client_id: str, host: str) -> bool:
        with self.store.read() as conn:
            return reads.host_exists(conn, client_id, host)

    def state(self, host: str, last_seen: float, now: float) -> HostState:
        return HostState(host, last_seen, now - last_seen <= self.online_s)

    def replay(
        self, client_id: str, resume: Cursor, upto: Cursor, limit: int, now: float
    ) -> list[Event] | None:
        """What a client resumed at ``resume`` missed until the feed's position ``upto``, or None
        when that is more than ``limit`` events (the client is told to reload instead).

        Hosts: the current state of every host whose state may have changed since ``resume``'s
        host check (seen since, or online then). A state is idempotent, so a repeat is harmless.
        """
        tail = self.tail(client_id, resume, Positions(upto.timeline, upto.audit), limit)
        if tail.more or len(tail.events) > limit:
            return None
        since = resume.hosts_ms / 1000.0 - self.online_s
        hosts = self.host_times(client_id, since) if resume.hosts_ms < upto.hosts_ms else []
        if len(tail.events) + len(hosts) > limit:
            return None
        final = tail.cursor.max(upto)
        return tail.events + [self.state(h, ts, now).event(final) for h, ts in sorted(hosts)]

    def sample(self, client_id: str, host: str, after_ts: float) -> list[MetricsPoint]:
        """The injected sampler, or the default: CPU and memory from the host's fleet row (kept at
        write time, one key lookup) and the 1-minute load average, as fractions and threads."""
        if self.sampler is not None:
            return self.sampler(client_id, host, after_ts)
        return self.default_sample(client_id, host, after_ts)

    def default_sample(self, client_id: str, host: str, after_ts: float) -> list[MetricsPoint]:
        with self.store.read() as conn:
            row = reads.host_values(conn, client_id, host)
        if row is None or row.last_seen <= after_ts:
            return []
        values: dict[str, float] = {}
        newest = after_ts
        if row.cpu is not None and row.cpu[0] > after_ts:
            values["cpu"] = 1.0 - row.cpu[1]
            newest = max(newest, row.cpu[0])
        if row.memory is not None and row.memory[0] > after_ts:
            values["memory"] = row.memory[1]
            newest = max(newest, row.memory[0])
        if row.filesystem is not None and row.filesystem[0] > after_ts:
            values["filesystem"] = row.filesystem[1]
            newest = max(newest, row.filesystem[0])
        load = self.metric_store.query_range(client_id, host, LOAD, {}, after_ts, row.last_seen)
        load = [p for p in load if p[0] > after_ts]
        if load:
            values["load"] = load[-1][1]
            newest = max(newest, load[-1][0])
        return [MetricsPoint(newest, values)] if values else []
