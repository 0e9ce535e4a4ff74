"""The host page's chart transforms and shaping (server/charts.py): pure, no store."""

from __future__ import annotations

import pytest

from infragent.server import charts


@pytest.mark.parametrize(
    ("kind", "ts", "values", "expected"),
    [
        ("busy", [1.0, 2.0], [0.75, 0.0], [(1.0, 25.0), (2.0, 100.0)]),
        ("percent", [1.0], [0.42], [(1.0, 42.0)]),
        ("value", [1.0, 2.0], [0.5, 1.5], [(1.0, 0.5), (2.0, 1.5)]),
        # a counter's rate: per second between consecutive points, nothing for the first
        ("rate", [0.0, 10.0, 20.0], [0.0, 1000.0, 3000.0], [(10.0, 100.0), (20.0, 200.0)]),
        # the counter restarted (a reboot): no negative rate, the next interval counts again
        ("rate", [0.0, 10.0, 20.0, 30.0], [500.0, 900.0, 100.0, 600.0], [(10.0, 40.0), (30.0, 50.0)]),
        # a repeated timestamp gives no point (no division by zero)
        ("rate", [0.0, 0.0, 10.0], [0.0, 5.0, 105.0], [(10.0, 10.0)]),
        ("rate", [5.0], [1.0], []),
    ],
)
def test_transform(
    kind: charts.Transform, ts: list[float], values: list[float], expected: list[tuple[float, float]]
) -> None:
    got = charts.transform(kind, ts, values)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])


def test_combine_sums_devices_and_takes_the_fullest_mount() -> None:
    sda = [(10.0, 100.0), (20.0, 200.0)]
    sdb = [(10.0, 1.0), (30.0, 3.0)]
    assert charts.combine("sum", [sda, sdb]) == {10.0: 101.0, 20.0: 200.0, 30.0: 3.0}
    assert charts.combine("max", [[(1.0, 20.0)], [(1.0, 90.0)], [(1.0, 50.0)]]) == {1.0: 90.0}
    assert charts.combine("sum", []) == {}


def test_columns_align_lines_on_the_union_of_times() -> None:
    read = {10.0: 1.0, 20.0: 2.0}
    write = {20.0: 5.0, 30.0: 6.0}
    assert charts.columns([read, write]) == [[10.0, 20.0, 30.0], [1.0, 2.0, None], [None, 5.0, 6.0]]
    assert charts.columns([{}]) == [[], []]


def test_pivot_gives_the_stream_points_after_the_cursor_oldest_first() -> None:
    lines = {"cpu": {10.0: 25.0, 20.0: 30.0}, "disk_read": {20.0: 100.0}, "load": {5.0: 0.5}}
    assert charts.pivot(lines, after_ts=5.0) == [
        {"ts": 10.0, "values": {"cpu": 25.0}},
        {"ts": 20.0, "values": {"cpu": 30.0, "disk_read": 100.0}},
    ]


def test_every_line_key_is_unique_and_every_range_has_a_known_source() -> None:
    keys = [line.key for line in charts.LINES]
    assert len(keys) == len(set(keys))
    assert set(keys) == {"cpu", "memory", "filesystem", "disk_read", "disk_write", "net_rx", "net_tx", "load"}
    assert [c.key for c in charts.CHARTS] == ["cpu", "memory", "filesystem", "disk", "network", "load"]
    assert {src for _, src in charts.RANGES.values()} == {"raw", "1h"}
    assert charts.DEFAULT_RANGE in charts.RANGES
