"""The host page's charts: what each plots (``CHARTS``), from which series, through which transform,
read at which resolution (``RANGES``); the initial data (``chart_data``) and the live points the
stream sends (``live_values``).

Why the server shapes the data and the browser only plots: the same lines feed the page's first
render and the stream's ``metrics`` events (the value keys are the same, ``Line.key``), and the
transforms (CPU busy = 1 - idle, a counter's rate, the fullest mount, a sum over devices) are pure
functions tested alone, not JavaScript.

Resolution: 1 h and 6 h read the raw samples (an agent's 10 s interval gives 360 / 2,160 points);
24 h and 7 d read the 1-hour rollups (chunk summaries, cheap at any age: 24 / 168 points), so the
page never decodes a week of raw chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from infragent.query.plan import Source
from infragent.store.metrics import MetricReader
from infragent.store.metrics.hosts import CPU, FILESYSTEM, MEMORY

Transform = Literal["busy", "percent", "rate", "value"]
Combine = Literal["sum", "max"]
Points = list[tuple[float, float]]

#: Series of one (metric, labels) a chart may read (a host with more mounts or devices is cut).
MAX_SERIES: Final = 64
#: ``live_values`` reads this far before ``after_ts``, so a counter's first new point has a rate.
RATE_LOOKBACK_S: Final = 300.0
#: ``live_values`` reads at most this far after ``after_ts``.
LIVE_SPAN_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class Line:
    """One plotted line: the series of ``metric`` whose labels include ``labels``, each turned into
    points by ``transform``, then merged by time with ``combine`` (several mounts, devices, ...)."""

    key: str
    label: str
    metric: str
    labels: Mapping[str, str]
    transform: Transform
    combine: Combine = "sum"
    #: series with one of these label values are left out (the loopback interface)
    exclude: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    unit: Literal["%", "B/s", ""]
    lines: tuple[Line, ...]


_NO_LO: Final = {"network.interface.name": frozenset({"lo"})}
CHARTS: Final[tuple[Chart, ...]] = (
    Chart("cpu", "CPU", "%", (Line("cpu", "busy", CPU, {"cpu.mode": "idle"}, "busy"),)),
    Chart(
        "memory", "Memory", "%", (Line("memory", "used", MEMORY, {"system.memory.state": "used"}, "percent"),)
    ),
    Chart(
        "filesystem",
        "Filesystem (fullest mount)",
        "%",
        (Line("filesystem", "used", FILESYSTEM, {"system.filesystem.state": "used"}, "percent", "max"),),
    ),
    Chart(
        "disk",
        "Disk I/O",
        "B/s",
        (
            Line("disk_read", "read", "system.disk.io", {"disk.io.direction": "read"}, "rate"),
            Line("disk_write", "write", "system.disk.io", {"disk.io.direction": "write"}, "rate"),
        ),
    ),
    Chart(
        "network",
        "Network",
        "B/s",
        (
            Line(
                "net_rx",
                "received",
                "system.network.io",
                {"network.io.direction": "receive"},
                "rate",
                exclude=_NO_LO,
            ),
            Line(
                "net_tx",
                "sent",
                "system.network.io",
                {"network.io.direction": "transmit"},
                "rate",
                exclude=_NO_LO,
            ),
        ),
    ),
    Chart("load", "Load (1 min)", "", (Line("load", "load", "system.cpu.load_average.1m", {}, "value"),)),
)
LINES: Final[tuple[Line, ...]] = tuple(line for chart in CHARTS for line in chart.lines)

#: range -> (span in seconds, the source read)
RANGES: Final[dict[str, tuple[float, Source]]] = {
    "1h": (3_600.0, "raw"),
    "6h": (21_600.0, "raw"),
    "24h": (86_400.0, "1h"),
    "7d": (604_800.0, "1h"),
}
DEFAULT_RANGE: Final = "1h"


# -- pure transforms ------------------------------------------------------------------------------


def transform(kind: Transform, ts: Sequence[float], values: Sequence[float]) -> Points:
    """One series' points as plotted. ``rate``: per-second increase between consecutive points of a
    counter; a decrease (the counter restarted) or a non-increasing time gives no point."""
    if kind == "busy":
        return [(t, 100.0 * (1.0 - v)) for t, v in zip(ts, values, strict=True)]
    if kind == "percent":
        return [(t, 100.0 * v) for t, v in zip(ts, values, strict=True)]
    if kind == "value":
        return list(zip(ts, values, strict=True))
    out: Points = []
    for i in range(1, len(ts)):
        dt, dv = ts[i] - ts[i - 1], values[i] - values[i - 1]
        if dt > 0 and dv >= 0:
            out.append((ts[i], dv / dt))
    return out


def combine(how: Combine, series: Iterable[Points]) -> dict[float, float]:
    """Several series' points merged by time: summed (devices) or the largest (mounts)."""
    out: dict[float, float] = {}
    for points in series:
        for t, v in points:
            if t not in out:
                out[t] = v
            elif how == "sum":
                out[t] += v
            else:
                out[t] = max(out[t], v)
    return out


