"""Forward stored samples to a Prometheus-compatible store (VictoriaMetrics, Prometheus, Mimir …).

Why a queue and a thread of its own: ``submit`` is called on the ingest path after a batch is
durably stored, and an agent's request must not wait on, or fail because of, a downstream store.
So ``submit`` only turns the batch into a compact queue block (series labels from a ``LabelCache``,
samples in flat ``array`` columns) and appends it; one sender thread drains the queue into
remote-write requests of at most ``max_batch_samples`` samples, one entry per series.

Why bounded, dropping the oldest: InfrAgent's own database is the system of record, so the remote
copy is best effort. While the remote store is down the queue holds up to ``max_queue_samples`` —
16 bytes a sample plus 16 a series in a block, so at most ~32 MiB at the default of a million when
every series carries one point — and then drops the oldest samples, counting them in
``dropped_samples``: the newest data is what dashboards and alerts on the remote side need first.
One request (``max_batch_samples``) may be in flight on top of that bound.

Why one sender: remote write requires each series' samples in timestamp order; Prometheus rejects
out-of-order samples. With a single sender and a FIFO queue, a retried request is always delivered
before anything newer of the same series.

Retry discipline (the shared policy of :mod:`infragent.backoff`): transport errors, 408, 425, 429
and 5xx other than 501/505 are retried with capped exponential backoff and full jitter
(``backoff.Backoff``: ``Retry-After`` is a floor, the cap still wins), indefinitely while running —
the queue bound, not a retry count, limits what an outage costs. Any other answer (400, 401, 403,
404, 413, 501, a redirect …) cannot succeed by resending the same bytes: the request's samples are
counted in ``rejected_samples`` and the receiver's message is logged. ``close(timeout_s)`` keeps
sending until the queue is empty or the deadline passes; what is still unsent then is counted as
dropped.
"""

from __future__ import annotations

import bisect
import logging
import random
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import cramjam
import httpx

from infragent import __version__
from infragent.backoff import Backoff, classify_failure, classify_status, parse_retry_after
from infragent.remote_write.proto import LabelCache, Labels, encode_series, to_millis
from infragent.transport import transport_failure
from infragent.wire import MetricBatch

logger = logging.getLogger(__name__)

#: Remote write 1.0 (https://prometheus.io/docs/specs/remote_write_spec/); callers cannot override these.
PROTOCOL_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
_MAX_ERROR_TEXT = 512  # of a receiver's error body, in logs and ``last_error``
_JOIN_GRACE_S = 2.0  # past close()'s deadline: the last request's timeout is already bounded by it

Outcome = Literal["sent", "rejected", "retry"]
Settled = Literal["sent", "rejected", "dropped"]


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """Counters since the exporter was made; every submitted sample ends in exactly one of the last four.

    ``queued`` is waiting or in flight; ``last_error`` is the most recent failure (kept after later
    successes, so an operator can see why ``retries`` grew).
    """

    queued: int
    sent_samples: int
    dropped_samples: int
    rejected_samples: int
    retries: int
    last_error: str | None


