"""The one aggregate kernel: every way of merging partials equals a recomputation from samples.

Table-driven: each case is samples in, a step or window, the expected ``[start, agg]`` per bucket.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from infragent.query.aggregate import AGGS, Agg, Partials, bucket, fold, merge, over, points, runs

TS = np.array([0.0, 10.0, 50.0, 60.0, 61.0, 200.0])
V = np.array([4.0, -1.0, 2.5, 8.0, 8.0, 0.5])


def _recompute(ts: list[float], values: list[float], step: float, agg: Agg) -> list[list[float]]:
    groups: dict[float, list[float]] = {}
    for t, v in zip(ts, values, strict=True):
        groups.setdefault(math.floor(t / step) * step, []).append(v)
    fn = {
        "avg": lambda g: sum(g) / len(g),
        "min": min,
        "max": max,
        "last": lambda g: g[-1],
        "count": len,
        "sum": sum,
    }[agg]
    return [[b, float(fn(g))] for b, g in sorted(groups.items())]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("step", "agg", "want"),
    [
        (60, "avg", [[0.0, 5.5 / 3], [60.0, 8.0], [180.0, 0.5]]),
        (60, "min", [[0.0, -1.0], [60.0, 8.0], [180.0, 0.5]]),
        (60, "max", [[0.0, 4.0], [60.0, 8.0], [180.0, 0.5]]),
        (60, "last", [[0.0, 2.5], [60.0, 8.0], [180.0, 0.5]]),
        (60, "count", [[0.0, 3.0], [60.0, 2.0], [180.0, 1.0]]),
        (60, "sum", [[0.0, 5.5], [60.0, 16.0], [180.0, 0.5]]),
        (1, "last", [[t, v] for t, v in zip(TS.tolist(), V.tolist(), strict=True)]),
        (3600, "count", [[0.0, 6.0]]),
        (3600, "last", [[0.0, 0.5]]),
    ],
)
def test_points_of_samples(step: float, agg: Agg, want: list[list[float]]) -> None:
    got = points(Partials.of_samples(TS, V), step, agg)
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want])


@pytest.mark.parametrize("agg", AGGS)
@pytest.mark.parametrize(("fine", "coarse"), [(1, 60), (60, 120), (60, 3600), (3600, 36_000)])
def test_rebucketing_partials_is_exact(agg: Agg, fine: float, coarse: float) -> None:
    """Buckets of buckets equal buckets of the samples: why rollups can be re-bucketed."""
    rng = np.random.default_rng(11)
    ts = np.sort(rng.uniform(0, 86_400, 5000))
    values = np.round(rng.normal(0, 10, 5000), 3)
    twice = points(bucket(Partials.of_samples(ts, values), fine), coarse, agg)
    want = _recompute(ts.tolist(), values.tolist(), coarse, agg)
    assert [t for t, _ in twice] == [t for t, _ in want]
    assert [v for _, v in twice] == pytest.approx([v for _, v in want], rel=1e-12)


def test_merge_orders_by_start_and_keeps_the_latest_last() -> None:
    """Unordered partials of two sources (chunk summaries and kept rollups) for the same hours."""
    p = Partials(
        start=np.array([3600.0, 0.0, 3600.0, 0.0]),
        n=np.array([2.0, 1.0, 3.0, 1.0]),
        min=np.array([1.0, 5.0, -2.0, 7.0]),
        max=np.array([4.0, 5.0, 9.0, 7.0]),
        sum=np.array([5.0, 5.0, 6.0, 7.0]),
        last=np.array([4.0, 5.0, 0.0, 7.0]),
    )
    last_ts = np.array([7000.0, 100.0, 6000.0, 100.0])  # the hour-0 tie goes to the later row
    got = merge(p, last_ts)
    assert got.start.tolist() == [0.0, 3600.0]
    assert got.n.tolist() == [2.0, 5.0]
    assert got.min.tolist() == [5.0, -2.0]
    assert got.max.tolist() == [7.0, 9.0]
    assert got.sum.tolist() == [12.0, 11.0]
    assert got.last.tolist() == [7.0, 4.0]


@pytest.mark.parametrize(
    ("agg", "want"),
    [("avg", 22.0 / 6), ("min", -1.0), ("max", 8.0), ("last", 0.5), ("count", 6.0), ("sum", 22.0)],
)
def test_over_a_window(agg: Agg, want: float) -> None:
    """A rule window: one value over every partial given, whatever their bucketing."""
    samples = Partials.of_samples(TS, V)
    assert over(samples, agg) == pytest.approx(want)
    assert over(bucket(samples, 60), agg) == pytest.approx(want)


def test_empty_inputs() -> None:
    empty = Partials.empty()
    assert len(empty) == 0
    assert points(empty, 60, "avg") == []
    assert len(bucket(empty, 60)) == 0
    assert len(merge(empty, np.zeros(0))) == 0
    assert over(empty, "max") is None
    assert runs(np.zeros(0)).tolist() == []


def test_fold_runs_and_an_overflowing_sum() -> None:
    p = Partials.of_samples(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1e308, 1e308, 1.0, 2.0]))
    got = fold(p, runs(np.array([0.0, 0.0, 5.0, 5.0])))
    assert got.start.tolist() == [0.0, 2.0]
    assert got.sum.tolist() == [math.inf, 3.0]  # as SQL's sum would be, and no warning raised
    assert got.last.tolist() == [1e308, 2.0]
