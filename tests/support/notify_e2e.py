"""Notifications end to end with real processes: a server with notify settings, channels and a route
tree made through the API, and the reads the assertions make (what the stand-ins received, the
outbox rows).

Why real ``infragent server`` processes: the promises under test are about processes dying and
receivers going away — a delivery claimed by a SIGKILLed server is sent once by the next one, a
receiver down for minutes loses nothing and gets nothing twice. Only separate processes die the way
production ones do. ``support.detect`` starts them (``Deployment``, ``DetectServer``: a fast rule
tick, a short evaluation lease) and feeds samples (``Feeder``); this module adds notifications.

The receivers are the vendor stand-ins (``support.standins``): real HTTP servers on 127.0.0.1, so
the server's outbound-URL policy must allow loopback (``INFRAGENT_WEBHOOK_ALLOWED_NETWORKS``).

How a notification is counted: by its ``webhook-id`` (the delivery id, the idempotency key, the
same on every retry) among the *verified* posts of the webhook receiver. "Delivered once" is one
verified post with that id; "lost" is a delivery the outbox has that no post carried.

No sleeps as synchronisation: every wait polls with a deadline (``wait_for``); ``stays`` watches a
condition hold for a span, the way "no other copy arrives for 10 s" is checked.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from infragent.store.notify_schema import notify_changes, notify_deliveries, notify_groups
from infragent.store.sql import SqlStore
from support.detect import Api, Deployment, DetectServer, Feeder
from support.standins import Check, WebhookReceiver

#: ``group_by`` every label: one aggregation group, so one notification, per incident.
ONE_PER_INCIDENT = ("...",)
#: What the tests' routes notify on: the status changes the rules make. ``escalated`` and
#: ``acknowledged`` are left out: the responder may escalate an event incident on its own, and
#: its notification would be one more post the counts would have to allow for.
NOTIFY_ON = ("firing", "resolved")


def notify_env(**settings: Any) -> dict[str, str]:
    """The server's environment for notifications: loopback receivers allowed, a fast tick and
    backoff, and ``settings`` (``lease_s=3`` → ``INFRAGENT_NOTIFY_LEASE_S=3``) on top."""
    values: dict[str, Any] = {
        "enabled": "true",
        "tick_s": 0.2,
        "backoff_base_s": 0.5,
        "backoff_cap_s": 5,
        "timeout_s": 5,
        **settings,
    }
    env = {f"INFRAGENT_NOTIFY_{name.upper()}": str(value) for name, value in values.items()}
    env["INFRAGENT_WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    return env


def notify_server(d: Deployment, *, failpoints: str = "", **settings: Any) -> DetectServer:
    """A server of ``d`` (not started) with ``notify_env(**settings)``; ``failpoints`` sets the
    test-only ``INFRAGENT_FAILPOINTS`` (``notify/failpoints.py``)."""
    env = notify_env(**settings)
    if failpoints:
        env["INFRAGENT_FAILPOINTS"] = failpoints
    return d.server(**env)


def route_tree(
    receivers: Iterable[str],
    *,
    only: Mapping[str, str] | None = None,
    group_wait: str = "0s",
    group_interval: str = "30s",
    repeat_interval: str = "4h",
    group_by: Iterable[str] = ONE_PER_INCIDENT,
    notify_on: Iterable[str] = NOTIFY_ON,
) -> dict[str, Any]:
    """A route tree sending to ``receivers`` (channel names) what matches ``only`` (label values),
    through one child route ``e2e`` (the root, with no receiver, takes the rest: nothing is sent for
    it). Why a filter: the server's default rules are live, and one of them opens an incident of its
    own for every node silent for 2 minutes, nodes that events name included; a test counting its
    notifications must not count those."""
    tree: dict[str, Any] = {
        "receivers": [] if only else list(receivers),
        "group_by": list(group_by),
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
        "notify_on": list(notify_on),
    }
    if only:
        matchers = [f'{name}="{value}"' for name, value in only.items()]
        tree["routes"] = [{"id": "e2e", "matchers": matchers, "receivers": list(receivers)}]
    return tree


class NotifyApi(Api):
    """The tenant's notification API through one server, with an admin key (the registration's)."""

    def _send(self, method: str, path: str, body: Any, expect: tuple[int, ...]) -> Any:
        r = httpx.request(method, f"{self.base}{path}", headers=self.headers, json=body, timeout=10)
        assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def create_channel(
        self,
        name: str,
        kind: str,
        *,
        settings: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {"name": name, "kind": kind, "settings": dict(settings or {}), "secrets": dict(secrets or {})}
        answer: dict[str, Any] = self._send("POST", "/api/v1/notify/channels", body, (200, 201))
        return answer

    def put_routes(self, tree: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the route tree (no version: the tests are its only writer)."""
        answer: dict[str, Any] = self._send("PUT", "/api/v1/notify/routes", {"tree": dict(tree)}, (200,))
        return answer

    def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        """Every delivery of the tenant (newest first), following the cursor."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self._get(
                "/api/v1/notify/deliveries", limit=200, **params, **({"cursor": cursor} if cursor else {})
            )
            found += page["deliveries"]
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def report_event(self, type_: str, service: str, severity: str = "critical") -> dict[str, Any]:
        """``POST /api/v1/events``: opens an incident of its own per (type, service, node)."""
        body = {"type": type_, "service": service, "severity": severity, "node_id": f"e2e-host/{service}"}
        answer: dict[str, Any] = self._send("POST", "/api/v1/events", body, (202,))
        return answer

    def all_incidents(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._get("/api/v1/incidents", limit=200)["incidents"]
        return found


class FlappingFeeder(Feeder):
    """A ``Feeder`` whose level follows a schedule from the moment it starts: ``episodes`` times
    ``high`` for ``half_period_s`` then ``low`` for as long, then ``low`` for good. The feeder's
    thread reads the level at each send, so the test only waits for ``done`` (with a deadline)."""

    def __init__(
        self, api_key: str, urls: list[str], *, episodes: int, half_period_s: float, high: float = 1.0
    ) -> None:
        super().__init__(api_key, urls)
        self.episodes = episodes
        self.half_period_s = half_period_s
        self.high = high
        self.started_at: float | None = None

    @property
    def level(self) -> float:
        if self.started_at is None:
            return 0.0
        turn = int((time.monotonic() - self.started_at) // self.half_period_s)
        return self.high if turn < 2 * self.episodes and turn % 2 == 0 else 0.0

    @level.setter
    def level(self, value: float) -> None:  # the base class sets a fixed level; the schedule rules
        pass

    @property
    def done(self) -> bool:
        elapsed = 0.0 if self.started_at is None else time.monotonic() - self.started_at
        return elapsed >= 2 * self.episodes * self.half_period_s

    def __enter__(self) -> FlappingFeeder:
        self.started_at = time.monotonic()
        super().__enter__()
        return self


# -- what the receivers got ------------------------------------------------------------------------


def webhook_ids(hook: WebhookReceiver) -> Counter[str]:
    """``webhook-id`` → posts carrying it, among the verified posts ``hook`` received (a repeated
    id is counted each time it arrives: that is what a duplicate is)."""
    return Counter(check.webhook_id for check in hook.checks if check.verified and check.webhook_id)


def unverified(hook: WebhookReceiver) -> list[Check]:
    """Posts whose signature did not verify (a test asserts there are none)."""
    return [check for check in hook.checks if not check.verified]


def stays(
    probe: Callable[[], bool],
    for_s: float,
    what: str,
    detail: Callable[[], object] = lambda: "",
    interval_s: float = 0.1,
) -> None:
    """Assert ``probe`` holds for ``for_s`` (polled): how the absence of a late copy is checked.
    ``detail`` is called for the failure's message (what was received, say)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        if not probe():
            held = for_s - (deadline - time.monotonic())
            raise AssertionError(f"{what} stopped holding after {held:.1f} s: {detail()}")
        time.sleep(interval_s)
    assert probe(), f"{what}: {detail()}"


