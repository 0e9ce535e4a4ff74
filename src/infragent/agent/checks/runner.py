"""Schedules health checks, runs each probe on a thread of its own, reports transitions at once.

Why not one loop: a check stuck on a 5 s timeout must not delay the check behind it. So every
probe that can wait (http, tcp, command, systemd) runs on a short-lived thread started for that
run, at most ``max_workers`` at a time. Why not a ``ThreadPoolExecutor``: its idle workers and
``concurrent.futures``/``queue`` stay resident between runs, and an agent's probes are idle 99.9 %
of the time; a thread that has finished gives its stack back (glibc ``madvise``s it away).
The ``process`` probe reads ``/proc`` and never waits, so it runs on the scheduler thread itself.

Why the callback runs as soon as the probe finishes (on the probe's thread) and not at the next
metrics tick: "the app is down" is the one signal whose latency matters most — the agent turns the
transition into an event and sends it right away.

Each check runs at most once at a time; a probe slower than its interval simply delays the next
run instead of piling runs up. ``tick(now)`` is public so tests drive time themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from infragent.agent.checks.config import CheckConfig
from infragent.agent.checks.probes import run_check
from infragent.agent.collectors.point import MetricPoint, gauge
from infragent.health import CheckResult, CheckState, CheckTransition, step

logger = logging.getLogger(__name__)

Probe = Callable[[CheckConfig], CheckResult]
OnTransition = Callable[[CheckTransition], None]

#: Longest the scheduler sleeps, so ``close`` and new due times are noticed promptly.
_MAX_WAIT_S = 1.0
#: Check types whose probe never waits (it reads ``/proc``): run on the scheduler thread.
INLINE_TYPES = frozenset({"process"})


def initial_state(check: CheckConfig) -> CheckState:
    return CheckState(
        name=check.name,
        failures_before_down=check.failures_before_down,
        successes_before_up=check.successes_before_up,
    )


class CheckRunner:
    """Runs due checks and calls ``on_transition`` the moment a check changes state.

    ``on_transition`` is called from a probe's thread, never twice at once (calls are serialised),
    and should be quick — enqueue, do not send inline. An exception it raises is logged; the
    runner carries on.
    """

    def __init__(
        self,
        checks: Sequence[CheckConfig],
        on_transition: OnTransition,
        *,
        probe: Probe = run_check,
        clock: Callable[[], float] = time.time,
        max_workers: int | None = None,
    ) -> None:
        self._checks = {check.name: check for check in checks}
        if len(self._checks) != len(checks):
            raise ValueError("check names must be unique")
        self._on_transition = on_transition
        self._probe = probe
        self._clock = clock
        self._states = {check.name: initial_state(check) for check in checks}
        self._next_due = dict.fromkeys(self._checks, float("-inf"))
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._callback_lock = threading.Lock()
        # One thread per check up to 8: a handful of checks stuck on timeouts must not queue the rest.
        self._max_threads = max_workers if max_workers is not None else min(8, max(1, len(checks)))
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def states(self) -> dict[str, CheckState]:
        """A snapshot of every check's state, for status pages and metrics."""
        with self._lock:
            return dict(self._states)

    def tick(self, now: float) -> list[str]:
        """Start every check that is due and idle; return their names.

        Probes of ``INLINE_TYPES`` have finished when this returns; the others run on their own
        thread. A due check beyond ``max_workers`` running threads waits for a later tick.
        """
        started: list[str] = []
        threaded: list[threading.Thread] = []
        with self._lock:
            for name, check in self._checks.items():
                if name in self._in_flight or self._next_due[name] > now:
                    continue
                if check.type not in INLINE_TYPES:
                    if len(self._threads) >= self._max_threads:
                        continue
                    thread = threading.Thread(
                        target=self._run_probe, args=(name,), name=f"infragent-check-{name}", daemon=True
                    )
                    self._threads[name] = thread
                    threaded.append(thread)
                self._in_flight.add(name)
                self._next_due[name] = now + check.interval_s
                started.append(name)
        for thread in threaded:
            try:
                thread.start()
            except RuntimeError:  # no thread to be had (limits): the check stays due, tried next tick
                logger.exception("cannot start a thread for %s", thread.name)
                name = thread.name.removeprefix("infragent-check-")
                with self._lock:
                    self._in_flight.discard(name)
                    self._threads.pop(name, None)
                    self._next_due[name] = now
                started.remove(name)
        for name in started:
            if self._checks[name].type in INLINE_TYPES:
                self._run_probe(name)
        return started

    def seconds_until_due(self, now: float) -> float:
        """How long the scheduler may sleep before some idle check is due."""
        with self._lock:
            idle = [due for name, due in self._next_due.items() if name not in self._in_flight]
            if len(self._threads) >= self._max_threads:  # a thread's end is noticed by the next poll
                idle = [due for due in idle if due > now]
        if not idle:  # everything is running; a finishing probe only makes work due later
            return _MAX_WAIT_S
        return max(0.0, min(idle) - now)

    @property
    def running(self) -> frozenset[str]:
        """Names of the checks whose probe is running now."""
        with self._lock:
            return frozenset(self._in_flight)

    def _run_probe(self, name: str) -> None:
        try:
            result = self._probe(self._checks[name])
        except Exception as exc:  # a probe bug must read as a failed check, not kill scheduling
            logger.exception("probe for check %s crashed", name)
            result = CheckResult("down", None, f"probe crashed: {type(exc).__name__}: {exc}")
        try:
            now = self._clock()
            with self._lock:
                previous = self._states[name]
                state, transition = step(previous, result, now)
                self._states[name] = state
            if result.status == "unavailable" and previous.last_result is None:
                logger.warning("check %s cannot run on this host: %s", name, result.error)
            if transition is not None:
                self._emit(transition)
        finally:
            # Only now may the check run again: its transitions are reported in order.
            with self._lock:
                self._in_flight.discard(name)
                if self._threads.get(name) is threading.current_thread():
                    del self._threads[name]

    def _emit(self, transition: CheckTransition) -> None:
        logger.info("check %s: %s (%s)", transition.check, transition.kind, transition.error)
        with self._callback_lock:
            try:
                self._on_transition(transition)
            except Exception:  # callback boundary: a failing reporter must not stop the checks
                logger.exception("on_transition failed for check %s", transition.check)

    def run(self) -> None:
        """Schedule until ``close``; the body of the thread ``start`` launches."""
        while not self._stop.is_set():
            now = self._clock()
            self.tick(now)
            self._stop.wait(min(_MAX_WAIT_S, max(0.01, self.seconds_until_due(self._clock()))))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="infragent-checks", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop scheduling and wait for running probes (each is bounded by its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            running = list(self._threads.values())
        for thread in running:
            thread.join()

    def points(self) -> list[MetricPoint]:
        """``infragent.check.up`` (1/0, absent while unknown) and ``infragent.check.latency`` (ms)."""
        points: list[MetricPoint] = []
        for name, state in self.states.items():
            attributes = {"check.name": name, "check.type": self._checks[name].type}
            if state.status != "unknown":
                points.append(
                    gauge("infragent.check.up", 1.0 if state.status == "up" else 0.0, "1", attributes)
                )
            latency = state.last_result.latency_ms if state.last_result is not None else None
            if latency is not None:
                points.append(gauge("infragent.check.latency", latency, "ms", attributes))
        return points
