"""The numeric kernels a rule applies to one series: a function over a window, a fold across the
series of a group, a least-squares forecast and a robust z-score.

Pure numpy, no clock: ``start`` and ``end`` come from ``evaluate``. avg/min/max/last/sum/count are
the one-run case of ``query.aggregate.fold`` (the same reductions, without building partials: the
evaluator calls this per series per evaluation), so a rule's "avg over 5m" is exactly the number a
graph of the same window shows; rate and increase are counter functions and need their own pass
over the deltas.

Window bounds are ``start < ts <= end``, as in a PromQL range selector: a sample exactly ``window``
old has left the window. NaN samples are no data (dropped), never a value that poisons a mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from infragent.rules.model import Combine, WindowFn

F64 = npt.NDArray[np.float64]

#: Fewer baseline samples than this and a median/MAD says nothing: ``robust_z`` answers None.
MIN_BASELINE_POINTS = 5
#: 0.6745 is the 0.75 quantile of the standard normal: it makes MAD-based z comparable to the
#: classic z for normal data (Iglewicz and Hoaglin's modified z-score).
MAD_SCALE = 0.6745
#: The MAD floor relative to the median: a flat baseline (MAD 0) would otherwise turn any wiggle
#: into an infinite z. 0.1 % of the level, and never below ``MAD_ABS_FLOOR``.
MAD_REL_FLOOR = 1e-3
MAD_ABS_FLOOR = 1e-9
_FIRST = np.zeros(1, dtype=np.intp)


def _as_f64(a: F64 | Sequence[float]) -> F64:
    return np.asarray(a, dtype=np.float64)


def cut(ts: F64, values: F64, start: float, end: float) -> tuple[F64, F64]:
    """The samples with ``start < ts <= end`` (``ts`` ascending), NaN values left out."""
    ts = _as_f64(ts)
    values = _as_f64(values)
    lo = int(ts.searchsorted(start, side="right"))  # the method: no numpy dispatch per call
    hi = int(ts.searchsorted(end, side="right"))
    t, v = ts[lo:hi], values[lo:hi]
    nan = np.isnan(v)
    if nan.any():
        keep = ~nan
        t, v = t[keep], v[keep]
    return t, v


def counter_increase(values: F64) -> float:
    """The increase of a counter over consecutive samples; a drop means the counter restarted from
    0 (as Prometheus reads it), so the new value itself is the increase since the restart."""
    deltas = np.diff(values)
    return float(np.where(deltas < 0, values[1:], deltas).sum())


def window_value(fn: WindowFn, ts: F64, values: F64, start: float, end: float) -> float | None:
    """``fn`` over the samples in ``(start, end]``; None with no sample (rate/increase: fewer than two).

    ``increase`` is the raw increase between the first and last sample in the window, resets
    handled; unlike Prometheus it is not extrapolated to the window's edges, so ``increase`` over
    a window holding samples 10 s apart that cover 50 s of a 60 s window counts those 50 s only.
    ``rate`` is that increase divided by the time between the first and last sample.
    """
    t, v = cut(ts, values, start, end)
    if fn in ("rate", "increase"):
        if len(t) < 2:
            return None
        inc = counter_increase(v)
        if fn == "increase":
            return inc
        spread = float(t[-1] - t[0])
        return inc / spread if spread > 0 else None
    # ``fold`` over one run, its reductions one by one (same results, a sixth of the time)
    if len(v) == 0:
        return None
    if fn == "last":
        return float(v[-1])
    if fn == "count":
        return float(len(v))
    if fn == "min":
        return float(np.minimum.reduce(v))
    if fn == "max":
        return float(np.maximum.reduce(v))
    with np.errstate(over="ignore"):  # a sum past float64 is inf, as ``fold``'s would be
        total = float(np.add.reduceat(v, _FIRST)[0])
    return total if fn == "sum" else total / len(v)


def combine(how: Combine, values: Sequence[float]) -> float | None:
    """The group's one value from its series' values; None when no series had a value."""
    if not values:
        return None
    arr = _as_f64(values)
    if how == "sum":
        return float(arr.sum())
    if how == "avg":
        return float(arr.mean())
    if how == "min":
        return float(arr.min())
    return float(arr.max())


def fit_line(ts: F64, values: F64) -> tuple[float, float, float] | None:
    """Least-squares ``(slope, level at t0, t0)`` with ``t0`` the mean time (centring keeps the fit
    exact with epoch-sized timestamps); None with fewer than two points or no spread in time."""
    t = _as_f64(ts)
    v = _as_f64(values)
    keep = ~np.isnan(v)
    t, v = t[keep], v[keep]
    if len(t) < 2:
        return None
    t0 = float(t.mean())
    dt = t - t0
    denom = float((dt * dt).sum())
    if denom <= 0.0:
        return None
    slope = float((dt * (v - v.mean())).sum()) / denom
    return slope, float(v.mean()), t0


def linear_forecast(ts: F64, values: F64, at: float) -> float | None:
    """The least-squares line through the samples, read at ``at`` (Prometheus ``predict_linear``
    without its extrapolation from the window's end: the line is the same, only its anchor differs)."""
    fit = fit_line(ts, values)
    if fit is None:
        return None
    slope, level, t0 = fit
    return level + slope * (at - t0)


def linear_eta(ts: F64, values: F64, target: float) -> float | None:
    """The time the least-squares line reaches ``target``; None when it is flat (or cannot be fit).
    May lie in the past: the caller decides whether "already there" or "never" matters."""
    fit = fit_line(ts, values)
    if fit is None:
        return None
    slope, level, t0 = fit
    if slope == 0.0:
        return None
    return t0 + (target - level) / slope


def robust_z(x: float, baseline: F64 | Sequence[float]) -> float | None:
    """Modified z-score ``0.6745 * (x - median) / MAD`` of ``x`` against ``baseline``.

    The MAD is floored at ``max(MAD, 1e-3 * |median|, 1e-9)``: a perfectly flat baseline has MAD 0
    and without a floor a change of one part per million would score infinity. With the floor, a
    flat baseline at 100 gives z ≈ 6.7 for a value of 101. None with fewer than
    ``MIN_BASELINE_POINTS`` non-NaN baseline samples.
    """
    b = _as_f64(baseline)
    b = b[~np.isnan(b)]
    if len(b) < MIN_BASELINE_POINTS or np.isnan(x):
        return None
    med = float(np.median(b))
    mad = float(np.median(np.abs(b - med)))
    scale = max(mad, MAD_REL_FLOOR * abs(med), MAD_ABS_FLOOR)
    return MAD_SCALE * (x - med) / scale
