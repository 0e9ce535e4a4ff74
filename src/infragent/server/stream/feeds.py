"""Subscribers and the feeds that fill their queues: one tenant feed per tenant with a subscriber,
one metrics feed per (tenant, host) with a subscriber.

Why one poller per tenant and not one per connection: a hundred open dashboards of a tenant then
cost one pair of indexed tail reads every ``poll_s``, not a hundred. Why polling the database and
not an in-process signal: incidents and commands are committed by other processes too (a second
server, a separate responder), and the tails see all of them (``store/stream_reads.py``).

Backpressure: ``publish`` never waits. Each subscriber has a bounded queue; one that is full is
dropped on the spot (its queue is emptied and closed, so its response ends and the browser
reconnects with ``Last-Event-ID``). A slow client therefore never slows the feed nor the others,
and nothing is buffered for it without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread

from infragent.server.stream.cursor import Cursor, Event
from infragent.server.stream.source import StreamSource

logger = logging.getLogger(__name__)

#: A failing poll (database down) is retried after this long; subscribers stay connected.
RETRY_S = 2.0


@dataclass(eq=False)
class Subscriber:
    """One open stream: its tenant, optional host, who holds it, and its bounded queue."""

    client_id: str
    owner: str
    host: str | None
    queue_max: int
    #: what the client already had (a resumed cursor ahead of the feed); events at or below are skipped
    floor: Cursor = field(default_factory=Cursor)
    queue: asyncio.Queue[Event | None] = field(init=False)
    dropped: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_max)

    def offer(self, event: Event) -> bool:
        """Queue ``event``; False when the queue is full (the caller drops this subscriber)."""
        if self.closed or event.seen_by(self.floor):
            return True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Close the stream: empty the queue and leave the end mark its reader returns on."""
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Feed:
    """A polling task with subscribers; ``on_drop`` is told of each subscriber dropped as slow."""

    def __init__(self, on_drop: Callable[[Subscriber], None]) -> None:
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None
        self._on_drop = on_drop

    def publish(self, events: list[Event]) -> None:
        """Fan ``events`` out, in order, without waiting; a full subscriber is dropped."""
        for event in events:
            for sub in list(self.subscribers):
                if (event.host is not None and sub.host != event.host) or not event.for_owner(sub.owner):
                    continue
                if not sub.offer(event):
                    self.subscribers.discard(sub)
                    self._on_drop(sub)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._guarded())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _guarded(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not leave subscribers hanging on a dead feed
            logger.exception("live stream feed failed")
            for sub in list(self.subscribers):
                sub.end()
            self.subscribers.clear()

    async def run(self) -> None:
        raise NotImplementedError


#: host events one poll publishes at most; more become one summary event (``_host_changes``)
MAX_HOST_EVENTS = 50


class TenantFeed(Feed):
    """Incident, command and host events of one tenant, read every ``poll_s``.

    ``position`` is the cursor after the last event published: a subscriber that joins takes it as
    the point its catch-up ends and its live events begin (no await in between, so none is lost).
    """

    def __init__(
        self,
        client_id: str,
        source: StreamSource,
        on_drop: Callable[[Subscriber], None],
        *,
        poll_s: float,
        host_check_s: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(on_drop)
        self.client_id = client_id
        self.position = Cursor()
        self.ready = asyncio.Event()
        self._source = source
        self._poll_s = poll_s
        self._host_check_s = host_check_s
        self._clock = clock
        #: host -> (newest sample time, online as last announced)
        self._hosts: dict[str, tuple[float, bool]] = {}
        self._hosts_checked = 0.0

    async def run(self) -> None:
        while not self.ready.is_set():
            try:
                await self._begin()
            except Exception:
                logger.warning("live stream: cannot read tenant %s; retrying", self.client_id, exc_info=True)
                await asyncio.sleep(RETRY_S)
        while True:
            try:
                more = await self._poll()
            except Exception:
                logger.warning(
                    "live stream: poll failed for tenant %s; retrying", self.client_id, exc_info=True
                )
                await asyncio.sleep(RETRY_S)
                continue
            if not more:
                await asyncio.sleep(self._poll_s)

    async def _begin(self) -> None:
        now = self._clock()
        tails = await anyio.to_thread.run_sync(self._source.positions, self.client_id)
        seen = await anyio.to_thread.run_sync(self._source.host_times, self.client_id)
        for host, last_seen in seen:
            self._hosts[host] = (last_seen, self._source.state(host, last_seen, now).online)
        self.position = Cursor(tails.timeline, tails.audit, int(now * 1000))
        self._hosts_checked = time.monotonic()
        self.ready.set()

    async def _poll(self) -> bool:
        """One round: the tails up to their newest ids, then (every ``host_check_s``) the hosts.
        Returns whether rows remain to read at once."""
        upto = await anyio.to_thread.run_sync(self._source.positions, self.client_id)
        tail = await anyio.to_thread.run_sync(self._source.tail, self.client_id, self.position, upto)
        self.position = tail.cursor
        self.publish(tail.events)
        if not tail.more and time.monotonic() - self._hosts_checked >= self._host_check_s:
            now = self._clock()
            seen = await anyio.to_thread.run_sync(self._source.host_times, self.client_id)
            self._hosts_checked = time.monotonic()
            self.position = Cursor(self.position.timeline, self.position.audit, int(now * 1000))
            self.publish(self._host_changes(seen, now))
        return tail.more

    def _host_changes(self, seen: list[tuple[str, float]], now: float) -> list[Event]:
        """A host that appeared, or whose online state flipped since it was last announced; past
        ``MAX_HOST_EVENTS`` in one round, one summary instead (``host`` null, with the counts).

        Why a summary: a fleet-wide change (the server was down, a network split, a thousand hosts
        seeded at once) flips every host in the same second; one event per host would fill every
        subscriber's queue and drop them all, while the pages only need to know to re-render."""
        events: list[Event] = []
        for host, last_seen in seen:
            state = self._source.state(host, last_seen, now)
            known = self._hosts.get(host)
            self._hosts[host] = (last_seen, state.online)
            if known is None or known[1] != state.online:
                events.append(state.event(self.position))
        if len(events) <= MAX_HOST_EVENTS:
            return events
        online = sum(1 for e in events if e.data["online"])
        summary = {"host": None, "changed": len(events), "online": online, "offline": len(events) - online}
        return [Event("host", summary, self.position)]


class MetricsFeed(Feed):
    """One host's newest chart values, sampled every ``poll_s`` for the subscribers of that host.
    Metrics events carry no ``id``: they are not replayed (the page reloads the chart's range)."""

    #: the first sample looks back this far, so a point ingested just before the page opened shows
    LOOKBACK_S = 5.0

    def __init__(
        self,
        client_id: str,
        host: str,
        source: StreamSource,
        on_drop: Callable[[Subscriber], None],
        *,
        poll_s: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(on_drop)
        self.client_id = client_id
        self.host = host
        self._source = source
        self._poll_s = poll_s
        self._after = clock() - self.LOOKBACK_S

    async def run(self) -> None:
        while True:
            try:
                points = await anyio.to_thread.run_sync(
                    self._source.sample, self.client_id, self.host, self._after
                )
            except Exception:
                logger.warning("live stream: metrics of %s failed; retrying", self.host, exc_info=True)
                await asyncio.sleep(RETRY_S)
                continue
            for p in points:
                self._after = max(self._after, p.ts)
            data = [{"host": self.host, "ts": p.ts, "values": p.values} for p in points]
            self.publish([Event("metrics", d, host=self.host) for d in data])
            await asyncio.sleep(self._poll_s)
