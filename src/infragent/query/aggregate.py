"""The one bucket/merge kernel: partial aggregates as columns, folded into buckets or windows.

Pure: numpy only, no I/O, no clock. Every aggregate InfrAgent computes over samples goes through
``fold``: a chunk's summary at write time (``store/metrics/chunk_rows.py``), the 1-minute and
1-hour rollups read back (``store/metrics/reads.py``), the re-bucketing of ``GET /api/v1/
query_range`` (``bucket`` + ``Partials.value``) and, next, a rule's window (``over``).

Why one representation, ``(n, min, max, sum, last)`` per ``start``: those five merge without loss
(count and sum add, min and max take the extreme, last keeps the latest), so any coarser bucket, a
window, or an average is exact whatever finer partials it is built from. A raw sample is a partial
of one point (``Partials.of_samples``). Before this module, four copies of the same ``reduceat``
lived in the store, the chunk writer and the query route, each with its own idea of "last".

"last" is positional: within a run, the partial that comes last. ``bucket`` and ``fold`` expect
time order; ``merge`` sorts unordered partials by the time of their last sample first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]

Agg = Literal["avg", "min", "max", "last", "count", "sum"]
AGGS: tuple[Agg, ...] = get_args(Agg)


def _empty() -> F64:
    return np.zeros(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Partials:
    """Partial aggregates as columns, one row per ``start`` (a bucket start or a sample time).

    ``n`` is a float column so that all six are float64 arrays numpy reduces without casting.
    """

    start: F64
    n: F64
    min: F64
    max: F64
    sum: F64
    last: F64

    def __len__(self) -> int:
        return len(self.start)

    @classmethod
    def empty(cls) -> Partials:
        e = _empty()
        return cls(e, e, e, e, e, e)

    @classmethod
    def of_samples(cls, ts: F64, values: F64) -> Partials:
        """Each sample as its own partial: ``n`` 1, min = max = sum = last = the value."""
        return cls(ts, np.ones(len(ts)), values, values, values, values)

    def select(self, keep: npt.NDArray[np.bool_] | Index) -> Partials:
        """The rows ``keep`` picks (a mask or indices), in that order."""
        return Partials(
            self.start[keep], self.n[keep], self.min[keep], self.max[keep], self.sum[keep], self.last[keep]
        )

    def value(self, agg: Agg) -> F64:
        """``agg`` of each row: what a bucket shows for it."""
        if agg == "min":
            return self.min
        if agg == "max":
            return self.max
        if agg == "last":
            return self.last
        if agg == "sum":
            return self.sum
        if agg == "count":
            return self.n
        return self.sum / self.n


def runs(keys: F64) -> Index:
    """Index of the first row of each run of equal consecutive ``keys`` (``[0, …]``; empty if none)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))


def fold(p: Partials, first: Index) -> Partials:
    """Merge each run of rows ``first[i] … first[i+1] - 1`` into one: its ``start`` is the run's
    first row's, ``last`` its last row's. ``first`` ascends from 0; every run is non-empty."""
    if len(first) == 0:
        return Partials.empty()
    ends = np.concatenate((first[1:], [len(p)])) - 1
    with np.errstate(over="ignore"):  # a sum past float64 is inf, as SQL's would be
        total = np.add.reduceat(p.sum, first)
    return Partials(
        p.start[first],
        np.add.reduceat(p.n, first),
        np.minimum.reduceat(p.min, first),
        np.maximum.reduceat(p.max, first),
        total,
        p.last[ends],
    )


def bucket(p: Partials, step: float) -> Partials:
    """Time-ordered partials merged into buckets of ``step`` seconds (``floor(start / step) * step``);
    empty buckets are left out."""
    keys = np.floor(p.start / step) * step
    first = runs(keys)
    out = fold(p, first)
    return Partials(keys[first], out.n, out.min, out.max, out.sum, out.last)


def merge(p: Partials, last_ts: F64) -> Partials:
    """Partials in any order, several per ``start``, into one per ``start`` ascending; ``last`` is
    the value at the latest ``last_ts`` (on a tie, the later row)."""
    if len(p) == 0:
        return Partials.empty()
    order = np.lexsort((last_ts, p.start))  # stable: by start, then time, then input order
    ordered = p.select(order)
    return fold(ordered, runs(ordered.start))


def over(p: Partials, agg: Agg) -> float | None:
    """``agg`` over every time-ordered partial given (a window): ``None`` when there is none."""
    if len(p) == 0:
        return None
    return float(fold(p, np.zeros(1, dtype=np.intp)).value(agg)[0])


def points(p: Partials, step: float, agg: Agg) -> list[list[float]]:
    """``[bucket start, agg]`` per non-empty bucket of ``step`` seconds: a graph's points."""
    out = bucket(p, step)
    return np.column_stack((out.start, out.value(agg))).tolist()  # type: ignore[no-any-return]
