"""Everything the agent sends to its server: metric batches, events, registration (commands: ``poller.py``).

Why each loop owns its ``HttpClient``: a client holds one kept-alive connection and is not shared
between threads, so a 25 s command long-poll can never hold up a metric batch or an ``app_down``
event. Every loop follows the same table (:mod:`infragent.agent.delivery`, on top of the shared
policy in :mod:`infragent.backoff`): 2xx/409 done; 408/425/429/5xx and transport failures retried
with capped exponential backoff and full jitter (honouring ``Retry-After``); 401/403/404 and the
other configuration refusals keep the data and pause that loop 60 s growing to 10 min (reported
through ``Refusals`` on ``/health/ready`` and ``/metrics``); 400/413/422 move the one batch the
server called malformed to the dead-letter file. No answer deletes data, and no loop ever exits on
an error: the agent keeps collecting into its spool while the server is away or refuses it.

Metrics are at-least-once: a batch leaves the spool only after the server acknowledged it, and a
crash between "acknowledged" and "ack on disk" resends it; the server dedupes by ``batch_id``.
Events are small and urgent, so they wait in a bounded memory queue instead (drops are logged and
counted); a restart loses at most what was queued, and the check re-reports its state anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import msgspec

from infragent import wire
from infragent.agent.delivery import Refusals, classify, pause_backoff, pause_delay
from infragent.agent.http import HttpClient, HttpError, Response, json_headers
from infragent.agent.spool import DeadLetters, Record, Spool, SpoolError
from infragent.backoff import Backoff, parse_retry_after

logger = logging.getLogger(__name__)

CommandHandler = Callable[[dict[str, str], bytes], dict[str, Any]]


class LinkStatus(msgspec.Struct, frozen=True):
    endpoint: str
    reachable: bool | None  # None until the first attempt
    last_success: float | None  # wall-clock time of the last acknowledged send
    latency_ms: float | None
    error: str | None


class Connectivity:
    """What the metric shipper last learnt about the server, for ``/health`` and ``/metrics``."""

    def __init__(self, endpoint: str) -> None:
        self._lock = threading.Lock()
        self._status = LinkStatus(endpoint, None, None, None, None)

    def answered(self, now: float, latency_ms: float, error: str | None = None) -> None:
        with self._lock:
            last = now if error is None else self._status.last_success
            self._status = LinkStatus(self._status.endpoint, True, last, latency_ms, error)

    def failed(self, error: str) -> None:
        with self._lock:
            s = self._status
            self._status = LinkStatus(s.endpoint, False, s.last_success, s.latency_ms, error)

    @property
    def status(self) -> LinkStatus:
        with self._lock:
            return self._status


def reason_of(response: Response) -> str:
    """The server's answer for a log line or a health reason: ``HTTP 401: <body, cut>``."""
    return f"HTTP {response.status}: {response.text(300)}"