def posts(hook: WebhookReceiver) -> list[tuple[str | None, bool, float, str | None]]:
    """What ``hook`` received, for failure messages: (webhook-id, verified, arrival, kind)."""
    return [
        (c.webhook_id, c.verified, c.received.at, (c.received.json or {}).get("kind")) for c in hook.checks
    ]


# -- the outbox, read from the database ----------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    channel_id: str
    kind: str
    status: str
    attempts: int
    lease_owner: str | None
    delivered_at: float | None
    incident_id: str | None
    created_at: float


def delivery_rows(store: SqlStore, client_id: str) -> list[DeliveryRow]:
    """Every ``notify_deliveries`` row of the tenant, oldest first: what the outbox produced."""
    c = notify_deliveries.c
    query = (
        sa.select(
            c.id,
            c.channel_id,
            c.kind,
            c.status,
            c.attempts,
            c.lease_owner,
            c.delivered_at,
            c.incident_id,
            c.created_at,
        )
        .where(c.client_id == client_id)
        .order_by(c.created_at, c.id)
    )
    with store.engine.connect() as conn:
        return [DeliveryRow(*row) for row in conn.execute(query)]


def settled(store: SqlStore, client_id: str) -> bool:
    """Whether the tenant's outbox has nothing left to do: every change routed, no group flush due
    and no delivery waiting to be sent or recorded."""
    groups, changes, deliveries = notify_groups.c, notify_changes.c, notify_deliveries.c
    with store.engine.connect() as conn:
        unrouted = conn.execute(
            sa.select(sa.func.count())
            .select_from(notify_changes)
            .where(changes.client_id == client_id, changes.processed_at.is_(None))
        ).scalar_one()
        due = conn.execute(
            sa.select(sa.func.count())
            .select_from(notify_groups)
            .where(groups.client_id == client_id, groups.next_flush_at.is_not(None))
        ).scalar_one()
        unsent = conn.execute(
            sa.select(sa.func.count())
            .select_from(notify_deliveries)
            .where(deliveries.client_id == client_id, deliveries.status.in_(("pending", "sending")))
        ).scalar_one()
    return unrouted == due == unsent == 0
