"""Metric reads: ``GET /api/v1/query_range``, ``GET /api/v1/hosts`` (fleet view), ``GET /api/v1/series``.

All three need a key with the ``read`` scope and see only the caller's tenant: every store call
takes the principal's ``client_id``, so another tenant's series simply do not exist for it.

The routes are thin: parameters are checked here, the rest is ``query/`` (label selectors, the
source and step a range is read at, the aggregate kernel) and the store's ``MetricReader``. The
answer states the ``source`` and the effective ``step`` it used (``query.plan``).

Why a bad parameter answers 422 with the app's validation shape (``detail`` plus ``errors[].loc``
``["query", <param>]``): clients handle one error format, whether pydantic, this module or a
``QueryError`` (which names its parameter) refused.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from infragent.query.aggregate import Agg, points
from infragent.query.errors import QueryError, TooManySeriesError
from infragent.query.plan import Source, plan
from infragent.query.selector import parse_labels
from infragent.server.api.deps import AppServices, metric_store, services
from infragent.server.auth import Principal, require
from infragent.store.metrics import LatestSample, MetricReader
from infragent.store.metrics.hosts import CPU, FILESYSTEM, MEMORY

router = APIRouter(prefix="/api/v1", tags=["query"])

#: The longest range one query may span: the 1-hour rollups' default retention (400 days).
MAX_SPAN_S = 400 * 86_400.0
#: Series one query may return; past it the caller must narrow ``labels``.
MAX_SERIES = 100
#: The fleet view looks for samples this far back; an older host shows ``last_seen: null``.
FLEET_LOOKBACK_S = 86_400.0
#: The agent's default collection interval; a host is online when seen within 3 intervals.
DEFAULT_INTERVAL_S = 60.0
ONLINE_INTERVALS = 3


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


@router.get(
    "/query_range",
    response_model=None,
    responses={200: {"model": QueryRangeAnswer}, 422: {"description": "a parameter is invalid"}},
)
def query_range(
    who: Annotated[Principal, Depends(require("metrics.read"))],
    store: Annotated[MetricReader, Depends(metric_store)],
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
    source, eff = plan(span, step if step is not None else 1.0)
    try:
        wanted = parse_labels(labels)
        found = store.query_parts(
            who.client_id, host, metric, wanted, from_ts, to_ts, source, max_series=MAX_SERIES
        )
    except TooManySeriesError as exc:
        raise _bad(exc.param, f"{exc.message}: narrow labels") from None
    except QueryError as exc:
        raise _bad(exc.param, exc.message) from None
    out = [
        {"host": s.host, "metric": s.name, "labels": s.labels, "points": points(s.parts, eff, agg)}
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
    who: Annotated[Principal, Depends(require("metrics.read"))],
    svc: Annotated[AppServices, Depends(services)],
    store: Annotated[MetricReader, Depends(metric_store)],
    interval: Annotated[
        float, Query(gt=0, le=86_400, description="The hosts' typical collection interval, seconds.")
    ] = DEFAULT_INTERVAL_S,
) -> Response:
    """Every host of the tenant: last sample time, online when seen within 3 x ``interval``, and its
    latest CPU, memory and fullest-filesystem utilization (``null`` when not reported lately).

    One query of one short row per host, kept current at write time (``store/metrics/hosts.py``).
    """
    now = svc.clock()
    seen, latest = store.fleet_latest(who.client_id, now - FLEET_LOOKBACK_S, now + 3600)
    return _json({"interval": interval, "hosts": fleet(seen, latest, now, interval)})


@router.get("/series", response_model=SeriesAnswer)
def series(
    who: Annotated[Principal, Depends(require("metrics.read"))],
    store: Annotated[MetricReader, Depends(metric_store)],
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