class MetricShipper:
    """Sends spooled batches oldest first; ``wake`` is set by the collector after each append.

    ``books`` is the agent's lock over its counters: taken around "spool changed + counter
    changed", so a ``/metrics`` snapshot taken under it always satisfies collected = sent + dead
    lettered + dropped + waiting in the spool (docs/agent.md).
    """

    def __init__(
        self,
        spool: Spool,
        client: HttpClient,
        api_key: str,
        *,
        wake: threading.Event,
        stop: threading.Event,
        link: Connectivity,
        dead_letters: DeadLetters,
        refusals: Refusals,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        pause: Backoff | None = None,
        books: AbstractContextManager[object] | None = None,
        peek_records: int = 32,
    ) -> None:
        self._spool = spool
        self._client = client
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": wire.CONTENT_TYPE,
            "Content-Encoding": "gzip",
        }
        self._wake = wake
        self._stop = stop
        self._link = link
        self._dead_letters = dead_letters
        self._refusals = refusals
        self._clock = clock
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=60.0)
        self._pause = pause or pause_backoff()
        self._books = books if books is not None else nullcontext()
        self._peek = peek_records
        self.points_sent = 0
        self.batches_sent = 0
        self.points_dead_lettered = 0
        self.batches_dead_lettered = 0
        #: Set while ``run`` waits for a wake-up with an empty spool: what a test waits on instead
        #: of sleeping until the shipper is "probably idle".
        self.idle = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.ship_pending()
            except Exception:  # loop boundary: log and go on after a pause
                logger.exception("metric shipper: unexpected error")
                delay = self._backoff.next_delay()
            if delay is None:
                self.idle.set()
                self._wake.wait()
                self.idle.clear()
            elif delay > 0:
                self._stop.wait(delay)  # a wake-up does not cut a pause short: only stop does

    def ship_pending(self) -> float | None:
        """Send what the spool holds. Returns None when it is empty, else seconds to wait first."""
        self._wake.clear()  # cleared before peeking: an append after this point wakes us again
        try:
            records = self._spool.peek(self._peek)
        except SpoolError:
            logger.exception("metric shipper: cannot read the spool")
            return self._backoff.next_delay()
        if not records:
            return None
        for record in records:
            if self._stop.is_set():
                return 0.0
            delay = self.ship(record)
            if delay is not None:
                return delay
        return 0.0

    def ship(self, record: Record) -> float | None:
        """POST one batch; None when it is done with (sent or dead-lettered), else the wait."""
        started = time.monotonic()
        try:
            response = self._client.request("POST", "/api/v1/metrics", record.payload, self._headers)
        except HttpError as exc:
            delay = self._backoff.next_delay()
            self._link.failed(str(exc))
            logger.warning("metrics: server unreachable (%s); retrying in %.1f s", exc, delay)
            return delay
        latency_ms = (time.monotonic() - started) * 1000
        verdict = classify(response.status)
        retry_after = parse_retry_after(response.header("retry-after"), self._clock())
        if verdict == "pause":
            delay = pause_delay(self._pause, retry_after)
            self._link.answered(self._clock(), latency_ms, reason_of(response))
            self._refusals.refused("metrics", reason_of(response))
            logger.error(
                "metrics: %s; the data stays in the spool, shipping paused for %.0f s (check the "
                "API key and server URL)",
                reason_of(response),
                delay,
            )
            return delay
        self._refusals.accepted("metrics")
        self._pause.reset()
        if verdict == "retry":
            delay = self._backoff.next_delay(retry_after)
            self._link.answered(self._clock(), latency_ms, reason_of(response))
            logger.warning("metrics: %s; retrying in %.1f s", reason_of(response), delay)
            return delay
        if verdict == "dead_letter":
            try:
                self._dead_letters.add(
                    "metrics",
                    record.batch_id,
                    record.points,
                    record.payload,
                    response.status,
                    reason_of(response),
                )
            except (SpoolError, OSError):
                logger.exception(
                    "metrics: cannot dead-letter batch %s; it stays in the spool", record.batch_id
                )
                return self._backoff.next_delay()
        with self._books:
            self._spool.ack([record])
            if verdict == "ack":
                self.points_sent += record.points
                self.batches_sent += 1
            else:
                self.points_dead_lettered += record.points
                self.batches_dead_lettered += 1
        self._backoff.reset()
        if verdict == "ack":
            self._link.answered(self._clock(), latency_ms)
        else:
            self._link.answered(self._clock(), latency_ms, reason_of(response))
            logger.error(
                "metrics: server refused batch %s (%d points) as malformed, moved to %s: %s",
                record.batch_id,
                record.points,
                self._dead_letters.path,
                reason_of(response),
            )
        return None


