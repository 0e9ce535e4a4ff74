"""The value every collector produces, and the port every collector implements.

Why a tiny frozen dataclass rather than a wire struct: collectors are the pure-ish core of the
agent; the shipper decides how points travel (native batch, OTLP, remote write). Attributes are a
sorted tuple of pairs so that a point is hashable and two points of the same series compare equal
whatever order a collector built its attributes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

MetricKind = Literal["gauge", "sum"]

#: UCUM-style units as the OpenTelemetry semantic conventions spell them.
UNIT_BYTES = "By"
UNIT_RATIO = "1"
UNIT_SECONDS = "s"

Attributes = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One observation of one series.

    ``kind="sum"`` with ``monotonic=True`` is a cumulative counter (bytes read since boot); the
    server derives rates from it. ``kind="sum"`` with ``monotonic=False`` is an up-down count
    (logical CPUs). Gauges are instantaneous values and are never monotonic.
    """

    name: str
    value: float
    attributes: Attributes = ()
    unit: str = UNIT_RATIO
    kind: MetricKind = "gauge"
    monotonic: bool = False

    def __post_init__(self) -> None:
        if self.monotonic and self.kind != "sum":
            raise ValueError(f"{self.name}: only a sum can be monotonic")
        if list(self.attributes) != sorted(self.attributes):
            raise ValueError(f"{self.name}: attributes must be sorted; build them with attrs()")

    @property
    def attribute_map(self) -> dict[str, str]:
        return dict(self.attributes)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``infragent agent run --once``; plain types only."""
        return {
            "name": self.name,
            "unit": self.unit,
            "kind": self.kind,
            "monotonic": self.monotonic,
            "attributes": self.attribute_map,
            "value": self.value,
        }


def attrs(mapping: Mapping[str, str] | None = None) -> Attributes:
    """Sorted attribute pairs, the only form ``MetricPoint`` accepts."""
    return tuple(sorted((mapping or {}).items()))


def gauge(name: str, value: float, unit: str, attributes: Mapping[str, str] | None = None) -> MetricPoint:
    return MetricPoint(name, float(value), attrs(attributes), unit, "gauge", False)


def counter(name: str, value: float, unit: str, attributes: Mapping[str, str] | None = None) -> MetricPoint:
    """A cumulative, monotonic sum (a counter since boot)."""
    return MetricPoint(name, float(value), attrs(attributes), unit, "sum", True)


def updown(name: str, value: float, unit: str, attributes: Mapping[str, str] | None = None) -> MetricPoint:
    """A non-monotonic sum: a count that may go up or down (CPUs online)."""
    return MetricPoint(name, float(value), attrs(attributes), unit, "sum", False)


class Collector(Protocol):
    """One metric family. ``now`` is wall-clock seconds, passed in so results are reproducible."""

    def collect(self, now: float) -> list[MetricPoint]: ...
