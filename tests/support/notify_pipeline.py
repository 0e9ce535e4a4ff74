"""The notification pipeline under test: a ``Notifier`` over a real store with the real channel
adapters (``notify.channels.build_channel``) and renderer, driven by a test clock, and the store
calls the pipeline tests make (channels, route trees, silences, incidents), one transaction each.

Why a test clock and ``drive`` instead of the notifier's thread: group timers are minutes long;
``drive(now)`` runs rounds at ``now`` until nothing is left to do and waits for the sends in
flight, so a test steps through group_wait, group_interval and repeat_interval exactly. The tests
that need the thread (wake-ups, two processes) start it and poll with a deadline.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from infragent.config import Settings
from infragent.incidents.model import IncidentPolicy, IncidentStatus
from infragent.model import Severity
from infragent.notify.model import ChannelConfig, ChannelKind, Matcher
from infragent.notify.service import Notifier, build_notifier
from infragent.store import events, incidents, notify_config
from infragent.store.base import Database
from infragent.store.notify_schema import notify_attempts, notify_deliveries
from infragent.store.schema import audit_log

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
POLICY = IncidentPolicy(reopen_window_s=3600, flap_threshold=1000)


class Clock:
    """A clock the test moves: ``clock()`` is now, ``clock.now = …`` sets it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pipeline_settings(**overrides: Any) -> Settings:
    """Loopback receivers allowed, no group wait, short intervals and backoff (tests override)."""
    values: dict[str, Any] = {
        "webhook_allowed_networks": ("127.0.0.0/8",),
        "notify_group_wait_s": 0.0,
        "notify_group_interval_s": 60.0,
        "notify_repeat_interval_s": 3600.0,
        "notify_backoff_base_s": 1.0,
        "notify_backoff_cap_s": 5.0,
        "notify_retry_for_s": 60.0,
        "notify_timeout_s": 5.0,
        "notify_lease_s": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


def make_notifier(store: Database, settings: Settings, clock: Clock, **kw: Any) -> Notifier:
    """A notifier with the real adapters and renderer (``kw``: ``worker_id``, ``registry``…);
    ``close()`` (or ``stop()``) releases it."""
    return build_notifier(settings, store, clock=clock, rng=random.Random(7), **kw)


@contextmanager
def notifier(store: Database, settings: Settings, clock: Clock, **kw: Any) -> Iterator[Notifier]:
    n = make_notifier(store, settings, clock, **kw)
    try:
        yield n
    finally:
        n.stop()


def drive(n: Notifier, now: float, *, max_rounds: int = 50) -> None:
    """Rounds at ``now`` until none finds more work, waiting for every send to be recorded."""
    n.clock.now = now  # type: ignore[attr-defined]
    for _ in range(max_rounds):
        more = n.run_once(now)
        assert n.worker.wait_idle(30), "sends still in flight after 30 s"
        if not more and n.worker.capacity() > 0 and not _due(n, now):
            return
    raise AssertionError(f"still busy after {max_rounds} rounds")


def _due(n: Notifier, now: float) -> bool:
    with n.store.read() as conn:
        d = notify_deliveries.c
        q = sa.select(sa.func.count()).where(d.status.in_(("pending", "sending")), d.next_attempt_at <= now)
        return bool(conn.execute(q).scalar_one())


# -- what the tests set up -------------------------------------------------------------------------


def webhook_channel(store: Database, client_id: str, name: str, url: str, **kw: Any) -> ChannelConfig:
    return channel(store, client_id, name, "webhook", {"url": url}, {"secret": SECRET}, **kw)


def channel(
    store: Database,
    client_id: str,
    name: str,
    kind: ChannelKind,
    settings: dict[str, Any],
    secrets: dict[str, Any],
    *,
    enabled: bool = True,
) -> ChannelConfig:
    with store.write() as conn:
        return notify_config.create_channel(
            conn,
            client_id,
            name=name,
            kind=kind,
            settings=settings,
            secrets=secrets,
            enabled=enabled,
            actor="test",
            now=0.0,
        )


def set_routes(store: Database, client_id: str, tree: dict[str, Any]) -> None:
    with store.write() as conn:
        notify_config.put_routing(conn, client_id, tree, expected_version=None, actor="test", now=0.0)


def silence(
    store: Database, client_id: str, matchers: dict[str, str], starts_at: float, ends_at: float
) -> str:
    with store.write() as conn:
        made = notify_config.create_silence(
            conn,
            client_id,
            matchers=tuple(Matcher(k, "=", v) for k, v in matchers.items()),
            starts_at=starts_at,
            ends_at=ends_at,
            created_by="test",
            comment="maintenance",
            now=starts_at,
        )
    return made.id


def open_incident(
    store: Database, client_id: str, now: float, *, node: str = "web-1", type_: str = "app_down"
) -> str:
    """An event that opens (or reopens) the incident of (type, service ``web``, node)."""
    with store.write() as conn:
        event = events.insert_event(
            conn,
            client_id,
            type=type_,
            service="web",
            severity=Severity.CRITICAL,
            data={},
            node_id=node,
            now=now,
            incidents=POLICY,
        )
    assert event.incident_id is not None
    return event.incident_id


def move(
    store: Database, client_id: str, incident_id: str, to: IncidentStatus, now: float, actor: str = "ops"
) -> None:
    with store.write() as conn:
        incidents.set_status(conn, client_id, incident_id, to, actor, now)


# -- what the tests look at ------------------------------------------------------------------------


def delivery_rows(store: Database, client_id: str) -> list[sa.Row[Any]]:
    with store.read() as conn:
        d = notify_deliveries
        return list(
            conn.execute(sa.select(d).where(d.c.client_id == client_id).order_by(d.c.created_at, d.c.cause))
        )


def attempt_rows(store: Database, delivery_id: str) -> list[sa.Row[Any]]:
    with store.read() as conn:
        a = notify_attempts
        return list(conn.execute(sa.select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.n)))


def audit_kinds(store: Database, client_id: str, kind: str) -> list[sa.Row[Any]]:
    with store.read() as conn:
        a = audit_log
        return list(
            conn.execute(sa.select(a).where(a.c.client_id == client_id, a.c.kind == kind).order_by(a.c.id))
        )


def new_id() -> str:
    return str(uuid.uuid4())
