"""``Budget``: how much CPU the evaluator may spend on evaluation, as a share of one core.

Why a budget: the evaluator runs in the server process, beside ingest, under one GIL. Every
second it spends evaluating is a second ingest cannot run Python, so at the ingest rate's limit
each batch's evaluations would cost as much throughput as they cost CPU (measured: half of it,
bench/rule_eval_cost.py). Below the budget nothing changes: a batch's instances are evaluated as
soon as it is stored. Past it, instances touched by new batches are evaluated later, together,
once the budget has refilled: an instance touched by ten batches meanwhile is evaluated once,
over all of their samples. Timers on the tick are never held back.

A token bucket in CPU seconds (``time.thread_time`` of the evaluator's thread): it refills at
``share`` seconds per second up to ``burst_s``, so the burst of a fleet whose agents all send at
the same second of their interval is absorbed, and only a sustained overload is spread out.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Budget:
    def __init__(self, share: float, burst_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.burst_s = burst_s
        self.clock = clock
        self._tokens = burst_s
        self._at = clock()

    def _refill(self) -> None:
        mono = self.clock()
        self._tokens = min(self.burst_s, self._tokens + (mono - self._at) * self.share)
        self._at = mono

    def spend(self, cpu_s: float) -> None:
        self._refill()
        self._tokens -= cpu_s

    def available(self) -> bool:
        self._refill()
        return self._tokens > 0

    def wait_s(self) -> float:
        """Seconds until evaluation may go on (0 when it may now)."""
        self._refill()
        return 0.0 if self._tokens > 0 else -self._tokens / self.share
