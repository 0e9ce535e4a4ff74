"""The OTLP mapping rules, once for both encodings: a ``Sink`` the protobuf and JSON walkers feed.

Why one sink: each walker reads its own shape into plain values (attributes as ``dict[str, str]``,
nanosecond ints, floats) and the sink applies every rule (validation, naming, labels, grouping by
host) exactly once, so the two encodings cannot drift apart. Rules are documented in docs/otlp.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from infragent.server.ingest.otlp.model import (
    CUMULATIVE,
    DELTA,
    MAX_FUTURE_S,
    RESOURCE_LABELS,
    TEMPORALITY_LABEL,
    Decoded,
    HostGroup,
    Kind,
    Shape,
    format_float,
)
from infragent.wire import MAX_NAME, MAX_NODE_ID, MAX_UNIT, SeriesData

_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_isfinite = math.isfinite
_NO_VALUE = "data point has no value (neither asDouble nor asInt)"
#: Length of the longest suffix each shape adds to the name ("_bucket", "_count").
_SUFFIX = {"gauge": 0, "sum": 0, "histogram": 7, "exponential_histogram": 6, "summary": 6}


@dataclass(slots=True)
class _Series:
    name: str
    unit: str
    kind: Kind
    monotonic: bool
    labels: dict[str, str]
    timestamps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    node_id: str
    resource: dict[str, str]
    series: dict[tuple[Any, ...], _Series] = field(default_factory=dict)
    types: dict[str, tuple[str, Kind, bool]] = field(default_factory=dict)  # series name -> its type


@dataclass(frozen=True, slots=True)
class Resource:
    """One ``ResourceMetrics``: its host's group and the labels it adds; ``error`` rejects its points."""

    group: _Group | None
    labels: dict[str, str]
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Metric:
    """A metric whose points may be stored, in ``group``; ``labels`` go on all its series."""

    name: str
    group: _Group
    labels: dict[str, str]  # the resource's, and the temporality of a delta


def _series_types(shape: Shape, name: str, unit: str, monotonic: bool) -> dict[str, tuple[str, Kind, bool]]:
    if shape == "gauge":
        return {name: (unit, "gauge", False)}
    if shape == "sum":
        return {name: (unit, "sum", monotonic)}
    types: dict[str, tuple[str, Kind, bool]] = {
        f"{name}_count": ("1", "sum", monotonic),
        f"{name}_sum": (unit, "sum", monotonic),
    }
    if shape == "histogram":
        types[f"{name}_bucket"] = ("1", "sum", monotonic)
    elif shape == "summary":
        types[name] = (unit, "gauge", False)
    return types


