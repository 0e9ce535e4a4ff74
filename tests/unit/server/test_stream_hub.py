"""The live stream's hub without HTTP: cursors, fan-out, dropping a slow subscriber, the per-owner
cap, and feeds that run only while someone listens. The feeds read a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from infragent.server.stream import Cursor, Event, HubConfig, StreamHub, StreamSource
from infragent.server.stream.feeds import MAX_HOST_EVENTS, Feed, Subscriber, TenantFeed
from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import open_store
from support.databases import create_client, sqlite_url


@pytest.mark.parametrize(
    "cursor", [Cursor(), Cursor(1, 2, 3), Cursor(10**17, 10**17, 10**14), Cursor(5, 0, 1_700_000_000_123)]
)
def test_a_cursor_round_trips(cursor: Cursor) -> None:
    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "garbage",
        "t1.a2",
        "t1.a2.h",
        "t-1.a2.h3",
        "t1.a2.h3.x",
        "12",
        "t1.a2.h3 ; drop",
        "t" + "9" * 30 + ".a1.h1",
    ],
)
def test_a_bad_cursor_is_no_cursor(text: str | None) -> None:
    assert Cursor.decode(text) is None


def test_an_event_knows_whether_a_cursor_already_had_it() -> None:
    floor = Cursor(10, 20, 0)
    assert Event("incident", {}, Cursor(10, 0), "t", 10).seen_by(floor)
    assert not Event("incident", {}, Cursor(11, 0), "t", 11).seen_by(floor)
    assert Event("command", {}, Cursor(0, 20), "a", 20).seen_by(floor)
    assert not Event("command", {}, Cursor(0, 21), "a", 21).seen_by(floor)
    assert not Event("host", {}, Cursor()).seen_by(floor)


def _events(n: int) -> list[Event]:
    return [Event("incident", {"n": i}, Cursor(i, 0), "t", i) for i in range(1, n + 1)]


def test_fan_out_in_order_and_a_full_queue_drops_only_that_subscriber() -> None:
    async def scenario() -> None:
        dropped: list[Subscriber] = []
        feed = Feed(dropped.append)
        fast = Subscriber("c1", "key:a", None, queue_max=10)
        slow = Subscriber("c1", "key:b", None, queue_max=3)
        host_only = Subscriber("c1", "key:c", "web-1", queue_max=10)
        feed.subscribers |= {fast, slow, host_only}
        feed.publish([*_events(5), Event("metrics", {"v": 1}, host="web-1"), Event("metrics", {}, host="db")])
        assert dropped == [slow] and slow not in feed.subscribers
        got = [fast.queue.get_nowait() for _ in range(fast.queue.qsize())]
        assert [e.data["n"] for e in got] == [1, 2, 3, 4, 5]  # no host: no metrics
        mine = [host_only.queue.get_nowait() for _ in range(host_only.queue.qsize())]
        assert [e.name for e in mine] == ["incident"] * 5 + ["metrics"]  # only its host's
        assert mine[-1].data == {"v": 1}
        slow.end()  # what the hub does on a drop: the reader gets the end mark at once
        assert slow.queue.get_nowait() is None and slow.closed
        assert slow.offer(_events(1)[0]) and slow.queue.empty()  # a closed subscriber takes nothing

    asyncio.run(scenario())


def test_a_resumed_subscriber_skips_what_it_had() -> None:
    async def scenario() -> None:
        feed = Feed(lambda s: None)
        sub = Subscriber("c1", "key:a", None, queue_max=10, floor=Cursor(3, 0))
        feed.subscribers.add(sub)
        feed.publish(_events(5))
        assert [sub.queue.get_nowait().seq for _ in range(sub.queue.qsize())] == [4, 5]  # type: ignore[union-attr]

    asyncio.run(scenario())


@dataclass
class Setup:
    hub: StreamHub
    client_id: str
    registry: CollectorRegistry


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    store = open_store(sqlite_url(tmp_path))
    client_id = create_client(store, "ops@example.com", "Acme", "http://127.0.0.1:9/h", now=1000.0).client.id
    source = StreamSource(store, SqlMetricStore(store.engine), online_s=180.0)
    config = HubConfig(max_per_owner=2, queue_max=5, poll_s=0.05, host_check_s=0.05)
    registry = CollectorRegistry()
    yield Setup(StreamHub(source, config, clock=lambda: 1000.0, registry=registry), client_id, registry)
    store.close()


def test_the_cap_counts_open_streams_per_owner(setup: Setup) -> None:
    hub = setup.hub
    first, second = hub.open("c1", "user:u1", None), hub.open("c1", "user:u1", None)
    assert first is not None and second is not None
    assert hub.open("c1", "user:u1", None) is None  # the third
    assert hub.open("c1", "user:u2", None) is not None  # another user's are their own
    hub.close(first)
    hub.close(first)  # idempotent
    assert hub.owner_count("user:u1") == 1 and hub.open("c1", "user:u1", None) is not None


def test_a_feed_runs_only_while_someone_listens(setup: Setup) -> None:
    hub = setup.hub

    async def scenario() -> None:
        subs = [hub.open(setup.client_id, f"key:{i}", None) for i in range(2)]
        opened = [s for s in subs if s is not None]
        assert len(opened) == 2
        first = [await hub.attach(s, None) for s in opened]
        assert [[e.name for e in f] for f in first] == [["ready"], ["ready"]]
        assert hub.subscriber_count == 2 and hub.feed_count == 1  # one feed for the tenant
        for s in opened:
            hub.close(s)
        assert hub.subscriber_count == 0 and hub.feed_count == 0
        await asyncio.sleep(0.1)  # the cancelled task finishes; nothing is left running
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    asyncio.run(scenario())
    scrape = generate_latest(setup.registry).decode()
    assert "infragent_stream_subscribers 0.0" in scrape and "infragent_stream_dropped_total 0.0" in scrape


def test_a_fleet_wide_flip_is_one_summary_not_an_event_per_host(setup: Setup) -> None:
    """A thousand hosts going offline in the same second (the server was down, a network split)
    must not fill every subscriber's queue and drop them all: past MAX_HOST_EVENTS they become one
    ``host`` summary; a few changes stay one event per host."""
    feed = TenantFeed(
        "c", setup.hub.source, lambda _sub: None, poll_s=1.0, host_check_s=1.0, clock=lambda: 0.0
    )
    now = 10_000.0
    fleet = [(f"h{i}", now - 10) for i in range(1000)]
    assert len(feed._host_changes(fleet[:10], now)) == 10  # new hosts, announced one by one
    (first,) = feed._host_changes(fleet, now)  # 990 new hosts at once
    assert first.name == "host" and first.data == {"host": None, "changed": 990, "online": 990, "offline": 0}
    (flip,) = feed._host_changes(fleet, now + 3600)  # all gone quiet
    assert flip.data == {"host": None, "changed": 1000, "online": 0, "offline": 1000}
    assert feed._host_changes(fleet, now + 3601) == []  # no change, nothing said
    back = [(h, now + 3602) for h, _ in fleet[: MAX_HOST_EVENTS - 1]]
    assert [e.data["host"] for e in feed._host_changes(back, now + 3602)] == [h for h, _ in back]
