"""The hosts list and the host page against the real app and both databases: search, status filter
and pages over 1,200 hosts, another tenant's host a 404, the charts' first data, checks, incidents,
the live values the stream sends, and what a viewer is not shown."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from infragent.config import Settings
from infragent.server import charts
from support.dashboard_data import add_hosts, host_metrics, incident, one, rows
from support.web import Site

NOW = float(int(time.time()))


@pytest.fixture
def settings() -> Settings:
    """No background work on the store (rule ticks, notifications, upkeep): the cost test counts
    the statements a page request runs, and these would be counted with them."""
    return Settings(
        rules_enabled=False,
        notify_enabled=False,
        metrics_compact_interval_s=0,
        metrics_retention_interval_s=0,
    )


@pytest.fixture
def clock() -> Callable[[], float]:
    """The app's time stands still at ``NOW``: the seed's "10 s ago" is the page's too."""
    return lambda: NOW


def test_search_filter_and_pages_over_1200_hosts(site: Site, acme: str, other: str) -> None:
    # even hosts reported 10 s ago (online), odd ones 10 minutes ago (offline)
    add_hosts(site.store, acme, [(f"host-{i:04d}", NOW - (10 if i % 2 == 0 else 600)) for i in range(1200)])
    add_hosts(site.store, other, [("host-9999", NOW)])
    site.sign_in(acme, "viewer")

    first = site.http.get("/hosts")
    assert first.status_code == 200
    listed = rows(first.text, "host-row")
    assert [r["data-host"] for r in listed] == [f"host-{i:04d}" for i in range(50)]
    assert [s["_text"] for s in rows(first.text, "host-status")][:4] == [
        "online",
        "offline",
        "online",
        "offline",
    ]
    assert one(first.text, "hosts-total")["_text"] == "1200"
    assert rows(first.text, "prev-page") == []
    assert one(first.text, "next-page")["href"].endswith("page=2")

    last = site.http.get("/hosts", params={"page": 24})
    assert [r["data-host"] for r in rows(last.text, "host-row")] == [
        f"host-{i:04d}" for i in range(1150, 1200)
    ]
    assert rows(last.text, "next-page") == [] and one(last.text, "prev-page")["href"].endswith("page=23")
    past = site.http.get("/hosts", params={"page": 999})  # clamped to the last page
    assert rows(past.text, "host-row") == rows(last.text, "host-row")

    found = site.http.get("/hosts", params={"q": "HOST-011"})  # case-insensitive substring
    assert [r["data-host"] for r in rows(found.text, "host-row")] == [
        f"host-{i:04d}" for i in range(110, 120)
    ]
    assert (
        site.http.get("/hosts", params={"q": "9999"}).text.count('data-test="host-row"') == 0
    )  # other tenant
    assert "No host matches" in site.http.get("/hosts", params={"q": "%_"}).text  # LIKE wildcards are literal

    online = site.http.get("/hosts", params={"status": "online", "page": 2})
    assert one(online.text, "hosts-total")["_text"] == "600"
    assert [r["data-host"] for r in rows(online.text, "host-row")] == [
        f"host-{i:04d}" for i in range(100, 200, 2)
    ]
    offline = site.http.get("/hosts", params={"status": "offline", "q": "-000"})
    assert {s["_text"] for s in rows(offline.text, "host-status")} == {"offline"}
    assert len(rows(offline.text, "host-row")) == 5  # 0001 0003 0005 0007 0009

    # htmx search-as-you-type asks for the table alone
    partial = site.http.get(
        "/hosts", params={"q": "host-1"}, headers={"HX-Request": "true", "HX-Target": "hosts-results"}
    )
    assert "<html" not in partial.text and partial.text.lstrip().startswith('<div id="hosts-results"')
    assert len(rows(partial.text, "host-row")) == 50
    # a hand-made bad filter shows everything rather than failing
    assert (
        one(site.http.get("/hosts", params={"status": "sideways", "page": "x"}).text, "hosts-total")["_text"]
        == "1200"
    )


def _statements_per_get(site: Site, path: str, params: dict[str, object]) -> int:
    """How many SQL statements one page request runs (on the store's engine)."""
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    sa.event.listen(site.store.engine, "before_cursor_execute", count)
    try:
        assert site.http.get(path, params=params).status_code == 200
    finally:
        sa.event.remove(site.store.engine, "before_cursor_execute", count)
    return len(seen)


