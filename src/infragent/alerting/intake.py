"""What reaches the evaluator from other threads: stored batches, stored events, signals from other
processes; queued without a lock, drained by the evaluator's thread one round at a time.

Why the queue is bounded by noting instead of blocking or dropping: ingest must never wait for
evaluation, and a batch left out of a window would be a wrong answer. Past ``MAX_QUEUED`` items
(the evaluator far behind) a batch is reduced to its tenant and host, and the evaluator reads that
host's samples back from the metric store, where they are already stored.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from infragent.alerting.ports import Signal
from infragent.model import Event
from infragent.rules.window import EventSample
from infragent.wire import MetricBatch

#: Items waiting for the evaluator past which a batch is only noted.
MAX_QUEUED = 10_000


@dataclass(frozen=True, slots=True)
class Batch:
    client_id: str
    batch: MetricBatch
    #: ``time.monotonic()`` when it was handed over: the start of the transition latency
    accepted: float


@dataclass(frozen=True, slots=True)
class _Event:
    client_id: str
    event: EventSample


@dataclass(frozen=True, slots=True)
class _Noted:
    client_id: str
    host: str


_Item = Batch | _Event | _Noted | Signal


@dataclass
class Round:
    """What the queue brought for one tenant since the last round."""

    batches: list[Batch] = field(default_factory=list)
    events: list[EventSample] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    #: hosts whose batches were only noted: their samples are read back from the store
    noted: set[str] = field(default_factory=set)


def event_sample(event: Event) -> EventSample:
    return EventSample(
        event.received_at,
        event.type,
        event.service,
        str(event.severity),
        event.node_id,
        dict(event.data),
        event.id,
    )


class Intake:
    """The queue and the event that wakes the evaluator's thread; any thread may put."""

    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self.max_queued = max_queued
        self.wake = threading.Event()
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()

    def batch(self, client_id: str, batch: MetricBatch) -> None:
        if self._queue.qsize() >= self.max_queued:
            self._put(_Noted(client_id, batch.node_id))
        else:
            self._put(Batch(client_id, batch, time.monotonic()))

    def event(self, client_id: str, event: Event) -> None:
        self._put(_Event(client_id, event_sample(event)))

    def signal(self, signal: Signal) -> None:
        self._put(signal)

    def _put(self, item: _Item) -> None:
        self._queue.put(item)
        self.wake.set()

    def drain(self) -> dict[str, Round]:
        """Everything queued so far, by tenant, in arrival order within each."""
        rounds: dict[str, Round] = {}
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rounds
            r = rounds.setdefault(item.client_id, Round())
            if isinstance(item, Batch):
                r.batches.append(item)
            elif isinstance(item, _Event):
                r.events.append(item.event)
            elif isinstance(item, _Noted):
                r.noted.add(item.host)
            else:
                r.signals.append(item)
