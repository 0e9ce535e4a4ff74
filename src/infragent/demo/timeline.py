"""The demo's timeline: steps stamped when they happen, printed in that order.

Why this is its own piece: the story's steps happen on several threads (the SDK's monitor, the
responder, the webhook handler, the main thread watching), and the old timeline printed each one
when it was *noticed*, stamped with the time of printing. The main thread noticed the SDK's report
only on its next poll, 20 ms later. By then the in-process responder had already decided and
the handler thread had printed "command verified". The result was a timeline that said the
command arrived before the outage was detected.

Now every step carries the time it happened, taken from one clock (``time.time``: the server's
audit entries, the SDK's monitor and the handler all use it). A step can be recorded from any
thread. Only the main thread prints, with ``flush(until)``, and only once every step up to
``until`` is known. The printed lines are therefore sorted by the time they happened, and with one
clock that is causal order: an effect is stamped no earlier than its cause. Ties keep the order in
which the steps were recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Step:
    """One thing that happened: when, a tie-breaking sequence number, and what."""

    at: float
    seq: int
    text: str


def render(step: Step) -> str:
    """``HH:MM:SS.mmm  text`` in local time, as the demo prints it."""
    clock = time.strftime("%H:%M:%S", time.localtime(step.at))
    return f"{clock}.{int(step.at % 1 * 1000):03d}  {step.text}"


class Timeline:
    """Steps recorded from any thread; printed in time order by the thread that calls ``flush``."""

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.time) -> None:
        self._say = say
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[Step] = []
        self._printed: list[Step] = []
        self._seq = 0

    def add(self, text: str, at: float | None = None) -> float:
        """Record a step that happened at ``at`` (default: now); return its time. Prints nothing."""
        when = self._clock() if at is None else at
        with self._lock:
            self._seq += 1
            self._pending.append(Step(when, self._seq, text))
        return when

    def now(self, text: str) -> float:
        """Record a step happening now on the printing thread, and print everything up to it."""
        when = self.add(text)
        self.flush(until=when)
        return when

    def flush(self, until: float | None = None) -> None:
        """Print the recorded steps up to ``until`` (all when None), oldest first.

        Call it only when no step at or before ``until`` can still be recorded: a step recorded
        later than that would be printed out of order.
        """
        with self._lock:
            due = sorted(s for s in self._pending if until is None or s.at <= until)
            self._pending = [s for s in self._pending if until is not None and s.at > until]
            self._printed.extend(due)
        for step in due:
            self._say(render(step))

    @property
    def steps(self) -> list[tuple[float, str]]:
        """What was printed, in print order: ``(at, text)``."""
        with self._lock:
            return [(s.at, s.text) for s in self._printed]