def test_hosts_list_cost_does_not_grow_with_hosts_or_pages(site: Site, acme: str) -> None:
    """A page of the hosts list runs the same few statements at 100 hosts as at 1,000, on the first
    page as on the last: no query per host and no scan that pages through what it skips. (How fast
    it is under load is ``bench/web.py``'s to measure, not a test's.)"""
    add_hosts(site.store, acme, [(f"node-{i:04d}", NOW - (i % 200)) for i in range(100)])
    site.sign_in(acme, "viewer")
    small_first = _statements_per_get(site, "/hosts", {"page": 1})
    add_hosts(site.store, acme, [(f"node-{i:04d}", NOW - (i % 200)) for i in range(100, 1000)])
    large_first = _statements_per_get(site, "/hosts", {"page": 1})
    large_last = _statements_per_get(site, "/hosts", {"page": 20})
    assert small_first == large_first == large_last, (small_first, large_first, large_last)
    assert large_first <= 12
    last = site.http.get("/hosts", params={"page": 20})
    listed = [r["data-host"] for r in rows(last.text, "host-row")]
    assert listed == [f"node-{i:04d}" for i in range(950, 1000)]


def test_host_page_charts_checks_incidents_and_live_values(site: Site, acme: str) -> None:
    ts = [NOW - 300 + 10 * i for i in range(30)]
    host_metrics(site.svc.metric_store, acme, "web-1", ts)
    incident(site.store, acme, NOW - 50, node="web-1", service="nginx")
    site.sign_in(acme, "viewer")

    page = site.http.get("/hosts/web-1")
    assert page.status_code == 200
    assert 'data-live-host="web-1"' in page.text
    data = json.loads(
        re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page.text, re.S)[1]
    )
    assert data["range"] == "1h" and data["source"] == "raw"
    cpu = data["charts"]["cpu"]["data"]
    assert cpu[0] == ts and cpu[1] == pytest.approx([25.0] * 30)  # busy = 1 - idle, in %
    assert data["charts"]["filesystem"]["data"][1] == pytest.approx([90.0] * 30)  # the fullest mount
    disk = data["charts"]["disk"]["data"]
    assert disk[0] == ts[1:] and disk[1] == pytest.approx([1000.0] * 29)  # B/s from the counter
    for chart in charts.CHARTS:
        container = one(page.text, f"chart-{chart.key}")
        assert int(container["data-points"]) == len(data["charts"][chart.key]["data"][0]) > 0
    for r in charts.RANGES:
        assert one(page.text, f"range-{r}")["href"] == f"/hosts/web-1?range={r}"

    day = site.http.get("/hosts/web-1", params={"range": "24h"})
    day_data = json.loads(re.search(r'id="chart-data">(.*?)</script>', day.text, re.S)[1])
    assert (
        day_data["source"] == "1h" and 1 <= len(day_data["charts"]["cpu"]["data"][0]) <= 2
    )  # hourly buckets

    checks = one(page.text, "host-checks")
    assert "nginx" in checks["_text"] and "down" in checks["_text"]
    assert "app_down" in one(page.text, "host-incidents")["_text"]
    # the viewer sees no remote control
    assert rows(page.text, "action-form") == [] and rows(page.text, "action-run") == []

    live = charts.live_values(site.svc.metric_store, acme, "web-1", ts[-3])
    assert [p["ts"] for p in live] == ts[-2:]
    assert set(live[-1]["values"]) == {line.key for line in charts.LINES}
    assert live[-1]["values"]["net_rx"] == pytest.approx(1000.0)  # the lookback gives the first rate


def test_recovered_check_shows_up(site: Site, acme: str) -> None:
    host_metrics(site.svc.metric_store, acme, "db-1", [NOW - 20, NOW - 10])
    incident(site.store, acme, NOW - 40, node="db-1", service="postgres")
    incident(site.store, acme, NOW - 5, node="db-1", service="postgres", type="app_recovered")
    site.sign_in(acme, "viewer")
    fragment = site.http.get("/hosts/db-1", params={"part": "status"})
    assert "<html" not in fragment.text
    assert "up" in one(fragment.text, "host-checks")["_text"].split()


def test_another_tenants_host_is_a_404_and_the_operator_gets_remote_control(
    site: Site, acme: str, other: str
) -> None:
    host_metrics(site.svc.metric_store, other, "secret-host", [NOW - 10])
    host_metrics(site.svc.metric_store, acme, "web-1", [NOW - 10])
    site.sign_in(acme, "operator")
    assert site.http.get("/hosts/secret-host").status_code == 404
    assert site.http.get("/hosts/secret-host", params={"part": "status"}).status_code == 404
    assert site.http.get("/hosts/never-seen").status_code == 404
    page = site.http.get("/hosts/web-1")
    assert page.status_code == 200
    assert rows(page.text, "remote-control")  # the operator's remote-control section
    assert rows(page.text, "no-actions")  # no agent on web-1 allows an action: no form to fill


def test_signed_out_is_sent_to_sign_in(site: Site) -> None:
    r = site.http.get("/hosts?q=a", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/hosts")
