"""OTLP metrics: the values and constants every part of the decoder shares.

Why a module of its own: the protobuf and JSON walkers, the sink that applies the mapping rules and
the response encoder all speak in these terms (``Decoded``, ``HostGroup``, ``OtlpError``, the media
types); keeping them here lets each of those modules import only this one, with no cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import orjson

from infragent.wire import MetricBatch, SeriesData, WireError

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = (PROTOBUF, JSON)
#: The limit the OTLP specification recommends for a request body after decompression.
MAX_DECOMPRESSED_BYTES = 20 * 1024 * 1024
#: A point stamped further ahead than this is a broken clock, not a measurement.
MAX_FUTURE_S = 3600.0
#: Label put on delta sums and histograms: their values are increments, not running totals.
TEMPORALITY_LABEL = "otlp.temporality"
#: Resource attributes copied onto every series as labels (``host.name`` becomes the host instead).
RESOURCE_LABELS = ("service.name", "service.namespace")
MAX_REASONS = 10

DELTA, CUMULATIVE = 1, 2  # AggregationTemporality

Shape = Literal["gauge", "sum", "histogram", "exponential_histogram", "summary"]
Kind = Literal["gauge", "sum"]


class OtlpError(WireError):
    """The body is not a well-formed ``ExportMetricsServiceRequest``: permanent, HTTP 400."""


@dataclass(frozen=True, slots=True)
class HostGroup:
    """Every series one request holds for one host; stored as one ``MetricBatch``."""

    node_id: str
    resource: dict[str, str]
    series: list[SeriesData]

    def batch(self, batch_id: str) -> MetricBatch:
        return MetricBatch(batch_id, self.node_id, self.resource, self.series)


@dataclass(frozen=True, slots=True)
class Decoded:
    """``accepted_points``/``rejected_points`` count OTLP data points (a histogram point is one)."""

    groups: list[HostGroup]
    accepted_points: int
    rejected_points: int
    reasons: dict[str, int]  # "<metric>: <why>" -> data points rejected for it, in first-seen order

    @property
    def error_message(self) -> str:
        """The ``partialSuccess.errorMessage``: each reason once with its count, the first few only."""
        if not self.rejected_points:
            return ""
        items = list(self.reasons.items())
        text = "; ".join(f"{reason} ({n})" for reason, n in items[:MAX_REASONS])
        more = f"; and {len(items) - MAX_REASONS} more reasons" if len(items) > MAX_REASONS else ""
        return f"rejected {self.rejected_points} data point(s): {text}{more}"


@lru_cache(maxsize=4096)
def format_float(x: float) -> str:
    """A bound or quantile as a label value the way Prometheus writes it: ``10``, ``0.25``, ``+Inf``."""
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if math.isnan(x):
        return "NaN"
    text = repr(x)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def label_value(v: Any) -> str:
    """An attribute value as a label: strings as they are, scalars as text, arrays and maps as JSON."""
    if type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is float:
        return format_float(v)
    if v is None:
        return ""
    if type(v) is int:
        return str(v)
    return orjson.dumps(v).decode()
