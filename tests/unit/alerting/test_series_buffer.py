"""``SeriesBuffer``: what a rule window reads must be the samples, in time order, at least
``keep_s`` back from the newest, whatever order and overlap they arrived in."""

from __future__ import annotations

import numpy as np
import pytest

from infragent.alerting.buffers import SeriesBuffer


def _arr(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float64)


def _held(buf: SeriesBuffer) -> tuple[list[float], list[float]]:
    ts, values = buf.view()
    return ts.tolist(), values.tolist()


def test_appends_in_order_and_keeps_one_sample_before_the_window() -> None:
    buf = SeriesBuffer(keep_s=30.0)
    for t in range(0, 100, 10):
        buf.extend(_arr(float(t)), _arr(float(t) / 10))
    ts, values = _held(buf)
    # newest 90: the window is (60, 90]; 60 itself and one sample before it (50) stay for rate/last
    assert ts == [50.0, 60.0, 70.0, 80.0, 90.0]
    assert values == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert buf.last_ts == 90.0


def test_grows_past_its_initial_capacity_without_losing_samples() -> None:
    buf = SeriesBuffer(keep_s=1e9)
    ts = np.arange(1000, dtype=np.float64)
    for i in range(0, 1000, 7):
        buf.extend(ts[i : i + 7], ts[i : i + 7] * 2)
    got_ts, got_values = buf.view()
    assert np.array_equal(got_ts, ts)
    assert np.array_equal(got_values, ts * 2)


def test_late_and_repeated_samples_are_merged_by_time_the_last_value_winning() -> None:
    buf = SeriesBuffer(keep_s=1000.0)
    buf.extend(_arr(10.0, 20.0, 40.0), _arr(1.0, 2.0, 4.0))
    buf.extend(_arr(30.0, 20.0), _arr(3.0, 2.5))  # a spooled batch arriving late, and a resend
    assert _held(buf) == ([10.0, 20.0, 30.0, 40.0], [1.0, 2.5, 3.0, 4.0])
    buf.extend(_arr(50.0), _arr(5.0))  # back in order: the fast path again
    assert _held(buf) == ([10.0, 20.0, 30.0, 40.0, 50.0], [1.0, 2.5, 3.0, 4.0, 5.0])


def test_an_empty_buffer_has_no_last_sample_and_an_empty_view() -> None:
    buf = SeriesBuffer(keep_s=60.0)
    buf.extend(_arr(), _arr())
    assert buf.last_ts is None
    assert len(buf) == 0
    assert _held(buf) == ([], [])


def test_the_view_cannot_be_written_through() -> None:
    buf = SeriesBuffer(keep_s=60.0)
    buf.extend(_arr(1.0, 2.0), _arr(1.0, 2.0))
    ts, _ = buf.view()
    with pytest.raises(ValueError, match="read-only"):
        ts[0] = 5.0


def test_a_zero_window_keeps_the_newest_sample() -> None:
    """Absence rules need only the last sample time; nothing older piles up."""
    buf = SeriesBuffer(keep_s=0.0)
    for t in range(50):
        buf.extend(_arr(float(t)), _arr(1.0))
    assert len(buf) <= 2
    assert buf.last_ts == 49.0


def test_one_sample_at_a_time_is_the_same_as_a_batch_of_them() -> None:
    one, batch = SeriesBuffer(keep_s=25.0), SeriesBuffer(keep_s=25.0)
    times = [float(t) for t in range(0, 300, 10)] + [125.0, 290.0]  # a late sample and a resend
    for t in times:
        one.append(t, t / 10)
    batch.extend(np.array(times[:30]), np.array(times[:30]) / 10)
    batch.extend(_arr(125.0, 290.0), _arr(12.5, 29.0))
    assert _held(one) == _held(batch)
