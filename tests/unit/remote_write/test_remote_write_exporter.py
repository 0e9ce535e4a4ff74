"""The exporter over a real socket: headers, batching, the bounded queue, and its retry rules.

The receiver is a scripted Starlette app under uvicorn (``remote_write_harness``); backoff waits go
through ``FakeTime``, so a 30 s Retry-After costs nothing and every delay can be asserted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from remote_write_harness import FakeTime, Receiver, Reply

from infragent import __version__
from infragent.remote_write import RemoteWriteExporter
from infragent.remote_write.proto import TimeSeries
from infragent.wire import MetricBatch, SeriesData
from support.servers import closed_port

T0 = 1_700_000_000.0


def batch(
    n: int, *, start: int = 0, name: str = "system.cpu.utilization", node_id: str = "web-1"
) -> MetricBatch:
    """One series of ``n`` points at T0 + start, T0 + start + 1 …, values equal to their index."""
    series = SeriesData(
        name=name,
        unit="1",
        kind="gauge",
        monotonic=False,
        attributes={"cpu.mode": "user"},
        timestamps=[T0 + i for i in range(start, start + n)],
        values=[float(i) for i in range(start, start + n)],
    )
    return MetricBatch(batch_id=f"b-{start}", node_id=node_id, resource={}, series=[series])


def samples(series: list[TimeSeries]) -> list[tuple[int, float]]:
    return [(t, v) for s in series for t, v in zip(s.timestamps_ms, s.values, strict=True)]


def expected(start: int, n: int) -> list[tuple[int, float]]:
    return [(round((T0 + i) * 1000), float(i)) for i in range(start, start + n)]


@pytest.fixture
def make_exporter(fake_time: FakeTime) -> Iterator[Any]:
    """Exporters on the fake clock with a seeded RNG; each is closed after the test."""
    made: list[RemoteWriteExporter] = []

    def make(url: str, **kwargs: Any) -> RemoteWriteExporter:
        kwargs.setdefault("clock", fake_time.clock)
        kwargs.setdefault("sleep", fake_time.sleep)
        kwargs.setdefault("rng", random.Random(3))
        exporter = RemoteWriteExporter(url, **kwargs)
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.close(timeout_s=5)


def test_request_carries_protocol_headers_and_the_samples(
    write_receiver: tuple[Receiver, str], make_exporter: Any
) -> None:
    rx, url = write_receiver
    exporter = make_exporter(url, headers={"Authorization": "Bearer s3cret", "Content-Type": "text/plain"})
    exporter.start()
    exporter.submit("acme", batch(5))
    assert exporter.flush(5)
    [request] = rx.requests
    assert request.headers["content-encoding"] == "snappy"
    assert request.headers["content-type"] == "application/x-protobuf"  # callers cannot override it
    assert request.headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert request.headers["user-agent"] == f"infragent/{__version__}"
    assert request.headers["authorization"] == "Bearer s3cret"
    [series] = request.series
    assert series.labels == (
        ("__name__", "system_cpu_utilization"),
        ("cpu_mode", "user"),
        ("host", "web-1"),
        ("instance", "web-1"),
        ("tenant", "acme"),
    )
    assert samples(request.series) == expected(0, 5)
    stats = exporter.stats()
    assert (stats.queued, stats.sent_samples, stats.dropped_samples, stats.retries) == (0, 5, 0, 0)


def test_requests_hold_at_most_max_batch_samples_and_merge_a_series(
    write_receiver: tuple[Receiver, str], make_exporter: Any
) -> None:
    rx, url = write_receiver
    exporter = make_exporter(url, max_batch_samples=4)
    for start in (0, 3, 6):  # queued before start, so the sender sees all three batches at once
        exporter.submit("acme", batch(3, start=start))
    exporter.start()
    assert exporter.flush(5)
    assert [r.samples for r in rx.requests] == [4, 4, 1]
    assert all(len(r.series) == 1 for r in rx.requests)  # one series per label set, not one per batch
    assert samples(rx.accepted()) == expected(0, 9)


def test_full_queue_drops_the_oldest_samples_and_counts_them(
    write_receiver: tuple[Receiver, str], make_exporter: Any
) -> None:
    rx, url = write_receiver
    exporter = make_exporter(url, max_queue_samples=10)
    for start in (0, 4, 8):
        exporter.submit("acme", batch(4, start=start))
    stats = exporter.stats()
    assert (stats.queued, stats.dropped_samples) == (10, 2)
    exporter.close(timeout_s=5)  # never started: close() sends from this thread
    assert samples(rx.accepted()) == expected(2, 10)
    stats = exporter.stats()
    assert (stats.queued, stats.sent_samples, stats.dropped_samples) == (0, 10, 2)


def test_a_batch_larger_than_the_queue_keeps_its_newest_samples(
    write_receiver: tuple[Receiver, str], make_exporter: Any
) -> None:
    rx, url = write_receiver
    exporter = make_exporter(url, max_queue_samples=5, max_batch_samples=2)
    exporter.submit("acme", batch(12))
    assert exporter.stats().dropped_samples == 7
    exporter.close(timeout_s=5)
    assert samples(rx.accepted()) == expected(7, 5)


def test_503_with_retry_after_is_retried_after_at_least_that_long(
    write_receiver: tuple[Receiver, str], make_exporter: Any, fake_time: FakeTime
) -> None:
    rx, url = write_receiver
    rx.script(Reply(503, "overloaded", {"Retry-After": "2"}), Reply(204))
    exporter = make_exporter(url)
    exporter.start()
    exporter.submit("acme", batch(3))
    assert exporter.flush(5)
    assert [r.status for r in rx.requests] == [503, 204]
    assert rx.requests[0].body == rx.requests[1].body  # the same request, resent
    assert fake_time.sleeps == [2.0]  # full jitter below 0.5 s, so the Retry-After floor decides
    stats = exporter.stats()
    assert (stats.sent_samples, stats.retries, stats.rejected_samples) == (3, 1, 0)
    assert stats.last_error == "HTTP 503: overloaded"


def test_429_and_5xx_back_off_exponentially_with_full_jitter_and_a_cap(
    write_receiver: tuple[Receiver, str], make_exporter: Any, fake_time: FakeTime
) -> None:
    rx, url = write_receiver
    rx.script(429, 500, 502, Reply(503, headers={"Retry-After": "3600"}), 504, 204)
    exporter = make_exporter(url, backoff_base_s=1.0, backoff_cap_s=4.0)
    exporter.start()
    exporter.submit("acme", batch(2))
    assert exporter.flush(5)
    assert len(rx.requests) == 6
    windows = [1.0, 2.0, 4.0, 4.0, 4.0]  # min(cap, base * 2**attempt)
    assert len(fake_time.sleeps) == 5
    assert all(0.0 <= d <= w for d, w in zip(fake_time.sleeps, windows, strict=True))
    assert fake_time.sleeps[3] == 4.0  # an hour's Retry-After is honoured only up to the cap
    assert exporter.stats().retries == 5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_client_errors_are_rejected_not_retried(
    write_receiver: tuple[Receiver, str],
    make_exporter: Any,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    rx, url = write_receiver
    rx.script(Reply(status, 'unsupported label name "a.b"\n'))
    exporter = make_exporter(url)
    exporter.submit("acme", batch(3))
    exporter.submit("acme", batch(2, start=3))
    exporter.start()
    with caplog.at_level(logging.ERROR, logger="infragent.remote_write.exporter"):
        assert exporter.flush(5)
    assert [r.status for r in rx.requests] == [status]  # both batches went in the one rejected request
    assert fake_time.sleeps == []
    stats = exporter.stats()
    assert (stats.rejected_samples, stats.sent_samples, stats.retries) == (5, 0, 0)
    assert stats.last_error == f'HTTP {status}: unsupported label name "a.b"'
    assert f'rejected 5 samples: HTTP {status}: unsupported label name "a.b"' in caplog.text
    exporter.submit("acme", batch(1, start=9))  # the exporter carries on
    assert exporter.flush(5)
    assert exporter.stats().sent_samples == 1


def test_transport_errors_are_retried_until_the_close_deadline(
    make_exporter: Any, fake_time: FakeTime
) -> None:
    exporter = make_exporter(f"http://127.0.0.1:{closed_port()}/api/v1/write", backoff_cap_s=4.0)
    exporter.submit("acme", batch(3))
    exporter.close(timeout_s=30)  # not started: sends from here, so every wait is on the deadline's clock
    stats = exporter.stats()
    assert (stats.queued, stats.sent_samples, stats.dropped_samples) == (0, 0, 3)
    assert stats.retries >= 7  # 30 s of fake time at <= 4 s a wait
    assert stats.last_error is not None and stats.last_error.startswith("ConnectError")
    assert sum(fake_time.sleeps) == pytest.approx(30.0)  # the last wait is cut short at the deadline


def test_submit_after_close_counts_as_dropped(
    write_receiver: tuple[Receiver, str], make_exporter: Any
) -> None:
    rx, url = write_receiver
    exporter = make_exporter(url)
    exporter.start()
    exporter.close(timeout_s=5)
    exporter.submit("acme", batch(4))
    assert exporter.stats().dropped_samples == 4
    assert rx.requests == []


def test_credentials_stay_out_of_the_logged_url() -> None:
    exporter = RemoteWriteExporter("https://user:pw@vm.example:8428/api/v1/write?token=t")
    assert exporter.safe_url == "https://vm.example:8428/api/v1/write"
    exporter.close(timeout_s=0)


@pytest.mark.parametrize("url", ["ftp://vm/api/v1/write", "vm:8428/api/v1/write", "http:///x"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        RemoteWriteExporter(url)


def test_close_cuts_a_long_backoff_short(write_receiver: tuple[Receiver, str]) -> None:
    """Real clock and sleep: close() wakes the sender from a 30 s Retry-After and keeps its deadline."""
    rx, url = write_receiver
    rx.script(*[Reply(503, headers={"Retry-After": "30"})] * 5)
    exporter = RemoteWriteExporter(url)
    exporter.start()
    exporter.submit("acme", batch(3))
    deadline = time.monotonic() + 5
    while not rx.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    exporter.close(timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    stats = exporter.stats()
    assert (stats.queued, stats.sent_samples, stats.dropped_samples) == (0, 0, 3)


def test_concurrent_submitters_lose_nothing(write_receiver: tuple[Receiver, str], make_exporter: Any) -> None:
    rx, url = write_receiver
    exporter = make_exporter(url, max_batch_samples=50)
    exporter.start()

    def submit_all(host: int) -> None:
        for i in range(20):
            exporter.submit("acme", batch(5, start=i * 5, node_id=f"host-{host}"))

    threads = [threading.Thread(target=submit_all, args=(h,)) for h in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert exporter.flush(10)
    assert exporter.stats().sent_samples == 8 * 20 * 5
    per_host: dict[str, list[tuple[int, float]]] = {}
    for s in rx.accepted():
        per_host.setdefault(dict(s.labels)["host"], []).extend(samples([s]))
    assert per_host == {f"host-{h}": expected(0, 100) for h in range(8)}  # and each in timestamp order