def _error_text(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "…"
    return f"HTTP {response.status_code}: {text or response.reason_phrase}"


@dataclass(slots=True)
class _Block:
    """One submitted batch as queued: per-series labels, and all its samples in flat columns.

    Series ``i`` holds samples ``ends[i-1]:ends[i]``. The columns never change once built (so the
    sender reads them without the lock); taking or dropping samples from the front only moves
    ``start``.
    """

    labels: list[tuple[Labels, bytes]]
    ends: array[int]
    timestamps: array[int]
    values: array[float]
    start: int = 0

    def __len__(self) -> int:
        return len(self.values) - self.start

    def spans(self, lo: int, hi: int) -> Iterator[tuple[bytes, int, int]]:
        """``(encoded labels, a, b)`` for each series with samples in ``lo:hi``, clipped to it."""
        i = bisect.bisect_right(self.ends, lo)
        prev = self.ends[i - 1] if i else 0
        while prev < hi:
            end = self.ends[i]
            yield self.labels[i][1], max(prev, lo), min(end, hi)
            prev = end
            i += 1


def _request_body(taken: list[tuple[_Block, int, int]]) -> bytes:
    """A snappy-compressed WriteRequest: one entry per label set, samples in queue order.

    Queue order is timestamp order for each series (one sender, FIFO), and grouping by label set
    sends each series' labels once per request rather than once per queued batch.
    """
    groups: dict[bytes, list[tuple[Sequence[int], Sequence[float]]]] = {}
    for block, lo, hi in taken:
        for encoded, a, b in block.spans(lo, hi):
            chunk = (block.timestamps[a:b], block.values[a:b])
            group = groups.get(encoded)
            if group is None:
                groups[encoded] = [chunk]
            else:
                group.append(chunk)
    varints: dict[int, bytes] = {}
    raw = b"".join(encode_series(encoded, chunks, varints) for encoded, chunks in groups.items())
    return bytes(cramjam.snappy.compress_raw(raw))


class RemoteWriteExporter:
    """A bounded queue and one sender thread POSTing remote-write 1.0 requests to ``url``.

    ``headers`` are added to every request (e.g. ``Authorization``; they are never logged);
    ``clock`` (monotonic seconds) and ``sleep`` drive backoff and the close deadline, so tests can
    run the retry schedule without waiting. By default a backoff wait ends early when ``close`` is
    called, and continues only as far as the close deadline.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        max_queue_samples: int = 1_000_000,
        max_batch_samples: int = 10_000,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("remote write URL must be http:// or https:// with a host")
        if max_batch_samples < 1 or max_queue_samples < 1:
            raise ValueError("max_batch_samples and max_queue_samples must be at least 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.url = url
        #: For logs: no credentials, no query string (either may hold a token).
        self.safe_url = str(parsed.copy_with(username=None, password=None, query=None))
        self._headers = httpx.Headers({"User-Agent": f"infragent/{__version__}"})
        self._headers.update(headers or {})
        self._headers.update(PROTOCOL_HEADERS)
        self._timeout_s = timeout_s
        self._max_queue = max_queue_samples
        self._max_batch = max_batch_samples
        self._backoff = Backoff(base_s=backoff_base_s, cap_s=backoff_cap_s, rng=rng)
        self._clock = clock
        self._labels = LabelCache()
        self._sleep = sleep or self._wait_unless_closing

        self._cond = threading.Condition()
        self._queue: deque[_Block] = deque()
        self._queued = 0  # samples in _queue
        self._in_flight = 0  # samples of the request being sent
        self._sent = self._dropped = self._rejected = self._retries = 0
        self._last_error: str | None = None
        self._overflowing = False  # log the first drop of an overflow, not every one
        self._thread: threading.Thread | None = None
        self._runner_started = False
        self._finished = False
        self._deadline: float | None = None  # set by close(); from then on nothing new is queued
        self._closing = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sender thread (once)."""
        with self._cond:
            if self._runner_started:
                raise RuntimeError("RemoteWriteExporter.start() called twice or after close()")
            self._runner_started = True
            self._thread = threading.Thread(target=self._run, name="remote-write", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking samples, send what the deadline allows, count the rest as dropped.

        Without ``start()`` the queue is sent from the calling thread, under the same deadline.
        """
        with self._cond:
            if self._deadline is None:
                self._deadline = self._clock() + timeout_s
            self._closing.set()
            self._cond.notify_all()
            thread = self._thread
            run_inline = not self._runner_started
            self._runner_started = True
        if run_inline:
            self._run()
        elif thread is not None:
            thread.join(timeout_s + _JOIN_GRACE_S)
            if thread.is_alive():
                logger.warning("remote write to %s did not stop within %.1fs", self.safe_url, timeout_s)

    def __enter__(self) -> RemoteWriteExporter:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- producer side ---------------------------------------------------------------------------

    def submit(self, client_id: str, batch: MetricBatch) -> None:
        """Queue a stored batch's samples for export; never blocks on the network, never raises for it.

        Call it only after the batch is durably stored and not for a duplicate (``WriteResult.
        duplicate``): the remote copy must hold what InfrAgent holds, each sample once.
        """
        block = self._block(client_id, batch)
        total = len(block)
        if not total:
            return
        with self._cond:
            if self._closing.is_set():
                self._dropped += total
                return
            self._queue.append(block)
            self._queued += total
            if self._queued > self._max_queue:
                self._drop_oldest(self._queued - self._max_queue)
            self._cond.notify_all()

    def _block(self, tenant: str, batch: MetricBatch) -> _Block:
        labels: list[tuple[Labels, bytes]] = []
        ends: array[int] = array("q")
        timestamps: array[int] = array("q")
        values: array[float] = array("d")
        for s in batch.series:
            millis, points = to_millis(s.timestamps, s.values)
            if millis:
                labels.append(self._labels.get(s.name, s.attributes, batch.node_id, tenant))
                timestamps.extend(millis)
                values.extend(points)
                ends.append(len(values))
        return _Block(labels, ends, timestamps, values)

    def _take(self, count: int) -> list[tuple[_Block, int, int]]:
        """Remove ``count`` (or all, if fewer) samples from the head; their blocks and ranges (lock held)."""
        taken: list[tuple[_Block, int, int]] = []
        while self._queue and count:
            block = self._queue[0]
            n = min(len(block), count)
            taken.append((block, block.start, block.start + n))
            block.start += n
            count -= n
            if not len(block):
                self._queue.popleft()
        self._queued -= sum(hi - lo for _, lo, hi in taken)
        return taken

    def _drop_oldest(self, count: int) -> None:
        """Drop ``count`` samples from the head of the queue (caller holds the lock)."""
        self._take(count)
        self._dropped += count
        if not self._overflowing:
            self._overflowing = True
            logger.warning(
                "remote write queue to %s is full (%d samples); dropping the oldest until a send succeeds",
                self.safe_url,
                self._max_queue,
            )

    # -- observation -----------------------------------------------------------------------------

    def stats(self) -> ExporterStats:
        with self._cond:
            return ExporterStats(
                queued=self._queued + self._in_flight,
                sent_samples=self._sent,
                dropped_samples=self._dropped,
                rejected_samples=self._rejected,
                retries=self._retries,
                last_error=self._last_error,
            )

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued so far has been sent or settled; False on timeout.

        False at once when no sender runs (not started, or already finished).
        """
        end = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._in_flight:
                left = end - time.monotonic()
                if left <= 0 or self._thread is None or self._finished:
                    return False
                self._cond.wait(left)
            return True

    # -- sender side -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            client = httpx.Client(headers=self._headers, timeout=self._timeout_s, follow_redirects=False)
            with client:
                while (work := self._next_request()) is not None:
                    taken, count = work
                    try:
                        self._deliver(client, taken, count)
                    except Exception as exc:  # loop boundary: one bad request must not stop the export
                        logger.exception("remote write to %s failed unexpectedly", self.safe_url)
                        self._settle(count, "dropped", f"{type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                unsent = self._queued + self._in_flight
                self._queue.clear()
                self._dropped += unsent
                self._queued = self._in_flight = 0
                self._finished = True
                self._cond.notify_all()
            if unsent:
                logger.warning("remote write to %s closed with %d samples unsent", self.safe_url, unsent)

    def _next_request(self) -> tuple[list[tuple[_Block, int, int]], int] | None:
        """Block for work; take up to ``max_batch_samples`` from the head. None: closed and done."""
        with self._cond:
            while not self._queue:
                if self._closing.is_set():
                    return None
                self._cond.wait()
            if self._deadline is not None and self._clock() >= self._deadline:
                return None
            taken = self._take(self._max_batch)
            count = sum(hi - lo for _, lo, hi in taken)
            self._in_flight = count
        return taken, count

    def _deliver(self, client: httpx.Client, taken: list[tuple[_Block, int, int]], count: int) -> None:
        """Send one request until it is sent, rejected, or the close deadline passes."""
        body = _request_body(taken)
        while True:
            timeout = self._request_timeout()
            if timeout is None:
                self._settle(count, "dropped", None)
                return
            outcome, retry_after, error = self._post(client, body, timeout)
            if outcome == "sent":
                self._backoff.reset()
                self._settle(count, "sent", None)
                return
            if outcome == "rejected":
                logger.error("remote write to %s rejected %d samples: %s", self.safe_url, count, error)
                self._settle(count, "rejected", error)
                return
            delay = self._backoff.next_delay(retry_after)
            with self._cond:
                self._last_error = error
            logger.warning(
                "remote write to %s failed (%s); retrying %d samples in %.2fs",
                self.safe_url,
                error,
                count,
                delay,
            )
            if not self._pause(delay):
                self._settle(count, "dropped", None)
                return
            with self._cond:
                self._retries += 1

    def _post(
        self, client: httpx.Client, body: bytes, timeout: float
    ) -> tuple[Outcome, float | None, str | None]:
        try:
            response = client.post(self.url, content=body, timeout=timeout)
        except httpx.TransportError as exc:  # refused, reset, DNS, timeouts: worth another try
            error = f"{type(exc).__name__}: {exc}"
            if classify_failure(transport_failure(exc)) == "final":
                return "rejected", None, error
            return "retry", None, error
        status = response.status_code
        verdict = classify_status(status)
        if verdict == "success":
            return "sent", None, None
        if verdict == "retry":
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
            return "retry", retry_after, _error_text(response)
        return "rejected", None, _error_text(response)

    def _settle(self, count: int, how: Settled, error: str | None) -> None:
        with self._cond:
            self._in_flight = 0
            if how == "sent":
                self._sent += count
                self._overflowing = False
            elif how == "rejected":
                self._rejected += count
            else:
                self._dropped += count
            if error is not None:
                self._last_error = error
            self._cond.notify_all()

    def _request_timeout(self) -> float | None:
        """The per-request timeout; after close() also bounded by the deadline (None once past it)."""
        deadline = self._deadline
        if deadline is None:
            return self._timeout_s
        left = deadline - self._clock()
        return min(self._timeout_s, left) if left > 0 else None

    def _pause(self, delay: float) -> bool:
        """Wait ``delay`` seconds, but never past the close deadline; False when the deadline is hit."""
        until = self._clock() + delay
        while True:
            now = self._clock()
            deadline = self._deadline
            if deadline is not None and now >= deadline:
                return False
            if now >= until:
                return True
            self._sleep((until if deadline is None else min(until, deadline)) - now)

    def _wait_unless_closing(self, seconds: float) -> None:
        """The default sleep: a close() wakes it so the deadline, not the backoff, decides."""
        if self._closing.is_set():
            time.sleep(seconds)
        else:
            self._closing.wait(seconds)
