"""Spool round trips, reopen, acknowledgement rules, the size bound and ownership."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from infragent.agent.spool import RecordTooLargeError, Spool, SpoolError, SpoolLockedError
from infragent.errors import InfrAgentError


def payload(i: int, size: int = 100) -> bytes:
    return (f"<{i:06d}>".encode() * (size // 8 + 1))[:size]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*.spool"))


def fill(spool: Spool, start: int, count: int, size: int = 100) -> list[int]:
    return [spool.append(f"b{i}", 10 + i, payload(i, size)) for i in range(start, start + count)]


def test_round_trip_across_segment_rollover(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=1000) as spool:
        seqs = fill(spool, 0, 30)
        assert seqs == sorted(set(seqs))
        assert len(segments(tmp_path)) >= 4

        first = spool.peek(10)
        assert [(r.batch_id, r.points, r.payload) for r in first] == [
            (f"b{i}", 10 + i, payload(i)) for i in range(10)
        ]
        assert spool.peek(10) == first  # peeking does not consume
        spool.ack(first)
        rest = spool.peek(100)
        assert [r.batch_id for r in rest] == [f"b{i}" for i in range(10, 30)]
        spool.ack(rest)

        assert spool.peek(100) == []
        stats = spool.stats
        assert (stats.records, stats.points_pending) == (0, 0)
        assert len(segments(tmp_path)) <= 1  # fully acknowledged segments are deleted


def test_reopen_keeps_unacked_in_order_and_forgets_acked(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=700) as spool:
        fill(spool, 0, 20)
        spool.ack(spool.peek(7))
        last_seq = spool.peek(100)[-1].seq

    with Spool(tmp_path, segment_bytes=700) as spool:
        records = spool.peek(100)
        assert [r.batch_id for r in records] == [f"b{i}" for i in range(7, 20)]
        assert all(r.payload == payload(int(r.batch_id[1:])) for r in records)
        assert spool.stats.records == 13
        assert spool.stats.points_pending == sum(10 + i for i in range(7, 20))
        assert spool.append("new", 1, b"x") > last_seq


def test_sequence_keeps_rising_after_everything_was_acked_and_deleted(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=300) as spool:
        seqs = fill(spool, 0, 10)
        spool.ack(spool.peek(100))
    with Spool(tmp_path, segment_bytes=300) as spool:
        assert spool.peek(10) == []
        assert spool.append("again", 1, b"x") > seqs[-1]


def test_ack_must_start_with_the_oldest_pending_record(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        fill(spool, 0, 5)
        records = spool.peek(5)
        with pytest.raises(ValueError, match="oldest pending"):
            spool.ack(records[1:3])
        with pytest.raises(ValueError, match="oldest pending"):
            spool.ack([records[0], records[2]])
        assert spool.stats.records == 5

        spool.ack([])
        spool.ack(records[:2])
        spool.ack(records[:3])  # the already acknowledged part is ignored
        assert [r.batch_id for r in spool.peek(5)] == ["b3", "b4"]


def test_record_larger_than_the_spool_is_rejected(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1000) as spool:
        with pytest.raises(RecordTooLargeError) as caught:
            spool.append("huge", 1, b"x" * 1000)
        assert isinstance(caught.value, ValueError)
        assert "max_bytes=1000" in str(caught.value)
        assert spool.stats.records == 0


def test_fill_past_max_bytes_drops_the_oldest_and_counts_exactly(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=5000, segment_bytes=1000) as spool:
        fill(spool, 0, 4, size=200)
        spool.ack(spool.peek(2))  # acknowledged records are not "dropped"
        fill(spool, 4, 56, size=200)
        kept = [int(r.batch_id[1:]) for r in spool.peek(1000)]
        stats = spool.stats

    missing = sorted(set(range(2, 60)) - set(kept))
    assert missing, "the test must actually overflow the spool"
    assert kept == list(range(missing[-1] + 1, 60))  # the oldest went, the newest stayed
    assert stats.dropped_records == len(missing)
    assert stats.dropped_points == sum(10 + i for i in missing)
    assert stats.current_bytes <= 5000
    assert stats.usage_percent == pytest.approx(100 * stats.current_bytes / 5000)

    with Spool(tmp_path, max_bytes=5000, segment_bytes=1000) as spool:
        again = spool.stats
        assert [int(r.batch_id[1:]) for r in spool.peek(1000)] == kept
    assert (again.dropped_records, again.dropped_points) == (stats.dropped_records, stats.dropped_points)
    assert (again.records, again.points_pending) == (stats.records, stats.points_pending)


def test_ack_of_records_dropped_meanwhile_is_harmless(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=2000, segment_bytes=500) as spool:
        fill(spool, 0, 3, size=200)
        in_flight = spool.peek(3)
        fill(spool, 3, 20, size=200)  # the shipper's batch is dropped while it is being sent
        spool.ack(in_flight)
        assert spool.peek(1)[0].batch_id != "b0"
        assert spool.stats.dropped_records >= 3


def test_second_opener_gets_a_clear_error(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    with pytest.raises(SpoolLockedError, match="already open") as caught:
        Spool(tmp_path)
    assert isinstance(caught.value, InfrAgentError)
    assert str(tmp_path) in str(caught.value)
    first.close()
    with Spool(tmp_path) as second:
        assert second.stats.records == 0


def test_closed_spool_refuses_work(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.close()
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.append("b", 1, b"x")


def test_collector_and_shipper_threads_share_the_spool(tmp_path: Path) -> None:
    shipped: list[str] = []
    with Spool(tmp_path, segment_bytes=2000) as spool:
        collector = threading.Thread(target=fill, args=(spool, 0, 300))
        collector.start()
        while collector.is_alive() or spool.stats.records:
            batch = spool.peek(7)
            shipped.extend(r.batch_id for r in batch)
            spool.ack(batch)
        collector.join()
        assert spool.stats.points_pending == 0
    assert shipped == [f"b{i}" for i in range(300)]


def test_a_record_dropped_while_in_flight_then_acknowledged_is_not_counted_lost(tmp_path: Path) -> None:
    """The shipper sent it, the cap dropped it before the ack came back, the server stored it."""
    payload = b"x" * 1000
    with Spool(tmp_path / "s", max_bytes=8_000, segment_bytes=2_000) as spool:
        for i in range(4):
            spool.append(f"b{i}", 10, payload)
        in_flight = spool.peek(1)
        for i in range(4, 12):  # overflow: the oldest segments go, the in-flight record with them
            spool.append(f"b{i}", 10, payload)
        dropped_before = spool.stats.dropped_points
        assert dropped_before >= 10 and in_flight[0].batch_id == "b0"
        spool.ack(in_flight)  # the server did store it after all
        assert spool.stats.dropped_points == dropped_before - 10
        assert spool.stats.dropped_records >= 0
        spool.ack(in_flight)  # a repeated ack changes nothing
        assert spool.stats.dropped_points == dropped_before - 10
    with Spool(tmp_path / "s", max_bytes=8_000, segment_bytes=2_000) as reopened:
        assert reopened.stats.dropped_points == dropped_before - 10  # persisted
