"""The metric store's ports, split by who calls them; all reads are scoped by tenant (``client_id``).

Why three and not one: ingest only writes, the query API and (next) rule evaluation only read, and
the upkeep jobs only apply retention. A caller typed against its own port can be handed an
in-memory fake or a remote-write target without dragging the rest along. ``SqlMetricStore``
implements all three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from infragent.query.plan import Source
from infragent.store.metrics.model import (
    LatestSample,
    RetentionResult,
    Rollup,
    SeriesInfo,
    SeriesParts,
    WriteResult,
)
from infragent.wire import Columns, MetricBatch


class MetricWriter(Protocol):
    """What ingest (native and OTLP, in-process and in workers) calls."""

    def write_batch(
        self, client_id: str, batch: MetricBatch, now: float, columns: Columns | None = None
    ) -> WriteResult: ...


class MetricReader(Protocol):
    """What the query API and rule evaluation call."""

    def query_range(
        self, client_id: str, host: str, name: str, labels: Mapping[str, str], from_ts: float, to_ts: float
    ) -> list[tuple[float, float]]: ...

    def query_rollups(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
        step: Literal[60, 3600],
    ) -> list[Rollup]: ...

    def query_parts(
        self,
        client_id: str,
        host: str,
        name: str,
        labels: Mapping[str, str],
        from_ts: float,
        to_ts: float,
        source: Source,
        *,
        max_series: int,
    ) -> list[SeriesParts]: ...

    def count_samples(self, client_id: str) -> int: ...

    def list_series(
        self, client_id: str, *, host: str | None = None, name: str | None = None
    ) -> list[SeriesInfo]: ...

    def latest_by_host(
        self,
        client_id: str,
        since: float,
        until: float,
        wanted: Sequence[tuple[str, Mapping[str, str]]],
    ) -> tuple[dict[str, float | None], list[LatestSample]]: ...

    def fleet_latest(
        self, client_id: str, since: float, until: float
    ) -> tuple[dict[str, float | None], list[LatestSample]]: ...


class MetricRetention(Protocol):
    """What the retention job and ``infragent metrics retention`` call."""

    def set_retention(self, client_id: str, raw_days: float | None) -> None: ...

    def apply_retention(self, now: float) -> RetentionResult: ...
