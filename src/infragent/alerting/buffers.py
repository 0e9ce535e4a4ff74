"""``SeriesBuffer``: one series' recent samples, as two numpy arrays the rule kernels read in place.

Why numpy arrays with a moving start instead of a deque: the window functions (avg, rate, a
least-squares fit) are vectorised over arrays; a deque would be copied into an array at every
evaluation. Appends land in spare capacity (doubled when full), trimming only moves ``start``, and
the live part is compacted to the front when the dead part grows past half, so each sample is
copied O(1) times on average. ``view`` hands out read-only slices: no copy per evaluation.

Why trim against the newest sample and not the clock: what a rule needs is ``keep_s`` of history
before *now*, and the newest sample is at most a tick behind now; a clock-based trim would empty the
buffer of a series that paused, which the evaluator must then not mistake for "no data since start".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
_INITIAL = 16


class SeriesBuffer:
    """Samples in time order, at least ``keep_s`` seconds back from the newest one."""

    __slots__ = ("_end", "_start", "_ts", "_values", "keep_s")

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._ts = np.empty(_INITIAL, dtype=np.float64)
        self._values = np.empty(_INITIAL, dtype=np.float64)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def last_ts(self) -> float | None:
        return float(self._ts[self._end - 1]) if self._end > self._start else None

    def view(self) -> tuple[F64, F64]:
        ts = self._ts[self._start : self._end]
        values = self._values[self._start : self._end]
        ts.flags.writeable = False
        values.flags.writeable = False
        return ts, values

    def extend(self, ts: F64, values: F64) -> None:
        """Add samples (any order; a timestamp already held is replaced by the newer value)."""
        n = len(ts)
        if n == 0:
            return
        last = self.last_ts
        in_order = (last is None or ts[0] > last) and (n == 1 or bool(np.all(ts[1:] > ts[:-1])))
        if in_order:
            self._append(ts, values)
        else:
            self._merge(ts, values)
        self._trim()

    def append(self, t: float, value: float) -> None:
        """One sample (an agent tick's usual batch): no array built for it."""
        last = self.last_ts
        if last is not None and t <= last:
            self.extend(np.array([t]), np.array([value]))
            return
        if self._end == len(self._ts):
            self._grow(1)
        self._ts[self._end] = t
        self._values[self._end] = value
        self._end += 1
        self._trim()

    def _append(self, ts: F64, values: F64) -> None:
        n = len(ts)
        if self._end + n > len(self._ts):
            self._grow(n)
        self._ts[self._end : self._end + n] = ts
        self._values[self._end : self._end + n] = values
        self._end += n

    def _merge(self, ts: F64, values: F64) -> None:
        """Late or repeated samples (a spooled batch, a refresh overlapping what we hold): merge by
        time; for equal timestamps the sample added last wins, as a re-sent value would."""
        held_ts, held_values = self._ts[self._start : self._end], self._values[self._start : self._end]
        all_ts = np.concatenate((held_ts, ts))
        all_values = np.concatenate((held_values, values))
        order = np.argsort(all_ts, kind="stable")
        all_ts, all_values = all_ts[order], all_values[order]
        keep = np.ones(len(all_ts), dtype=bool)
        keep[:-1] = all_ts[1:] != all_ts[:-1]  # the last of equal timestamps (the newest) stays
        all_ts, all_values = all_ts[keep], all_values[keep]
        self._start = self._end = 0
        if len(all_ts) > len(self._ts):
            size = max(_INITIAL, 2 * len(all_ts))
            self._ts = np.empty(size, dtype=np.float64)
            self._values = np.empty(size, dtype=np.float64)
        self._append(all_ts, all_values)

    def _grow(self, n: int) -> None:
        live = self._end - self._start
        size = len(self._ts)
        if live + n > size // 2:
            size = max(2 * size, 2 * (live + n))
        ts = np.empty(size, dtype=np.float64)
        values = np.empty(size, dtype=np.float64)
        ts[:live] = self._ts[self._start : self._end]
        values[:live] = self._values[self._start : self._end]
        self._ts, self._values = ts, values
        self._start, self._end = 0, live

    def _trim(self) -> None:
        newest = self._ts[self._end - 1]
        cut = int(np.searchsorted(self._ts[self._start : self._end], newest - self.keep_s, side="left"))
        # one sample before the window stays: rate/increase and the "last value" need the edge
        self._start += max(0, cut - 1)