class Sink:
    """Collects one request's accepted samples per host and counts the data points it rejects."""

    def __init__(self, now: float) -> None:
        self.max_ns = int((now + MAX_FUTURE_S) * 1e9)
        self.groups: dict[str, _Group] = {}
        self.accepted = 0
        self.rejected = 0
        self.reasons: dict[str, int] = {}

    def reject(self, metric: str, why: str, n: int = 1) -> None:
        key = f"{metric or '(unnamed)'}: {why}"
        self.reasons[key] = self.reasons.get(key, 0) + n
        self.rejected += n

    def resource(self, attrs: dict[str, str]) -> Resource:
        """``host.name`` names the host; else ``service.name[/service.instance.id]``; else ``unknown``."""
        node = attrs.get("host.name", "")
        if not node and (service := attrs.get("service.name")):
            instance = attrs.get("service.instance.id")
            node = f"{service}/{instance}" if instance else service
        node = node or "unknown"
        labels = {k: attrs[k] for k in RESOURCE_LABELS if attrs.get(k)}
        if len(node) > MAX_NODE_ID:
            return Resource(None, labels, f"host name longer than {MAX_NODE_ID} characters")
        group = self.groups.get(node)
        if group is None:
            group = self.groups[node] = _Group(node, attrs)
        return Resource(group, labels)

    def metric(
        self,
        res: Resource,
        name: str,
        unit: str,
        shape: Shape,
        points: int,
        temporality: int,
        monotonic: bool,
    ) -> _Metric | None:
        """Check what applies to all of a metric's points; ``None`` when they are all rejected.

        ``monotonic`` (``isMonotonic``) matters only for a sum. What is stored as monotonic is what
        counter-reset logic may run on: cumulative monotonic sums, histogram and summary counts and
        sums (OTLP sums of observations are non-negative). A delta is a run of increments, so never.
        """
        if not points:
            return None
        cumulative = shape in ("gauge", "summary") or temporality == CUMULATIVE
        group = res.group
        why = ""
        if group is None:
            why = res.error
        elif not name:
            why = "metric name is empty"
        elif len(name) + _SUFFIX[shape] > MAX_NAME:
            why = f"metric name longer than {MAX_NAME - _SUFFIX[shape]} characters"
        elif len(unit) > MAX_UNIT:
            why = f"unit longer than {MAX_UNIT} characters"
        elif not cumulative and temporality != DELTA:
            why = "aggregationTemporality is unspecified"
        else:
            stored_monotonic = shape != "gauge" and cumulative and (monotonic or shape != "sum")
            types = _series_types(shape, name, unit, stored_monotonic)
            if any(group.types.get(n, t) != t for n, t in types.items()):
                why = "same name as an earlier metric of another type or unit"
            else:
                group.types.update(types)
                labels = res.labels if cumulative else {**res.labels, TEMPORALITY_LABEL: "delta"}
                return _Metric(name, group, labels)
        self.reject(name, why, points)
        return None

    def _when(self, m: _Metric, t_ns: int, flags: int) -> float | None:
        """Seconds since the epoch, or ``None`` with the point counted as rejected."""
        if flags & _NO_RECORDED_VALUE:
            self.reject(m.name, "data point has no recorded value")
        elif t_ns <= 0:
            self.reject(m.name, "timestamp is missing or before 1970")
        elif t_ns > self.max_ns:
            self.reject(m.name, f"timestamp is more than {MAX_FUTURE_S:g} s in the future")
        else:
            return t_ns / 1e9
        return None

    @staticmethod
    def _labels(m: _Metric, attrs: dict[str, str]) -> dict[str, str]:
        if m.labels:
            attrs.update(m.labels)  # the resource identifies the producer: it wins over a point attribute
        return attrs

    def _add(
        self,
        group: _Group,
        key: tuple[Any, ...],
        name: str,
        labels: dict[str, str],
        ts: float,
        value: float,
        extra: tuple[str, str] | None = None,
    ) -> None:
        """Append one sample; ``extra`` (``le``, ``quantile``) is merged only when the series is new."""
        s = group.series.get(key)
        if s is None:
            unit, kind, monotonic = group.types[name]
            series_labels = {**labels, extra[0]: extra[1]} if extra else labels
            s = group.series[key] = _Series(name, unit, kind, monotonic, series_labels)
        s.timestamps.append(ts)
        s.values.append(value)

    def number(self, m: _Metric, attrs: dict[str, str], t_ns: int, value: float | None, flags: int) -> None:
        """The hot path (most points are numbers): one test for a good point, ``_add`` inlined."""
        if not (
            0 < t_ns <= self.max_ns
            and value is not None
            and _isfinite(value)
            and not flags & _NO_RECORDED_VALUE
        ):
            if self._when(m, t_ns, flags) is not None:
                why = "value is NaN or infinite" if value is not None else _NO_VALUE
                self.reject(m.name, why)
            return
        if m.labels:
            attrs.update(m.labels)
        key = (m.name, *sorted(attrs.items()))
        s = m.group.series.get(key)
        if s is None:
            unit, kind, monotonic = m.group.types[m.name]
            s = m.group.series[key] = _Series(m.name, unit, kind, monotonic, attrs)
        s.timestamps.append(t_ns / 1e9)
        s.values.append(value)
        self.accepted += 1

    def histogram(
        self,
        m: _Metric,
        attrs: dict[str, str],
        t_ns: int,
        flags: int,
        count: int,
        total: float | None,
        buckets: Sequence[int] = (),
        bounds: Sequence[float] = (),
    ) -> None:
        """Explicit (``buckets`` set) or exponential (``buckets`` empty: count and sum only)."""
        ts = self._when(m, t_ns, flags)
        if ts is None:
            return
        why = ""
        if count < 0 or (buckets and min(buckets) < 0):
            why = "count is negative"
        elif total is not None and not math.isfinite(total):
            why = "sum is NaN or infinite"
        elif buckets and len(buckets) != len(bounds) + 1:
            why = f"{len(buckets)} bucketCounts for {len(bounds)} explicitBounds; need one more count"
        elif buckets and not (
            all(map(math.isfinite, bounds)) and all(a < b for a, b in itertools.pairwise(bounds))
        ):
            why = "explicitBounds are not finite and strictly increasing"
        if why:
            self.reject(m.name, why)
            return
        labels = self._labels(m, attrs)
        group = m.group
        items = tuple(sorted(labels.items()))
        name = f"{m.name}_count"
        self._add(group, (name, *items), name, labels, ts, float(count))
        if total is not None:
            name = f"{m.name}_sum"
            self._add(group, (name, *items), name, labels, ts, total)
        if buckets:
            name = f"{m.name}_bucket"
            running = 0
            for bound, n in zip((*bounds, math.inf), buckets, strict=True):
                running += n
                le = format_float(bound)
                self._add(group, (name, le, *items), name, labels, ts, float(running), ("le", le))
        self.accepted += 1

    def summary(
        self,
        m: _Metric,
        attrs: dict[str, str],
        t_ns: int,
        flags: int,
        count: int,
        total: float,
        quantiles: Iterable[tuple[float, float]],
    ) -> None:
        """Count, sum and one gauge per quantile; a NaN quantile (no observations yet) is skipped."""
        ts = self._when(m, t_ns, flags)
        if ts is None:
            return
        if count < 0 or not math.isfinite(total):
            self.reject(m.name, "count is negative or sum is NaN or infinite")
            return
        labels = self._labels(m, attrs)
        group = m.group
        items = tuple(sorted(labels.items()))
        for name, value in ((f"{m.name}_count", float(count)), (f"{m.name}_sum", total)):
            self._add(group, (name, *items), name, labels, ts, value)
        for q, value in quantiles:
            if math.isfinite(value):
                qs = format_float(q)
                self._add(group, (m.name, qs, *items), m.name, labels, ts, value, ("quantile", qs))
        self.accepted += 1

    def result(self) -> Decoded:
        groups = [
            HostGroup(
                g.node_id,
                g.resource,
                [
                    SeriesData(s.name, s.unit, s.kind, s.monotonic, s.labels, s.timestamps, s.values)
                    for s in g.series.values()
                ],
            )
            for g in self.groups.values()
            if g.series
        ]
        return Decoded(groups, self.accepted, self.rejected, self.reasons)
