"""The evaluator calls ``rules.windows.window_value`` per series per evaluation, so it takes a fast
path; it must give exactly what ``query.aggregate.over`` (what a graph of the window shows) gives."""

from __future__ import annotations

import numpy as np
import pytest

from infragent.query.aggregate import Partials, over
from infragent.rules.windows import cut, window_value


@pytest.mark.parametrize("fn", ["avg", "min", "max", "last", "sum", "count"])
@pytest.mark.parametrize("seed", range(5))
def test_the_fast_path_equals_the_graph_kernel_bit_for_bit(fn: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.uniform(0.5, 20.0, 200))
    values = rng.normal(0.0, 10.0 ** rng.integers(-3, 300), 200)
    for start, end in [(ts[10], ts[150]), (ts[0] - 1, ts[-1]), (ts[50], ts[50]), (ts[-1], ts[-1] + 5)]:
        t, v = cut(ts, values, float(start), float(end))
        expected = over(Partials.of_samples(t, v), fn)  # type: ignore[arg-type]
        assert window_value(fn, ts, values, float(start), float(end)) == expected  # type: ignore[arg-type]


def test_no_sample_in_the_window_is_no_value() -> None:
    ts = np.array([1.0, 2.0])
    assert window_value("avg", ts, np.array([1.0, 2.0]), 5.0, 10.0) is None
