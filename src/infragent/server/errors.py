"""One map from a failure to its HTTP answer: status, reason, ``Retry-After`` and the refusal's label.

Why one map: the same failure used to be answered in six places (native and OTLP, in the server
process and in an ingest worker), and the copies drifted — native ingest answered 500 with no
``Retry-After`` when the database was down while the worker path answered 503. ``answer_for`` is the
only place a failure becomes an HTTP status; ``server/ingest/outcome.py`` turns its result into an
``IngestOutcome`` on every path, and the routes only encode that (JSON, or a ``google.rpc.Status``).

Pure and free of FastAPI, so the worker processes (``server/ingest/pool.py``) import it too.

The table (failure → status, ``Retry-After``, counted as a refusal with reason):

* ``wire.WireError`` and its subclasses (``OtlpError``, too large, bad encoding) → its own
  ``status`` (400, 413, 415), no ``Retry-After``, reason from ``REASON_BY_STATUS``;
* ``SeriesCapError`` (``ingest/admission.py``) → 429, ``Retry-After: 60``, reason ``series_cap``;
* SQLAlchemy ``OperationalError`` (storage down), any driver error SQLAlchemy recognised as a lost
  connection (``connection_invalidated``) and pool ``TimeoutError`` (pool exhausted) → 503,
  ``Retry-After: RETRY_AFTER_S``, not a refusal (a retry);
* ``notify.errors.NotifyError`` and its subclasses (a notification request refused) → its own
  ``status`` (404, 409, 422) with ``{"detail": message}``, and for a ``NotifyConfigError`` every
  field at fault as ``"problems": [{"field": path, "message": ...}]`` (``notify_refusal``);
* ``store.run_errors.RunError`` and its subclasses (a request about runs, approvals or guardrails
  refused) → its own ``status`` (404, 409, 422) with ``{"detail": message, "code": code}``, and for
  a ``GuardInputError`` every field at fault as ``"problems"`` (``run_refusal``);
* anything else (a bug) → 500, logged with its traceback, not a refusal.

Every HTTP route answers through this map too, not only ingest: ``server/app.py`` installs it as the
app's handler of SQLAlchemy's errors and of any other exception, so a route that touches the
database (events, agents, commands, queries, registration, key checks) answers a database that is
down with the same 503 and ``Retry-After`` as ingest, never an unhandled 500. The answer's text is
the table's, never the exception's: a failing statement's SQL, its parameters and the driver's
message go to the server log only.

Why one ``Retry-After`` of 1 s on every 503 (storage down, pool exhausted, an ingest worker
restarted): it is a floor, not a schedule. Agents, the SDK and OTLP exporters back off
exponentially with jitter on their own and wait at least this long, so a long outage still spreads
their retries out, while a momentary one (a full pool, a worker being replaced) costs one second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from infragent.notify.errors import NotifyConfigError, NotifyError
from infragent.server.ingest.admission import SeriesCapError
from infragent.store.run_errors import GuardInputError, RunError
from infragent.wire import WireError

#: Seconds a client is asked to wait after any 503 (see the module docstring for why one value).
RETRY_AFTER_S = 1
STORAGE_UNAVAILABLE = "storage is busy or unavailable; retry later"
INTERNAL_ERROR = "internal error while storing the batch"
#: The 500 of any other route: the details are in the server log, never in the answer.
ROUTE_INTERNAL_ERROR = "internal error; the server log has the details"
#: The telemetry reason counted for a request refused whole with this HTTP status.
REASON_BY_STATUS = {400: "bad_request", 413: "too_large", 415: "unsupported"}


@dataclass(frozen=True, slots=True)
class Answer:
    """How a failure is answered; ``label`` is empty for a retry (503) or a bug (500): not a refusal."""

    status: int
    reason: str
    retry_after_s: int = 0
    label: str = ""
    #: data points the refused body held, when the failure knows them (the series cap does)
    points: int = 0

    @property
    def storage_unavailable(self) -> bool:
        return self.status == 503


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or is saturated (a retry), not a bug."""
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def answer_for(exc: BaseException, *, internal: str = INTERNAL_ERROR) -> Answer:
    """The answer to ``exc``; anything not in the table is a 500 saying ``internal``, never a guess
    at a 4xx. Ingest keeps the default; the other routes pass ``ROUTE_INTERNAL_ERROR``."""
    if isinstance(exc, WireError):
        return Answer(exc.status, exc.reason, label=REASON_BY_STATUS.get(exc.status, "bad_request"))
    if isinstance(exc, SeriesCapError):
        return Answer(exc.status, str(exc), exc.retry_after_s, "series_cap", exc.points)
    if is_storage_failure(exc):
        return Answer(503, STORAGE_UNAVAILABLE, RETRY_AFTER_S)
    return Answer(500, internal)


def unavailable(reason: str) -> Answer:
    """A 503 that is no exception of ours (an ingest worker died mid-request): retry after the same delay."""
    return Answer(503, reason, RETRY_AFTER_S)


def retry_after_header(retry_after_s: int) -> dict[str, str] | None:
    """The ``Retry-After`` header of an answer that has one."""
    return {"Retry-After": str(retry_after_s)} if retry_after_s else None


def notify_refusal(exc: NotifyError) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a refused notification request; a 422 lists every field at fault.
    The messages never hold a secret (``notify/config.py`` and the store word them without one)."""
    body: dict[str, Any] = {"detail": exc.message}
    if isinstance(exc, NotifyConfigError):
        body["problems"] = [{"field": path, "message": message} for path, message in exc.problems]
    return exc.status, body


def run_refusal(exc: RunError) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a refused request about runs, approvals or guardrails: the
    message, the machine-readable ``code``, and for a 422 every field at fault."""
    body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
    if isinstance(exc, GuardInputError):
        body["problems"] = [{"field": path, "message": message} for path, message in exc.problems]
    return exc.status, body
