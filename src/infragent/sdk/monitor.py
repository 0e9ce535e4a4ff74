"""Health monitor: probe a URL on an interval and report outages as events.

Why a state machine with ``check_once(now)``: the interesting logic is *when* to report (once per
outage, after N consecutive failures, again when it is back) — not the thread. That rule is the
shared one of :mod:`infragent.health` (``step``), the same the agent's checks use, so an app pages
the same way whoever watches it; the monitor turns each probe into a ``CheckResult`` and each
``CheckTransition`` into a report. Keeping the step callable with an explicit ``now`` lets tests
drive outages check by check without sleeping; the thread is a thin loop around it.

Why a queue of unreported transitions: a report fails exactly when things are bad (the server is
down too, or the network is). An outage report that could not be delivered is kept and sent on the
next check instead of being lost; it is never re-detected and never sent twice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Final, Protocol

import httpx

from infragent.errors import InfrAgentError
from infragent.health import CheckResult, CheckState, CheckTransition, TransitionKind, step
from infragent.model import Severity

logger = logging.getLogger(__name__)

APP_DOWN: Final = "app_down"
APP_RECOVERED: Final = "app_recovered"

#: Undelivered transitions kept while the server is unreachable; a flapping app cannot grow
#: memory without bound. Dropping is logged.
MAX_PENDING = 100


class EventReporter(Protocol):
    """What the monitor needs from :class:`infragent.sdk.Client`: a way to report an event."""

    def report_event(
        self,
        type: str,
        service: str | None = None,
        severity: str = "warning",
        data: Mapping[str, Any] | None = None,
        node_id: str | None = None,
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class Probe:
    """Outcome of one health request."""

    ok: bool
    status: int | None
    error: str | None
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Transition:
    """An outage starting or ending, as reported; ``reported_at``/``event_id`` stay None until delivered.

    The report of one :class:`infragent.health.CheckTransition`, with the event's ``data``.

    ``detected_at`` is the check at which the failure threshold was crossed (or the first good
    check after it); ``reported_at`` is when the server accepted the event. Their difference is
    the reporting latency the demo shows.
    """

    kind: TransitionKind
    detected_at: float
    data: Mapping[str, Any]
    reported_at: float | None = None
    event_id: str | None = None


class Monitor:
    """Probes ``health_url`` every ``interval_s`` in a daemon thread; reports down/recovered."""

    def __init__(
        self,
        reporter: EventReporter,
        health_url: str,
        *,
        service: str,
        interval_s: float = 30.0,
        timeout_s: float = 5.0,
        failures_before_down: int = 1,
        expect_status: Container[int] = range(200, 400),
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = httpx.URL(health_url)
        if url.scheme not in ("http", "https"):
            raise ValueError(f"health_url must be http(s), got {health_url!r}")
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError("interval_s and timeout_s must be > 0")
        if failures_before_down < 1:
            raise ValueError(f"failures_before_down must be >= 1, got {failures_before_down}")
        self.health_url = health_url
        self.service = service
        self.interval_s = interval_s
        self.failures_before_down = failures_before_down
        self._reporter = reporter
        self._expect_status = expect_status
        self._clock = clock
        # Redirects count as "up" by default (expect_status includes 3xx); following them would
        # probe some other service.
        self._http = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # successes_before_up=1: the first good answer ends an outage (the SDK's documented rule).
        self._state = CheckState(service, failures_before_down=failures_before_down, successes_before_up=1)
        self._pending: deque[Transition] = deque()
        self._last: Transition | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def is_down(self) -> bool:
        return self._state.status == "down"

    @property
    def consecutive_failures(self) -> int:
        return self._state.consecutive_failures

    @property
    def last_transition(self) -> Transition | None:
        """The latest outage start or end, with ``reported_at`` once the server has it."""
        return self._last

    @property
    def pending(self) -> tuple[Transition, ...]:
        """Transitions detected but not yet accepted by the server, oldest first."""
        return tuple(self._pending)

    # -- one step ------------------------------------------------------------------------------

    def check_once(self, now: float) -> TransitionKind | None:
        """Probe once, update the state and deliver pending reports; return the new transition.

        The return value is the state change detected *at this check*, whether or not its report
        got through (see ``pending`` and ``last_transition.reported_at`` for that).
        """
        probe = self.probe()
        with self._lock:
            transition = self._observe(probe, now)
            self._deliver()
        return transition.kind if transition is not None else None

    def probe(self) -> Probe:
        """One GET of the health URL; any transport error or unexpected status is a failure."""
        started = time.perf_counter()
        try:
            response = self._http.get(self.health_url)
        except httpx.HTTPError as exc:
            latency_ms = (time.perf_counter() - started) * 1000
            return Probe(ok=False, status=None, error=f"{type(exc).__name__}: {exc}", latency_ms=latency_ms)
        latency_ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        if status in self._expect_status:
            return Probe(ok=True, status=status, error=None, latency_ms=latency_ms)
        return Probe(ok=False, status=status, error=f"unexpected status {status}", latency_ms=latency_ms)

    def _observe(self, probe: Probe, now: float) -> Transition | None:
        result = CheckResult("up" if probe.ok else "down", probe.latency_ms, probe.error)
        self._state, change = step(self._state, result, now)
        if change is None:
            return None
        data = MappingProxyType(self._event_data(change, probe))
        return self._enqueue(Transition(kind=change.kind, detected_at=now, data=data))

    def _event_data(self, change: CheckTransition, probe: Probe) -> dict[str, Any]:
        """The event's ``data`` (documented in docs/sdk.md): the probe's view plus the outage's times."""
        if change.kind == "app_down":
            return {
                "url": self.health_url,
                "status": probe.status,
                "error": probe.error,
                "latency_ms": round(probe.latency_ms, 3),
                "consecutive_failures": change.consecutive_failures,
                "first_failure_at": change.since,
                "detected_at": change.at,
            }
        return {
            "url": self.health_url,
            "status": probe.status,
            "latency_ms": round(probe.latency_ms, 3),
            # Counted from the first failed check: that is when users started seeing errors.
            "downtime_s": round(change.downtime_s or 0.0, 3),
            "down_detected_at": change.down_at,
            "detected_at": change.at,
        }

    def _enqueue(self, transition: Transition) -> Transition:
        if len(self._pending) >= MAX_PENDING:
            dropped = self._pending.popleft()
            logger.error(
                "dropping unreported %s of %s detected at %s", dropped.kind, self.service, dropped.detected_at
            )
        self._pending.append(transition)
        self._last = transition
        return transition

    def _deliver(self) -> None:
        """Send pending transitions in order; stop at the first failure and keep the rest."""
        while self._pending:
            transition = self._pending[0]
            severity = Severity.CRITICAL if transition.kind == APP_DOWN else Severity.INFO
            try:
                event_id = self._reporter.report_event(
                    type=transition.kind, service=self.service, severity=severity, data=dict(transition.data)
                )
            except InfrAgentError as exc:
                logger.warning(
                    "could not report %s of %s (will retry on the next check): %s",
                    transition.kind,
                    self.service,
                    exc,
                )
                return
            self._pending.popleft()
            delivered = dataclasses.replace(transition, reported_at=self._clock(), event_id=event_id)
            if self._last is transition:
                self._last = delivered
            logger.info("reported %s of %s as event %s", transition.kind, self.service, event_id)

    # -- thread --------------------------------------------------------------------------------

    def start(self) -> Monitor:
        """Start checking in a daemon thread (first check right away); returns self."""
        if self._thread is not None:
            raise RuntimeError("monitor already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"infragent-monitor-{self.service}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the thread after its current check; safe to call when not started."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def close(self) -> None:
        """Stop and release the probe's connections."""
        self.stop()
        self._http.close()

    def _run(self) -> None:
        while True:
            try:
                self.check_once(self._clock())
            except Exception:  # loop boundary: one bad check must not end monitoring
                logger.exception("health check of %s failed", self.health_url)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
