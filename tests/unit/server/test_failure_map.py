"""The one failure → answer map (``server/errors.py``) and the outcome every ingest path builds from it.

Table-driven and pure: real exception values in, answers out; no server, no database. The
integration tests (``tests/integration/server/test_ingest_unavailable.py``) check that the real
failures reach this map on every path.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from infragent.server.errors import (
    RETRY_AFTER_S,
    ROUTE_INTERNAL_ERROR,
    Answer,
    answer_for,
    retry_after_header,
    unavailable,
)
from infragent.server.ingest.admission import SeriesCapError
from infragent.server.ingest.otlp import OtlpError
from infragent.server.ingest.outcome import IngestOutcome, Tally, run
from infragent.store.metrics import WriteResult
from infragent.wire import PayloadTooLargeError, UnsupportedEncodingError, WireError

STORAGE = "storage is busy or unavailable; retry later"
CAP = "series cap reached: tenant has 3 of max 3 series (max_series_per_tenant)"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            WireError("timestamps and values differ in length"),
            Answer(400, "timestamps and values differ in length", label="bad_request"),
        ),
        (OtlpError("body is not valid JSON"), Answer(400, "body is not valid JSON", label="bad_request")),
        (
            PayloadTooLargeError(1024),
            Answer(413, "decompressed body is larger than the limit of 1024 bytes", label="too_large"),
        ),
        (
            UnsupportedEncodingError("br"),
            Answer(415, "unsupported Content-Encoding 'br': send 'gzip' or none", label="unsupported"),
        ),
        (SeriesCapError(3, 3, 12), Answer(429, CAP, 60, "series_cap", 12)),
        (OperationalError("INSERT …", {}, ConnectionRefusedError("refused")), Answer(503, STORAGE, 1)),
        (PoolTimeoutError("QueuePool limit of size 1 overflow 0 reached"), Answer(503, STORAGE, 1)),
        (ValueError("a bug"), Answer(500, "internal error while storing the batch")),
        (KeyError("a bug"), Answer(500, "internal error while storing the batch")),
    ],
    ids=["wire", "otlp", "too-large", "encoding", "series-cap", "storage-down", "pool-full", "bug", "bug2"],
)
def test_every_failure_has_one_answer(failure: Exception, expected: Answer) -> None:
    assert answer_for(failure) == expected


def test_every_503_asks_for_the_same_retry_after() -> None:
    down = answer_for(OperationalError("SELECT 1", {}, OSError("down")))
    full = answer_for(PoolTimeoutError("pool"))
    lost = unavailable("ingest worker restarted; retry")
    assert {down.retry_after_s, full.retry_after_s, lost.retry_after_s} == {RETRY_AFTER_S}
    assert retry_after_header(RETRY_AFTER_S) == {"Retry-After": "1"}
    assert retry_after_header(0) is None


def test_run_turns_a_failure_into_an_outcome_keeping_what_was_written_before() -> None:
    """An OTLP request stored host by host: the first group is written, the second finds storage down."""

    def work(tally: Tally) -> IngestOutcome:
        tally.wrote(WriteResult(accepted_points=5, duplicate=False), 0.002)
        tally.wrote(WriteResult(accepted_points=0, duplicate=True), 0.001)
        raise OperationalError("INSERT …", {}, ConnectionResetError("reset"))

    out = run(work, "otlp", "tenant-1")
    assert (out.status, out.reason, out.retry_after_s, out.label) == (503, STORAGE, 1, "")
    assert (out.stored_batches, out.duplicate_batches, out.stored_points) == (1, 1, 5)
    assert out.write_s == [0.002, 0.001] and not out.ok


def test_run_returns_the_work_s_outcome_and_a_refusal_carries_its_points() -> None:
    stored = run(lambda tally: tally.stored_outcome(batch_id="b-1"), "native", "tenant-1")
    assert stored.ok and stored.batch_id == "b-1" and not stored.duplicate

    def capped(_tally: Tally) -> IngestOutcome:
        raise SeriesCapError(3, 3, 12)

    refused = run(capped, "native", "tenant-1")
    assert (refused.status, refused.label, refused.points, refused.retry_after_s) == (
        429,
        "series_cap",
        12,
        60,
    )


def test_a_lost_connection_is_a_retry_and_any_other_database_error_a_500_naming_no_sql() -> None:
    """Routes pass their own 500 text; neither answer carries the statement or its parameters."""
    lost = InterfaceError(
        "SELECT secret FROM t", {"p": "x"}, Exception("closed"), connection_invalidated=True
    )
    bug = IntegrityError("INSERT INTO t VALUES (%(p)s)", {"p": "x"}, Exception("duplicate key"))
    assert answer_for(lost) == Answer(503, STORAGE, 1)
    assert answer_for(bug, internal=ROUTE_INTERNAL_ERROR) == Answer(500, ROUTE_INTERNAL_ERROR)
    assert answer_for(InterfaceError("SELECT 1", {}, Exception("misuse"))).status == 500
