"""Values the metric store takes and returns, and its limits; no I/O.

``SeriesParts`` carries a series' partial aggregates in the query kernel's one representation
(``query.aggregate.Partials``), so callers fold them without converting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import orjson

from infragent.query.aggregate import Partials

#: A bound on the id cache: a tenant with more live series than this pays a SELECT per new batch.
MAX_CACHED_SERIES = 200_000
DEFAULT_RAW_DAYS = 30.0
DEFAULT_ROLLUP_DAYS = 400.0
DAY = 86_400.0

SeriesKey = tuple[str, str, str, str]  # (client_id, host, name, labels_key)


def labels_key(labels: Mapping[str, str]) -> str:
    """SHA-256 of the labels as sorted, compact JSON: a fixed-width column the unique index can hold."""
    return hashlib.sha256(orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class WriteResult:
    """``accepted_points`` is what this call stored: 0 when ``duplicate`` (an earlier call stored it)."""

    accepted_points: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    host: str
    name: str
    unit: str
    kind: Literal["gauge", "sum"]
    monotonic: bool
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rollup:
    """Aggregate of one series over ``[start, start + step)``; ``last`` is the value at the latest time."""

    start: float
    count: int
    min: float
    max: float
    sum: float
    last: float

    @property
    def avg(self) -> float:
        return self.sum / self.count


@dataclass(frozen=True, slots=True)
class LatestSample:
    """The newest sample of one series: the last point of its newest chunk."""

    host: str
    name: str
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class RetentionResult:
    dropped_partitions: int
    deleted_chunks: int


@dataclass(frozen=True, slots=True)
class SeriesParts:
    """One series' points as partial aggregates, ascending by start: raw samples (each its own
    partial, ``Partials.of_samples``) or 1-minute / 1-hour buckets."""

    host: str
    name: str
    labels: dict[str, str]
    parts: Partials
