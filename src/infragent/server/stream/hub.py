"""``StreamHub``: the server's live streams. Who may open one (a cap per user or key), which feeds
run (only those with a subscriber), what a resumed client catches up on, and the counters.

The lifecycle of one stream (``server/api/stream.py``): ``open`` (None past the owner's cap: 429),
``attach`` (joins the tenant's feed, starting it if it is the first subscriber, and returns the
catch-up for a resumed cursor), then the route reads the subscriber's queue until the client
leaves or is dropped, and ``close`` (always, from the route's dependency teardown) leaves the feeds;
a feed left with no subscriber is cancelled at once, so an idle tenant costs no query.

Everything here runs on the server's event loop (one per process): no locks. Reads run in worker
threads (``feeds.py``, ``source.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Gauge

from infragent.server.stream.cursor import Cursor, Event
from infragent.server.stream.feeds import MetricsFeed, Subscriber, TenantFeed
from infragent.server.stream.source import StreamSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubConfig:
    """The stream's limits (settings ``stream_*``) and cadences."""

    max_per_owner: int = 8
    heartbeat_s: float = 15.0
    queue_max: int = 500
    poll_s: float = 0.5
    metrics_poll_s: float = 1.0
    host_check_s: float = 1.0
    #: a resumed client missing more than this gets a ``reset`` event instead of the events
    replay_max: int = 200
    #: how long a new stream waits for its tenant feed's first read (database down: 503)
    ready_timeout_s: float = 10.0


