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

``process`` checks with ``watch_exit`` also hold a pidfd on the process a probe found up
(``exitwatch.py``): its exit makes the check due at once and wakes the scheduler, and a ``down``
probe that follows an exit is ``definite`` (``app_down`` without waiting for more failures). Where
no pidfd can be had the check simply polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from infragent.agent import acting
from infragent.agent.checks import exitwatch
from infragent.agent.checks.config import CheckConfig, ProcessCheck
from infragent.agent.checks.probes import locate_process, run_check
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
        self._wake = threading.Event()  # set by close and by the exit watch: schedule now
        self._thread: threading.Thread | None = None
        self._exited: dict[str, int] = {}  # check name -> pid the exit watch saw exit
        watched = [c for c in checks if isinstance(c, ProcessCheck) and c.watch_exit]
        self._exit_watch: exitwatch.ExitWatch | None = None
        if watched and exitwatch.available():
            self._exit_watch = exitwatch.ExitWatch(self._on_exit)
        elif watched:
            logger.info("no pidfd on this host: watch_exit checks poll every interval_s")

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
        if self._exit_watch is not None:
            result = self._follow_exit(name, result)
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

    def _follow_exit(self, name: str, result: CheckResult) -> CheckResult:
        """Mark a failure seen right after an exit as definite; watch the process a probe found up."""
        assert self._exit_watch is not None
        with self._lock:
            exited = self._exited.pop(name, None)
        check = self._checks[name]
        if not isinstance(check, ProcessCheck) or not check.watch_exit:
            return result
        if result.status == "down" and exited is not None:
            if acting.active():  # the agent's own action stopped it: the usual count decides
                return replace(result, error=f"pid {exited} exited during an action; {result.error}")
            return replace(result, definite=True, error=f"pid {exited} exited; {result.error}")
        if result.status == "up" and self._exit_watch.watching(name) is None:
            pid, _why = locate_process(check)
            if pid is not None and self._exit_watch.watch(name, pid) == "gone":
                self._on_exit(name, pid)  # it died between the probe and the pidfd: probe again now
        return result

    def _on_exit(self, name: str, pid: int) -> None:
        """From the exit watch's thread: make the check due now and wake the scheduler; during an
        action of the agent's own (a restart stops the old process before it starts the new one)
        the check keeps its poll, which finds the new process (``agent/acting.py``)."""
        with self._lock:
            self._exited[name] = pid
            if acting.active():
                return
            self._next_due[name] = float("-inf")
        self._wake.set()

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
            self._wake.clear()  # before the tick: an exit reported during it wakes the next wait
            self.tick(self._clock())
            self._wake.wait(min(_MAX_WAIT_S, max(0.01, self.seconds_until_due(self._clock()))))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="infragent-checks", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop scheduling and wait for running probes (each is bounded by its timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._exit_watch is not None:
            self._exit_watch.close()
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
