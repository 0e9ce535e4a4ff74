"""Sample notification values and loopback channel dependencies for tests of the channel adapters.

``loopback_deps()`` is a ``ChannelDeps`` whose guarded client may reach 127.0.0.0/8 (the stand-ins);
use it as a context manager so its client is closed. ``incident()`` and ``message()`` build values
with every field filled, so an adapter's whole layout is exercised; override what a test checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from infragent.notify.channels.base import ChannelDeps
from infragent.notify.model import ChannelConfig, ChannelKind, IncidentSummary, Message, NotificationKind
from infragent.outbound.policy import OutboundPolicy
from infragent.outbound.transport import guarded_client, system_resolver

LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])
#: 2025-06-15 16:26:40 UTC: a fixed "now" for bodies and signatures
NOW = 1_750_004_800.0


@contextmanager
def loopback_deps(
    *, policy: OutboundPolicy = LOOPBACK, timeout_s: float = 5.0, clock: Callable[[], float] = time.time
) -> Iterator[ChannelDeps]:
    """Channel dependencies allowed to reach loopback (or ``policy``); the client is closed after."""
    deps = ChannelDeps(
        http=guarded_client(policy, timeout_s=timeout_s, resolve=system_resolver),
        policy=policy,
        resolve=system_resolver,
        timeout_s=timeout_s,
        clock=clock,
    )
    try:
        yield deps
    finally:
        deps.close()


def incident(number: int = 1, **overrides: Any) -> IncidentSummary:
    """A firing critical incident on ``web-<number>`` with a value, a responder line and a link."""
    values: dict[str, Any] = {
        "id": f"inc-{number}",
        "title": f"High CPU on web-{number}",
        "severity": "critical",
        "status": "open",
        "fingerprint": f"fp{number:030d}",
        "labels": {"host": f"web-{number}", "alertname": "HighCpu", "env": "prod"},
        "opened_at": NOW - 600,
        "rule_name": "HighCpu",
        "value": "97.5%",
        "responder": f"restart_service on web-{number}: ok",
        "url": f"https://infragent.example.com/incidents/inc-{number}",
    }
    values.update(overrides)
    return IncidentSummary(**values)


def message(kind: NotificationKind = "firing", *incidents: IncidentSummary, **overrides: Any) -> Message:
    """A message of ``kind`` about ``incidents`` (one sample incident when none is given)."""
    chosen = incidents or (incident(),)
    values: dict[str, Any] = {
        "id": "dlv-0001",
        "client_id": "client-1",
        "kind": kind,
        "incidents": tuple(chosen),
        "created_at": NOW,
        "group_labels": {"alertname": "HighCpu"} if kind in ("firing", "resolved") else {},
        "firing_count": sum(1 for i in chosen if i.status != "resolved"),
        "resolved_count": sum(1 for i in chosen if i.status == "resolved"),
        "title": f"[{kind.upper()}] {chosen[0].title}",
        "text": "\n".join(f"{i.severity} {i.title}" for i in chosen),
    }
    values.update(overrides)
    return Message(**values)


def channel_config(
    kind: ChannelKind, settings: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None
) -> ChannelConfig:
    """A stored channel of ``kind`` named ``<kind>-1``."""
    return ChannelConfig(
        id=f"ch-{kind}",
        client_id="client-1",
        name=f"{kind}-1",
        kind=kind,
        settings=settings or {},
        secrets=secrets or {},
    )