class EventSender:
    """Posts events to ``/api/v1/events`` the moment they are submitted, in order, with retries."""

    def __init__(
        self,
        client: HttpClient,
        api_key: str,
        *,
        stop: threading.Event,
        refusals: Refusals | None = None,
        dead_letters: DeadLetters | None = None,
        max_queue: int = 1000,
        backoff: Backoff | None = None,
        pause: Backoff | None = None,
    ) -> None:
        self._client = client
        self._headers = json_headers(api_key)
        self._stop = stop
        self._refusals = refusals or Refusals()
        self._dead_letters = dead_letters
        self._queue: deque[dict[str, Any]] = deque()
        self._max = max_queue
        self._cond = threading.Condition()
        self._backoff = backoff or Backoff(base_s=0.5, cap_s=60.0)
        self._pause = pause or pause_backoff()
        self.sent = 0
        self.dropped = 0
        self.dead_lettered = 0

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def submit(self, event: dict[str, Any]) -> None:
        """Queue an event (never blocks); past ``max_queue`` the oldest is dropped and counted."""
        with self._cond:
            if len(self._queue) >= self._max:
                old = self._queue.popleft()
                self.dropped += 1
                logger.error("events: queue full, dropped %s for %s", old.get("type"), old.get("service"))
            self._queue.append(event)
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
            try:
                delay = self.send_next()
            except Exception:  # loop boundary
                logger.exception("events: unexpected error")
                delay = self._backoff.next_delay()
            if delay is not None:
                self._stop.wait(delay)

    def send_next(self) -> float | None:
        """Send the oldest queued event; None when it is done with, else seconds to wait first."""
        with self._cond:
            if not self._queue:
                return None
            event = self._queue[0]
        body = msgspec.json.encode(event)
        try:
            response = self._client.request("POST", "/api/v1/events", body, self._headers)
        except HttpError as exc:
            delay = self._backoff.next_delay()
            logger.warning("events: server unreachable (%s); retrying in %.1f s", exc, delay)
            return delay
        verdict = classify(response.status)
        retry_after = parse_retry_after(response.header("retry-after"), time.time())
        if verdict == "pause":
            delay = pause_delay(self._pause, retry_after)
            self._refusals.refused("events", reason_of(response))
            logger.error("events: %s; kept, sending paused for %.0f s", reason_of(response), delay)
            return delay
        self._refusals.accepted("events")
        self._pause.reset()
        if verdict == "retry":
            return self._backoff.next_delay(retry_after)
        if verdict == "dead_letter" and self._dead_letters is not None:
            item_id = f"{event.get('type')}/{event.get('service')}"
            try:
                self._dead_letters.add("event", item_id, 0, body, response.status, reason_of(response))
            except (SpoolError, OSError):
                logger.exception("events: cannot dead-letter %s; dropped", item_id)
        with self._cond:
            if self._queue and self._queue[0] is event:
                self._queue.popleft()
        self._backoff.reset()
        if verdict == "ack":
            self.sent += 1
            logger.info("events: sent %s for %s", event.get("type"), event.get("service"))
        else:
            self.dead_lettered += 1
            logger.error("events: server refused %s as malformed: %s", event.get("type"), reason_of(response))
        return None


def register(
    client: HttpClient,
    api_key: str,
    registration: dict[str, Any],
    *,
    stop: threading.Event,
    refusals: Refusals | None = None,
    backoff: Backoff | None = None,
    pause: Backoff | None = None,
) -> bool:
    """POST ``/api/v1/agents`` until it succeeds (True) or ``stop`` is set (False).

    A refused key or URL pauses it like the shippers (and shows on ``/health/ready``); any other
    failure, even a 4xx, is retried with the normal backoff: registration carries no data to lose.
    """
    backoff = backoff or Backoff(base_s=0.5, cap_s=60.0)
    pause = pause or pause_backoff()
    refusals = refusals or Refusals()
    body = msgspec.json.encode(registration)
    while not stop.is_set():
        try:
            response = client.request("POST", "/api/v1/agents", body, json_headers(api_key))
        except HttpError as exc:
            delay = backoff.next_delay()
            logger.warning("registration: server unreachable (%s); retrying in %.1f s", exc, delay)
        else:
            verdict = classify(response.status)
            if verdict != "pause":
                refusals.accepted("register")
            if 200 <= response.status <= 299:
                logger.info(
                    "registered as %s (%s mode)", registration["node_id"], registration["command_mode"]
                )
                return True
            retry_after = parse_retry_after(response.header("retry-after"), time.time())
            if verdict == "pause":
                refusals.refused("register", reason_of(response))
                delay = pause_delay(pause, retry_after)
            else:
                delay = backoff.next_delay(retry_after)
            log = logger.warning if verdict == "retry" else logger.error
            log("registration refused: %s; retrying in %.1f s", reason_of(response), delay)
        stop.wait(delay)
    return False
