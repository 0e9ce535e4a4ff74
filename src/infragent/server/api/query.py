"""Metric reads: ``GET /api/v1/query_range``, ``GET /api/v1/hosts`` (fleet view), ``GET /api/v1/series``.

All three need a key with the ``read`` scope and see only the caller's tenant: every store call
takes the principal's ``client_id``, so another tenant's series simply do not exist for it.

Why the server picks the source and may raise ``step``: a graph cannot show more points than it has
pixels, and reading 10-second samples over a month would be slow for nothing. The requested step
is a *minimum*: it is raised so that no series returns more than ``MAX_POINTS`` buckets, then the
source follows from the effective step — raw samples below 60 s, 1-minute rollups from 60 s, 1-hour
rollups from 3,600 s (``SqlMetricStore.query_parts``: one connection, numpy columns, no Python
object per point). Rollups are re-bucketed exactly (count, min, max, sum and last merge without
loss), which is why a rollup step is rounded up to a whole multiple of its rollup. The answer
states the ``source`` and the effective ``step`` it used.

Why ``labels`` is a subset match: a graph usually wants "all modes of CPU" or "the used state of
every mount"; naming every label of a series (device, type, mode …) to get it would be tedious. A
series matches when it has every given ``key=value``; give all its labels to get just that one.

Why a bad parameter answers 422 with the app's validation shape (``detail`` plus ``errors[].loc``
``["query", <param>]``): clients handle one error format, whether pydantic or this module refused.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from infragent.server.api.deps import AppServices, metric_store, services
from infragent.server.auth import Principal, read_principal
from infragent.store.hosts import CPU, FILESYSTEM, MEMORY
from infragent.store.metrics import LatestSample, SeriesLimitError, SqlMetricStore

router = APIRouter(prefix="/api/v1", tags=["query"])

#: Buckets per series at most; ``step`` is raised to keep under it.
MAX_POINTS = 1000
#: The longest range one query may span: the 1-hour rollups' default retention (400 days).
MAX_SPAN_S = 400 * 86_400.0
#: Series one query may return; past it the caller must narrow ``labels``.
MAX_SERIES = 100
#: The fleet view looks for samples this far back; an older host shows ``last_seen: null``.
FLEET_LOOKBACK_S = 86_400.0
#: The agent's default collection interval; a host is online when seen within 3 intervals.
DEFAULT_INTERVAL_S = 60.0
ONLINE_INTERVALS = 3

Agg = Literal["avg", "min", "max", "last", "count", "sum"]
Source = Literal["raw", "1m", "1h"]


class SeriesPoints(BaseModel):
    host: str
    metric: str
    labels: dict[str, str]
    points: list[tuple[float, float]]


class QueryRangeAnswer(BaseModel):
    series: list[SeriesPoints]
    source: Source
    step: float


class HostStatus(BaseModel):
    host: str
    last_seen: float | None
    status: Literal["online", "offline"]
    cpu_utilization: float | None
    memory_utilization: float | None
    filesystem_utilization: float | None


class HostsAnswer(BaseModel):
    interval: float
    hosts: list[HostStatus]


class SeriesListing(BaseModel):
    host: str
    name: str
    unit: str
    kind: str
    monotonic: bool
    labels: dict[str, str]


class SeriesAnswer(BaseModel):
    series: list[SeriesListing]


def _bad(param: str, msg: str) -> RequestValidationError:
    """A 422 in the app's validation shape, naming the query parameter at fault."""
    return RequestValidationError([{"loc": ("query", param), "msg": msg, "type": "value_error"}])


def _json(body: dict[str, Any]) -> Response:
    """orjson straight to bytes: validating 1,000 points per series through pydantic costs more
    than the query; the models above document the shape in OpenAPI."""
    return Response(orjson.dumps(body), media_type="application/json")


