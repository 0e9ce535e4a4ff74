"""What the notification benchmarks share: a server with a tenant whose channels point at the vendor
stand-ins, the route tree, events that open incidents, and nearest-rank percentiles.

The receivers are the test suite's stand-ins (``tests/support/standins``: real HTTP servers on
127.0.0.1 that record each request's arrival time), so the benchmark and the tests agree on what a
received notification is. The server must be allowed to reach loopback
(``INFRAGENT_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8``, set by ``ingest.server_process``).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the stand-ins (support.standins)
sys.path.insert(0, str(Path(__file__).parent))

from ingest import infragent_server, server_process  # noqa: E402
from rule_eval_cost import database  # noqa: E402

from infragent.signing import new_secret  # noqa: E402

#: The server's notification settings in every run but the outage's (which keeps the defaults):
#: group_wait is the route's, the rest the defaults. ``public_url`` puts the incident's link (with
#: its id) in every message, so a Slack message can be matched to its incident.
SERVER_ENV = {"INFRAGENT_PUBLIC_URL": "http://infragent.bench.invalid"}

__all__ = ["Tenant", "database", "infragent_server", "pctl", "route_doc", "server_process", "summary"]


def pctl(values: list[float], p: float) -> float:
    """Nearest-rank percentile, as the anchors' ``procstat.pctl`` (and bench/alert_latency.py)."""
    xs = sorted(values)
    return xs[max(1, math.ceil(p / 100.0 * len(xs))) - 1] if xs else float("nan")


def summary(values: list[float], scale: float = 1000.0) -> str:
    """``n, p50 / p95 / max`` in ms (``scale`` 1000) or s (1)."""
    if not values:
        return "0 trials"
    unit = "ms" if scale == 1000.0 else "s"
    p50, p95, top = (pctl(values, 50) * scale, pctl(values, 95) * scale, max(values) * scale)
    return f"n={len(values)}, p50 {p50:.1f} / p95 {p95:.1f} / max {top:.1f} {unit}"


def route_doc(receivers: list[str], alertname: str = "app_down", group_wait: str = "0s") -> dict[str, Any]:
    """One route for the incidents of ``alertname``, one group per incident (``group_by:
    ["..."]``): one notification each. The root has no receiver: the default rule pack stays live
    and opens an incident for each node silent for 2 minutes (the events' nodes too), which the
    figures must not count."""
    return {
        "receivers": [],
        "group_by": ["..."],
        "group_wait": group_wait,
        "group_interval": "5m",
        "repeat_interval": "4h",
        "notify_on": ["firing", "resolved"],
        "routes": [{"id": "bench", "matchers": [f'alertname="{alertname}"'], "receivers": receivers}],
    }


@dataclass
class Tenant:
    """A registered tenant on one server (port, admin key): the API calls the benchmarks make."""

    port: int
    key: str

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"authorization": f"Bearer {self.key}"},
            timeout=30,
        )

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: Any, ok: tuple[int, ...]) -> Any:
        r = self.http.request(method, path, json=body)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def channel(
        self, name: str, kind: str, settings: Mapping[str, Any], secrets: Mapping[str, Any]
    ) -> dict[str, Any]:
        body = {"name": name, "kind": kind, "settings": dict(settings), "secrets": dict(secrets)}
        answer: dict[str, Any] = self._call("POST", "/api/v1/notify/channels", body, (200, 201))
        return answer

    def routes(self, tree: Mapping[str, Any]) -> None:
        self._call("PUT", "/api/v1/notify/routes", {"tree": dict(tree)}, (200,))

    def webhook_and_slack(
        self, hook: Any, slack: Any | None, secret: str, alertname: str = "app_down"
    ) -> list[str]:
        """A webhook channel to ``hook`` and, when given, a Slack incoming webhook to ``slack``; the
        route tree sends every incident to them. Returns the channel names."""
        names = ["bench-hook"]
        self.channel("bench-hook", "webhook", {"url": hook.hook_url}, {"secret": secret})
        if slack is not None:
            self.channel("bench-slack", "slack", {}, {"url": slack.webhook_url})
            names.append("bench-slack")
        self.routes(route_doc(names, alertname))
        return names

    def event(self, service: str, http: httpx.Client | None = None) -> tuple[str, float, float]:
        """POST an event of a new service (a new fingerprint: a new incident); (incident id, when
        the POST was sent, when its answer came)."""
        client = http or self.http
        sent = time.time()
        r = client.post(
            "/api/v1/events",
            json={
                "type": "app_down",
                "service": service,
                "severity": "critical",
                "node_id": f"bench/{service}",
            },
        )
        done = time.time()
        if r.status_code != 202 or not r.json().get("incident_id"):
            raise RuntimeError(f"POST /api/v1/events: {r.status_code} {r.text[:300]}")
        return str(r.json()["incident_id"]), sent, done

    def events(self, services: list[str], threads: int = 4) -> list[str]:
        """POST one event per service from ``threads`` connections; the incident ids."""
        local = threading.local()
        clients: list[httpx.Client] = []
        lock = threading.Lock()

        def one(service: str) -> str:
            if not hasattr(local, "http"):
                local.http = httpx.Client(
                    base_url=f"http://127.0.0.1:{self.port}",
                    headers={"authorization": f"Bearer {self.key}"},
                    timeout=30,
                )
                with lock:
                    clients.append(local.http)
            return self.event(service, local.http)[0]

        try:
            with ThreadPoolExecutor(threads) as pool:
                return list(pool.map(one, services))
        finally:
            for c in clients:
                c.close()


@contextmanager
def registered_server(url: str, env: Mapping[str, str]) -> Iterator[tuple[Any, Tenant]]:
    """``ingest.infragent_server`` with ``SERVER_ENV`` and ``env``: (process, tenant)."""
    with infragent_server(url, 0, {**SERVER_ENV, **env}) as (proc, port, key, _):
        tenant = Tenant(port, key)
        try:
            yield proc, tenant
        finally:
            tenant.close()


def signing_secret() -> str:
    return new_secret()


def incident_of(body: Any) -> dict[str, Any]:
    """The one incident a webhook notification carries (one group per incident)."""
    incidents = body.get("incidents") or []
    if len(incidents) != 1:
        raise RuntimeError(f"expected one incident in the notification, got {len(incidents)}")
    found: dict[str, Any] = incidents[0]
    return found
