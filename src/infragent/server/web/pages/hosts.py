"""``/hosts``: the fleet (search, status filter, pages of 50) and ``/hosts/{host}``: one host's live
charts, checks, incidents and remote control.

Why the list is searched, filtered and paged by the database (``store/dashboard.py``): at a
thousand hosts the page sends 50 rows, whatever the fleet's size; typing in the search box asks
for the table alone (htmx, ``HX-Target: hosts-results``), and the table re-asks itself on every
``host`` event of the stream, so a new agent appears without a reload.

The host page renders its charts' first data as JSON in ``<script type="application/json"
id="chart-data">`` (data, not code: the CSP allows it), read by ``static/js/charts.js``, which then
appends the points of the stream's ``metrics`` events (``body data-live-host``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from infragent.server import charts
from infragent.server.api.deps import AppServices, metric_store, services
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import command_reads, dashboard
from infragent.store.metrics import SqlMetricStore

router = APIRouter()


def script_json(value: Any) -> Markup:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` escaped as ``\\u003c`` etc.,
    so no string in it (a host name, a label) can close the element."""
    text = orjson.dumps(value).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))  # noqa: S704


@router.get("/hosts", response_class=HTMLResponse)
def host_list(
    request: Request,
    who: Annotated[Principal, Depends(page("hosts.read"))],
    svc: Annotated[AppServices, Depends(services)],
    q: Annotated[str, Query(max_length=255)] = "",
    status: str = "",
    page_no: Annotated[str, Query(alias="page", max_length=12)] = "1",
) -> HTMLResponse:
    """A filter the page does not know (a hand-edited URL) shows every host, not an error page."""
    now = svc.clock()
    q = q.strip()
    status = status if status in ("online", "offline") else ""
    number = int(page_no) if page_no.isdigit() else 1
    with svc.store.read() as conn:
        found = dashboard.host_page(conn, who.client_id, now, q=q, status=status or None, page=number)
    partial = request.headers.get("HX-Target") == "hosts-results"
    template = "hosts/_results.html" if partial else "hosts/list.html"
    return render(
        request,
        template,
        who,
        found=found,
        q=q,
        status=status,
        now=now,
        fmt=formats,
        window=dashboard.ONLINE_WINDOW_S,
    )


@router.get("/hosts/{host}", response_class=HTMLResponse)
def host_detail(
    request: Request,
    host: str,
    who: Annotated[Principal, Depends(page("hosts.read"))],
    svc: Annotated[AppServices, Depends(services)],
    reader: Annotated[SqlMetricStore, Depends(metric_store)],
    range_key: Annotated[str, Query(alias="range", max_length=8)] = charts.DEFAULT_RANGE,
    part: Literal["status", ""] = "",
) -> HTMLResponse:
    """An unknown ``range`` shows the default one (1 h)."""
    now = svc.clock()
    range_key = range_key if range_key in charts.RANGES else charts.DEFAULT_RANGE
    with svc.store.read() as conn:
        summary = dashboard.get_host(conn, who.client_id, host, now)
        if summary is None:
            return render(request, "hosts/missing.html", who, status_code=404, host=host)
        checks = dashboard.host_checks(conn, who.client_id, host)
        incidents = dashboard.host_incidents(conn, who.client_id, host)
        agents = command_reads.host_agents(conn, who.client_id, host) if not part else []
    ctx: dict[str, Any] = {
        "host": host,
        "summary": summary,
        "checks": checks,
        "incidents": incidents,
        "now": now,
        "fmt": formats,
    }
    if part:
        return render(request, "hosts/_status.html", who, **ctx)
    data = charts.chart_data(reader, who.client_id, host, range_key, now)
    points = {key: len(c["data"][0]) for key, c in data["charts"].items()}
    return render(
        request,
        "hosts/detail.html",
        who,
        **ctx,
        agents=agents,
        range_key=range_key,
        ranges=list(charts.RANGES),
        charts=charts.CHARTS,
        points=points,
        chart_json=script_json(data),
    )