class StreamHub:
    """Subscribers by tenant and host, their feeds, the per-owner cap and the stream's metrics."""

    def __init__(
        self,
        source: StreamSource,
        config: HubConfig,
        *,
        clock: Callable[[], float],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self._clock = clock
        self._feeds: dict[str, TenantFeed] = {}
        self._metrics: dict[tuple[str, str], MetricsFeed] = {}
        self._owners: Tally[str] = Tally()
        self._subscribers: set[Subscriber] = set()
        self.dropped_total = 0
        self._dropped = Counter(
            "infragent_stream_dropped",
            "Live-stream subscribers dropped because their queue was full (a slow client).",
            registry=registry,
        )
        subscribers = Gauge(
            "infragent_stream_subscribers", "Open live-stream connections.", registry=registry
        )
        subscribers.set_function(lambda: len(self._subscribers))
        feeds = Gauge("infragent_stream_feeds", "Running tenant and metrics feeds.", registry=registry)
        feeds.set_function(lambda: len(self._feeds) + len(self._metrics))

    # -- counts, for tests and /metrics --------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def feed_count(self) -> int:
        """Running feeds: tenant feeds plus metrics feeds."""
        return len(self._feeds) + len(self._metrics)

    def owner_count(self, owner: str) -> int:
        return self._owners[owner]

    # -- one stream's lifecycle ----------------------------------------------------------------

    def open(self, client_id: str, owner: str, host: str | None) -> Subscriber | None:
        """A new subscriber for ``owner`` (``user:<id>``/``key:<id>``), or None past its cap."""
        if self._owners[owner] >= self.config.max_per_owner:
            return None
        self._owners[owner] += 1
        sub = Subscriber(client_id, owner, host, self.config.queue_max)
        self._subscribers.add(sub)
        return sub

    async def attach(self, sub: Subscriber, resume: Cursor | None) -> list[Event]:
        """Join the feeds; return what the client gets before live events: the catch-up after
        ``resume`` (or a ``reset`` when it is too long), then ``ready`` carrying the cursor.
        Raises ``TimeoutError`` when the tenant's feed cannot read the database in time."""
        feed = self._feeds.get(sub.client_id)
        if feed is None:
            feed = TenantFeed(
                sub.client_id,
                self.source,
                self._drop,
                poll_s=self.config.poll_s,
                host_check_s=self.config.host_check_s,
                clock=self._clock,
            )
            self._feeds[sub.client_id] = feed
            feed.start()
        try:
            await asyncio.wait_for(feed.ready.wait(), self.config.ready_timeout_s)
        except TimeoutError:
            raise TimeoutError("the live stream cannot read the database") from None
        if resume is not None and resume.ahead_of(feed.position):
            # the feed may lag another server by a poll; a cursor from another database is no cursor
            newest = await anyio.to_thread.run_sync(self.source.positions, sub.client_id)
            if resume.timeline > newest.timeline or resume.audit > newest.audit:
                resume = None
        if sub.closed:  # closed while waiting
            return []
        here = feed.position  # no await between this and joining: catch-up and live events meet
        sub.floor = resume or Cursor()
        feed.subscribers.add(sub)
        if sub.host is not None:
            self._metrics_feed(sub.client_id, sub.host).subscribers.add(sub)
        if resume is None:
            return [self._ready(here, resumed=False)]
        events = await anyio.to_thread.run_sync(
            self.source.replay, sub.client_id, resume, here, self.config.replay_max, self._clock()
        )
        last = here.max(resume)
        if events is not None:
            events = [e for e in events if e.for_owner(sub.owner)]
        if events is None:
            reset = Event("reset", {"reason": "more events were missed than a reconnect replays"}, last)
            return [reset, self._ready(last, resumed=True)]
        return [*events, self._ready(last, resumed=True)]

    def close(self, sub: Subscriber) -> None:
        """Leave every feed (idempotent); a feed left empty stops."""
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            self._owners[sub.owner] -= 1
            if self._owners[sub.owner] <= 0:
                del self._owners[sub.owner]
        sub.closed = True
        feed = self._feeds.get(sub.client_id)
        if feed is not None:
            feed.subscribers.discard(sub)
            if not feed.subscribers and not self._waiting(sub.client_id):
                feed.stop()
                del self._feeds[sub.client_id]
        if sub.host is not None:
            key = (sub.client_id, sub.host)
            metrics = self._metrics.get(key)
            if metrics is not None:
                metrics.subscribers.discard(sub)
                if not metrics.subscribers:
                    metrics.stop()
                    del self._metrics[key]

    def heartbeat_cursor(self, sub: Subscriber) -> Cursor | None:
        """The cursor a heartbeat carries when the subscriber's queue is empty: it has had
        everything up to its feed's position, so a reconnect after a quiet hour replays little."""
        feed = self._feeds.get(sub.client_id)
        if feed is None or not sub.queue.empty() or sub not in feed.subscribers:
            return None
        return feed.position.max(sub.floor)

    def stop(self) -> None:
        """End every stream and feed (the server is stopping)."""
        for sub in list(self._subscribers):
            sub.end()
            self.close(sub)
        for feed in [*self._feeds.values(), *self._metrics.values()]:
            feed.stop()
        self._feeds.clear()
        self._metrics.clear()

    # -- internals -----------------------------------------------------------------------------

    def _waiting(self, client_id: str) -> bool:
        """Whether a subscriber of the tenant is still waiting for the feed's first read."""
        return any(s.client_id == client_id and not s.closed for s in self._subscribers)

    def _metrics_feed(self, client_id: str, host: str) -> MetricsFeed:
        key = (client_id, host)
        feed = self._metrics.get(key)
        if feed is None:
            feed = MetricsFeed(
                client_id, host, self.source, self._drop, poll_s=self.config.metrics_poll_s, clock=self._clock
            )
            self._metrics[key] = feed
            feed.start()
        return feed

    def _drop(self, sub: Subscriber) -> None:
        """A full queue: end the subscriber's response now (the route's teardown closes it)."""
        if sub.closed:
            return
        logger.info("live stream: dropped a slow subscriber of tenant %s (queue full)", sub.client_id)
        self.dropped_total += 1
        self._dropped.inc()
        sub.dropped = True
        sub.end()
        for feed in (self._feeds.get(sub.client_id), self._metrics.get((sub.client_id, sub.host or ""))):
            if feed is not None:
                feed.subscribers.discard(sub)

    @staticmethod
    def _ready(cursor: Cursor, *, resumed: bool) -> Event:
        return Event("ready", {"resumed": resumed}, cursor)