def columns(lines: Sequence[dict[float, float]]) -> list[list[float | None]]:
    """uPlot's data: the union of times ascending, then one column per line (None where missing).
    Rounded to the millisecond and to 3 decimals: a 6 h page's JSON is half as long, and no one
    reads a chart to the microsecond."""
    times = sorted({t for line in lines for t in line})
    values = ([_round(line.get(t)) for t in times] for line in lines)
    return [[round(t, 3) for t in times], *values]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def pivot(lines: Mapping[str, dict[float, float]], after_ts: float) -> list[dict[str, Any]]:
    """``{key: {ts: v}}`` as the stream's points: ``[{"ts", "values": {key: v}}]`` after ``after_ts``."""
    by_ts: dict[float, dict[str, float]] = {}
    for key, points in lines.items():
        for t, v in points.items():
            if t > after_ts:
                by_ts.setdefault(t, {})[key] = v
    return [{"ts": t, "values": by_ts[t]} for t in sorted(by_ts)]


# -- reads ----------------------------------------------------------------------------------------


def read_lines(
    reader: MetricReader,
    client_id: str,
    host: str,
    from_ts: float,
    to_ts: float,
    source: Source,
    lines: Sequence[Line] = LINES,
) -> dict[str, dict[float, float]]:
    """Each line's points over ``[from_ts, to_ts]``: a gauge plots each bucket's average, a counter
    the rate between buckets' last values."""
    out: dict[str, dict[float, float]] = {}
    for line in lines:
        found = reader.query_parts(
            client_id, host, line.metric, line.labels, from_ts, to_ts, source, max_series=MAX_SERIES
        )
        per_series = []
        for s in found:
            if any(s.labels.get(k) in bad for k, bad in line.exclude.items()):
                continue
            p = s.parts
            ys = p.last if line.transform == "rate" else p.sum / p.n
            per_series.append(transform(line.transform, p.start.tolist(), ys.tolist()))
        out[line.key] = combine(line.combine, per_series)
    return out


def chart_data(reader: MetricReader, client_id: str, host: str, range_key: str, now: float) -> dict[str, Any]:
    """The host page's ``chart-data`` JSON for ``range_key`` (one of ``RANGES``)."""
    span, source = RANGES[range_key]
    lines = read_lines(reader, client_id, host, now - span, now + 60.0, source)
    charts = {
        c.key: {
            "title": c.title,
            "unit": c.unit,
            "lines": [{"key": line.key, "label": line.label} for line in c.lines],
            "data": columns([lines[line.key] for line in c.lines]),
        }
        for c in CHARTS
    }
    return {"range": range_key, "span": span, "source": source, "now": now, "charts": charts}


def live_values(
    metric_store: MetricReader, client_id: str, host: str, after_ts: float
) -> list[dict[str, Any]]:
    """The host's chart values newer than ``after_ts``, oldest first: ``[{"ts", "values": {key: v}}]``
    with the keys of ``LINES`` (what the stream's ``metrics`` event carries). Raw samples; a counter's
    rate uses the points up to ``RATE_LOOKBACK_S`` before ``after_ts``."""
    lines = read_lines(
        metric_store, client_id, host, after_ts - RATE_LOOKBACK_S, after_ts + LIVE_SPAN_S, "raw"
    )
    return pivot(lines, after_ts)
