"""``IngestOutcome``: what happened to one ingest body, the same value on every ingest path.

Why one value: native and OTLP ingest run in the server process or in a worker process
(``pool.py``), four paths that used to build their answers and counters four ways. Each path now
runs its work through ``run``, which turns any failure into an outcome with ``server/errors.py``'s
one map; the worker sends the outcome back as msgpack (so no exception has to cross a socket), and
the route only encodes it. The server process counts every outcome the same way
(``Telemetry.ingested``), wherever it was produced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import msgspec

from infragent.server.errors import Answer, answer_for
from infragent.store.metrics import WriteResult

logger = logging.getLogger(__name__)


class IngestOutcome(msgspec.Struct, frozen=True):
    """Stored (``status`` 200) or refused (4xx/5xx, ``reason``, maybe ``retry_after_s``), with counts.

    Batches written before a failure still count: an OTLP request is stored host group by host
    group, each write idempotent, so a 503 after the first group leaves that group stored.
    """

    status: int = 200
    reason: str = ""
    retry_after_s: int = 0
    #: the telemetry reason of a refusal ("series_cap", "bad_request", …); empty for 200, 503, 500
    label: str = ""
    #: data points in a body refused whole, for the rejected-points counter
    points: int = 0
    #: the native batch's id (OTLP bodies have none)
    batch_id: str = ""
    stored_batches: int = 0
    duplicate_batches: int = 0
    #: data points this body stored (0 for a duplicate: an earlier body stored them)
    stored_points: int = 0
    #: data points dropped from an otherwise stored OTLP request (``partialSuccess``)
    rejected_points: int = 0
    #: seconds each batch's write took, for the write-latency histogram
    write_s: list[float] = msgspec.field(default_factory=list)
    #: the encoded OTLP ``ExportMetricsServiceResponse`` of a success; empty for native
    answer: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def duplicate(self) -> bool:
        """A native batch stored before: nothing new was written."""
        return self.duplicate_batches > 0 and self.stored_batches == 0


class Tally:
    """What a body's batches did so far; a failure midway still reports the batches already written."""

    def __init__(self) -> None:
        self.stored = 0
        self.duplicates = 0
        self.points = 0
        self.write_s: list[float] = []

    def wrote(self, result: WriteResult, seconds: float) -> None:
        if result.duplicate:
            self.duplicates += 1
        else:
            self.stored += 1
        self.points += result.accepted_points
        self.write_s.append(seconds)

    def stored_outcome(
        self, *, batch_id: str = "", answer: bytes = b"", rejected_points: int = 0
    ) -> IngestOutcome:
        """The outcome of a body stored whole (some OTLP points may have been dropped)."""
        return IngestOutcome(
            batch_id=batch_id,
            answer=answer,
            rejected_points=rejected_points,
            stored_batches=self.stored,
            duplicate_batches=self.duplicates,
            stored_points=self.points,
            write_s=self.write_s,
        )

    def refused(self, answer: Answer) -> IngestOutcome:
        """The outcome of a failure, with the batches written before it."""
        return IngestOutcome(
            status=answer.status,
            reason=answer.reason,
            retry_after_s=answer.retry_after_s,
            label=answer.label,
            points=answer.points,
            stored_batches=self.stored,
            duplicate_batches=self.duplicates,
            stored_points=self.points,
            write_s=self.write_s,
        )


def run(work: Callable[[Tally], IngestOutcome], path: str, client_id: str) -> IngestOutcome:
    """Do ``work`` and return its outcome, or the outcome of the failure that stopped it.

    This is the ingest-batch loop boundary (in the server's thread pool or in a worker), so every
    exception is caught here: expected ones map to their answer, the rest are logged in full and
    answered 500, and the caller goes on with the next body.
    """
    tally = Tally()
    try:
        return work(tally)
    except Exception as exc:
        answer = answer_for(exc)
        if answer.storage_unavailable:  # not the SQL and its parameters: the driver's message
            cause = getattr(exc, "orig", None) or exc
            logger.warning("%s ingest for client %s (pid %d): %s", path, client_id, os.getpid(), cause)
        elif answer.status >= 500:
            logger.exception("%s ingest for client %s (pid %d) failed", path, client_id, os.getpid())
        return tally.refused(answer)


def unavailable(answer: Answer) -> IngestOutcome:
    """The outcome of a 503 that no work produced (the worker that had the body died)."""
    return Tally().refused(answer)