def parse_labels(raw: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` or a JSON object of strings (for values holding ``,`` or ``=``)."""
    if raw is None or not raw.strip():
        return {}
    if raw.lstrip().startswith("{"):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _bad("labels", "not valid JSON") from None
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            raise _bad("labels", "a JSON object of string values is expected")
        return dict(obj)
    labels: dict[str, str] = {}
    for part in raw.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise _bad("labels", f"{part!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def plan(span: float, step: float) -> tuple[Source, float]:
    """(source, effective step) for a range of ``span`` seconds asked at ``step``.

    ``floor(to/step) - floor(from/step) + 1`` buckets is under ``span/step + 2``, hence the 2.
    """
    need = span / (MAX_POINTS - 2)
    eff = step if step >= need else float(math.ceil(need))
    if eff >= 3600:
        return "1h", math.ceil(eff / 3600 - 1e-9) * 3600.0
    if eff >= 60:
        return "1m", math.ceil(eff / 60 - 1e-9) * 60.0
    return "raw", eff


def downsample(
    starts: np.ndarray[Any, np.dtype[np.float64]],
    parts: tuple[np.ndarray[Any, np.dtype[np.float64]], ...],
    step: float,
    agg: Agg,
) -> list[list[float]]:
    """Time-ordered partial aggregates ``(n, min, max, sum, last)`` per ``starts`` merged into
    buckets of ``step`` seconds; each point is ``[bucket start, agg]``."""
    if len(starts) == 0:
        return []
    n, lo, hi, total, last = parts
    bucket = np.floor(starts / step) * step
    first = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    if agg == "min":
        values = np.minimum.reduceat(lo, first)
    elif agg == "max":
        values = np.maximum.reduceat(hi, first)
    elif agg == "last":
        values = last[np.concatenate((first[1:], [len(starts)])) - 1]
    elif agg == "sum":
        values = np.add.reduceat(total, first)
    elif agg == "count":
        values = np.add.reduceat(n, first)
    else:
        values = np.add.reduceat(total, first) / np.add.reduceat(n, first)
    return np.column_stack((bucket[first], values)).tolist()  # type: ignore[no-any-return]


@router.get(
    "/query_range",
    response_model=None,
    responses={200: {"model": QueryRangeAnswer}, 422: {"description": "a parameter is invalid"}},
)
def query_range(
    who: Annotated[Principal, Depends(read_principal)],
    store: Annotated[SqlMetricStore, Depends(metric_store)],
    host: Annotated[str, Query(min_length=1)],
    metric: Annotated[str, Query(min_length=1)],
    from_ts: Annotated[float, Query(alias="from", description="Unix seconds, inclusive.")],
    to_ts: Annotated[float, Query(alias="to", description="Unix seconds, inclusive.")],
    step: Annotated[
        float | None, Query(description="Minimum seconds per point; raised to stay under 1,000 points.")
    ] = None,
    labels: Annotated[
        str | None, Query(description="k=v,k2=v2 or a JSON object; a series matches if it has them all.")
    ] = None,
    agg: Agg = "avg",
) -> Response:
    """Every series of ``host``/``metric`` whose labels include ``labels``, bucketed by the effective step.

    A point is ``[bucket start, agg over the samples in it]``; empty buckets are left out. Rollup
    buckets count when they start in ``[from, to]`` (``query_rollups``).
    """
    if not (math.isfinite(from_ts) and math.isfinite(to_ts)):
        raise _bad("from" if not math.isfinite(from_ts) else "to", "must be a finite number")
    if from_ts > to_ts:
        raise _bad("from", "from must not be after to")
    span = to_ts - from_ts
    if span > MAX_SPAN_S:
        raise _bad("from", f"the range spans {span:.0f} s, over the limit of {MAX_SPAN_S:.0f} s")
    if step is not None and not (math.isfinite(step) and step > 0):
        raise _bad("step", "step must be a positive number of seconds")
    if step is not None and step > MAX_SPAN_S:
        raise _bad("step", f"step is over the limit of {MAX_SPAN_S:.0f} s")
    wanted = parse_labels(labels)
    source, eff = plan(span, step if step is not None else 1.0)
    try:
        found = store.query_parts(
            who.client_id, host, metric, wanted, from_ts, to_ts, source, max_series=MAX_SERIES
        )
    except SeriesLimitError as exc:
        raise _bad(
            "labels", f"{exc.matched} series match, over the limit of {MAX_SERIES}: narrow labels"
        ) from None
    out = [
        {
            "host": s.host,
            "metric": s.name,
            "labels": s.labels,
            "points": downsample(s.start, (s.n, s.min, s.max, s.sum, s.last), eff, agg),
        }
        for s in found
    ]
    return _json({"series": out, "source": source, "step": eff})


def fleet(
    seen: dict[str, float | None], latest: list[LatestSample], now: float, interval: float
) -> list[dict[str, Any]]:
    """The fleet rows from the store's newest samples: pure, so the rules are testable alone.

    CPU is ``1 - idle``; memory the ``used`` state; filesystem the fullest mount's ``used`` state.
    """
    cpu: dict[str, float] = {}
    memory: dict[str, float] = {}
    disk: dict[str, float] = {}
    for s in latest:
        if s.name == CPU:
            cpu[s.host] = 1.0 - s.value
        elif s.name == MEMORY:
            memory[s.host] = s.value
        elif s.name == FILESYSTEM:
            disk[s.host] = max(disk.get(s.host, s.value), s.value)
    limit = ONLINE_INTERVALS * interval
    return [
        {
            "host": host,
            "last_seen": ts,
            "status": "online" if ts is not None and now - ts <= limit else "offline",
            "cpu_utilization": cpu.get(host),
            "memory_utilization": memory.get(host),
            "filesystem_utilization": disk.get(host),
        }
        for host, ts in sorted(seen.items())
    ]


@router.get("/hosts", response_model=None, responses={200: {"model": HostsAnswer}})
def hosts(
    who: Annotated[Principal, Depends(read_principal)],
    svc: Annotated[AppServices, Depends(services)],
    store: Annotated[SqlMetricStore, Depends(metric_store)],
    interval: Annotated[
        float, Query(gt=0, le=86_400, description="The hosts' typical collection interval, seconds.")
    ] = DEFAULT_INTERVAL_S,
) -> Response:
    """Every host of the tenant: last sample time, online when seen within 3 x ``interval``, and its
    latest CPU, memory and fullest-filesystem utilization (``null`` when not reported lately).

    One query of one short row per host, kept current at write time (``store/hosts.py``).
    """
    now = svc.clock()
    seen, latest = store.fleet_latest(who.client_id, now - FLEET_LOOKBACK_S, now + 3600)
    return _json({"interval": interval, "hosts": fleet(seen, latest, now, interval)})


@router.get("/series", response_model=SeriesAnswer)
def series(
    who: Annotated[Principal, Depends(read_principal)],
    store: Annotated[SqlMetricStore, Depends(metric_store)],
    host: Annotated[str | None, Query(min_length=1)] = None,
    metric: Annotated[str | None, Query(min_length=1)] = None,
) -> SeriesAnswer:
    """The tenant's series, optionally one host's and/or one metric's, by host, name and labels."""
    found = store.list_series(who.client_id, host=host, name=metric)
    return SeriesAnswer(
        series=[
            SeriesListing(
                host=s.host, name=s.name, unit=s.unit, kind=s.kind, monotonic=s.monotonic, labels=s.labels
            )
            for s in found
        ]
    )
