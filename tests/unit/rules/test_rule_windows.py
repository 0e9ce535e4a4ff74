"""The window kernels: functions over ``(start, end]``, counters with resets, the group fold, the
least-squares forecast and the robust z-score, each against a hand-computed value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infragent.rules.model import WINDOW_FNS, WindowFn
from infragent.rules.windows import (
    combine,
    counter_increase,
    linear_eta,
    linear_forecast,
    robust_z,
    window_value,
)

TS = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
V = np.array([4.0, 1.0, 3.0, np.nan, 2.0])


@pytest.mark.parametrize(
    ("fn", "start", "end", "expected"),
    [
        ("avg", 0.0, 40.0, 2.0),  # (1 + 3 + 2) / 3: 0 s is outside (start, end], NaN is no data
        ("avg", -1.0, 40.0, 2.5),
        ("min", -1.0, 20.0, 1.0),
        ("max", 0.0, 40.0, 3.0),
        ("last", -1.0, 30.0, 3.0),  # NaN at 30 s is skipped
        ("sum", -1.0, 40.0, 10.0),
        ("count", -1.0, 40.0, 4.0),
        ("count", 40.0, 100.0, None),
        ("avg", 40.0, 100.0, None),
        ("increase", 5.0, 40.0, 2.0 + 2.0),  # 1 → 3 (+2), 3 → 2 is a reset: +2
        ("rate", 5.0, 40.0, 4.0 / 30.0),
        ("rate", 15.0, 20.0, None),  # one sample is not a rate
        ("increase", 35.0, 40.0, None),
    ],
)
def test_window_value(fn: WindowFn, start: float, end: float, expected: float | None) -> None:
    got = window_value(fn, TS, V, start, end)
    if expected is None:
        assert got is None
    else:
        assert got is not None and math.isclose(got, expected)


def test_every_function_is_handled() -> None:
    for fn in WINDOW_FNS:
        assert window_value(fn, TS, V, -1.0, 40.0) is not None


def test_counter_increase_reads_a_drop_as_a_restart_from_zero() -> None:
    assert counter_increase(np.array([100.0, 150.0, 20.0, 50.0])) == 50.0 + 20.0 + 30.0
    assert counter_increase(np.array([5.0, 5.0])) == 0.0


@pytest.mark.parametrize(
    ("how", "values", "expected"),
    [
        ("sum", [1.0, 2.0, 4.0], 7.0),
        ("avg", [1.0, 2.0], 1.5),
        ("min", [3.0, -1.0], -1.0),
        ("max", [3.0, -1.0], 3.0),
    ],
)
def test_combine(how: str, values: list[float], expected: float) -> None:
    assert combine(how, values) == expected  # type: ignore[arg-type]


def test_combine_of_nothing_is_no_value() -> None:
    assert combine("sum", []) is None


def test_linear_forecast_reads_the_least_squares_line() -> None:
    ts = np.array([1_700_000_000.0, 1_700_000_060.0, 1_700_000_120.0])  # epoch-sized times stay exact
    vs = np.array([0.5, 0.6, 0.7])
    got = linear_forecast(ts, vs, 1_700_000_120.0 + 600.0)
    assert got is not None and math.isclose(got, 1.7)
    eta = linear_eta(ts, vs, 1.0)
    assert eta is not None and math.isclose(eta, 1_700_000_120.0 + 180.0)
    noisy = linear_forecast(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 2.0, 0.0, 2.0]), 4.0)
    assert noisy is not None and math.isclose(noisy, 0.4 + 0.4 * 4.0)  # slope 0.4, intercept 0.4


@pytest.mark.parametrize(
    ("ts", "vs"),
    [([5.0], [1.0]), ([5.0, 5.0], [1.0, 2.0]), ([], [])],
)
def test_linear_forecast_needs_two_points_spread_in_time(ts: list[float], vs: list[float]) -> None:
    assert linear_forecast(np.array(ts), np.array(vs), 10.0) is None
    assert linear_eta(np.array(ts), np.array(vs), 10.0) is None


def test_a_flat_line_never_reaches_another_value() -> None:
    assert linear_eta(np.array([0.0, 1.0]), np.array([2.0, 2.0]), 3.0) is None


def test_robust_z() -> None:
    baseline = [10.0, 11.0, 9.0, 10.0, 12.0, 8.0, 10.0]  # median 10, MAD 1
    z = robust_z(14.0, baseline)
    assert z is not None and math.isclose(z, 0.6745 * 4.0)
    low = robust_z(6.0, baseline)
    assert low is not None and math.isclose(low, -0.6745 * 4.0)


def test_robust_z_floors_a_flat_baseline() -> None:
    flat = [100.0] * 10
    z = robust_z(101.0, flat)
    assert z is not None and math.isclose(z, 0.6745 * 1.0 / 0.1)  # MAD floored at 0.1 % of 100
    zero = robust_z(1e-9, [0.0] * 10)
    assert zero is not None and math.isclose(zero, 0.6745)  # absolute floor 1e-9
    assert robust_z(100.0, flat) == 0.0


def test_robust_z_needs_enough_baseline() -> None:
    assert robust_z(1.0, [1.0, 2.0, 3.0, 4.0]) is None
    assert robust_z(1.0, [1.0, 2.0, 3.0, 4.0, np.nan]) is None
    assert robust_z(math.nan, [1.0] * 10) is None
