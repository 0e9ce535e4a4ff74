"""What every channel adapter shares: its dependencies (``ChannelDeps``) and the plain wording of a
message when the renderer left ``title``/``text`` empty.

Why the dependencies are one injected value: every adapter talks to a URL a tenant chose, so each
must use the *guarded* HTTP client (``outbound.transport``: the address is checked after
resolution, redirects are not followed, nothing comes from the environment) and the same timeout
and clock. Passing them in, rather than letting each adapter build its own client, keeps one
connection pool per worker and lets tests allow loopback and inject a clock.

Why a fallback wording here: ``notify/render.py`` fills ``Message.title``/``text`` before a send,
but an adapter must still say something true when a message reaches it unrendered (a template
that rendered empty, a test send): a plain line per incident built from the structured fields.
Pure functions of the message; no I/O.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from infragent.config import Settings
from infragent.notify.model import IncidentSummary, Message
from infragent.outbound.policy import OutboundPolicy, Resolver
from infragent.outbound.transport import guarded_client, system_resolver


@dataclass(frozen=True)
class ChannelDeps:
    """What an adapter needs to reach its vendor; owned (and closed) by the delivery worker.

    ``http`` is a guarded client (``outbound.transport.guarded_client``): every connection passes
    ``policy`` after resolution through ``resolve``, and redirects are never followed.
    ``tls_context`` is for tests with their own certificate authority (SMTP); None verifies
    against the system's store.
    """

    http: httpx.Client
    policy: OutboundPolicy
    resolve: Resolver
    timeout_s: float
    clock: Callable[[], float]
    tls_context: ssl.SSLContext | None = None

    def close(self) -> None:
        """Close the HTTP client's pooled connections (the worker calls this when it stops)."""
        self.http.close()


def deps_from_settings(settings: Settings) -> ChannelDeps:
    """The production dependencies: the system resolver, ``webhook_allowed_networks``, the wall clock."""
    policy = OutboundPolicy.from_cidrs(settings.webhook_allowed_networks)
    return ChannelDeps(
        http=guarded_client(policy, timeout_s=settings.notify_timeout_s, resolve=system_resolver),
        policy=policy,
        resolve=system_resolver,
        timeout_s=settings.notify_timeout_s,
        clock=time.time,
    )


def setting(values: dict[str, Any], name: str) -> str:
    """A string setting or secret, ``""`` when absent or not a string (the adapter then refuses)."""
    value = values.get(name)
    return value.strip() if isinstance(value, str) else ""


# -- plain wording --------------------------------------------------------------------------------

#: The word a notification kind is announced with (a title's prefix, a status line).
KIND_WORDS = {
    "firing": "FIRING",
    "resolved": "RESOLVED",
    "escalated": "ESCALATED",
    "acknowledged": "ACKNOWLEDGED",
    "escalation": "ESCALATION",
    "approval": "APPROVAL NEEDED",
    "test": "TEST",
}
#: Label names that say where an incident happens, in order of preference.
WHERE_LABELS = ("host", "instance", "service", "job")


def iso(ts: float | None) -> str:
    """UTC ISO 8601 to the second (``2025-01-02T03:04:05Z``); ``""`` for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def readable(ts: float | None) -> str:
    """A UTC time people read (``2025-01-02 03:04 UTC``); ``""`` for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def where(incident: IncidentSummary) -> str:
    """Where the incident happens: the first of ``WHERE_LABELS`` it has, else ``""``."""
    return next((incident.labels[name] for name in WHERE_LABELS if incident.labels.get(name)), "")


def labels_line(labels: dict[str, str], limit: int = 8) -> str:
    """``a=1, b=2`` in name order, at most ``limit`` pairs (``…`` when there are more)."""
    pairs = [f"{k}={v}" for k, v in sorted(labels.items())]
    return ", ".join(pairs[:limit]) + (", …" if len(pairs) > limit else "")


def title_of(message: Message) -> str:
    """The rendered title, or ``[FIRING:2] <first incident> (+1 more)`` built from the fields."""
    if message.title.strip():
        return message.title.strip()
    word = KIND_WORDS.get(message.kind, message.kind.upper())
    if message.kind == "test":
        return "[TEST] InfrAgent test notification"
    if message.kind == "approval":
        action = message.detail.get("action")
        first = message.incidents[0].title if message.incidents else ""
        return f"[{word}] {action or 'an action'}" + (f" for {first}" if first else "")
    count = message.firing_count if message.kind == "firing" else len(message.incidents)
    head = f"[{word}:{count}]" if message.kind == "firing" and count else f"[{word}]"
    if not message.incidents:
        return head
    more = len(message.incidents) - 1
    return f"{head} {message.incidents[0].title}" + (f" (+{more} more)" if more else "")


def incident_line(incident: IncidentSummary) -> str:
    """One incident in one line: severity, title, where, since, value, status."""
    parts = [f"{incident.severity.upper()} {incident.title}"]
    if place := where(incident):
        parts.append(f"on {place}")
    parts.append(f"since {readable(incident.opened_at)}")
    if incident.value:
        parts.append(f"value {incident.value}")
    parts.append(f"({incident.status})")
    return " ".join(parts)


def text_of(message: Message) -> str:
    """The rendered text, or one line per incident (and the responder's, when there is one)."""
    if message.text.strip():
        return message.text.strip()
    if message.kind == "test":
        return "This is a test notification from InfrAgent: this channel works."
    lines = []
    for incident in message.incidents:
        lines.append(incident_line(incident))
        if incident.responder:
            lines.append(f"  responder: {incident.responder}")
        if incident.url:
            lines.append(f"  {incident.url}")
    if message.kind == "approval" and message.detail:
        lines.extend(f"{key}: {value}" for key, value in sorted(message.detail.items()))
    return "\n".join(lines) or title_of(message)


def status_line(message: Message, incident: IncidentSummary) -> str:
    """What this message says of one incident (a Slack thread reply, a card's subtitle)."""
    word = KIND_WORDS.get(message.kind, message.kind.upper())
    if message.kind == "acknowledged" and incident.acknowledged_by:
        return f"{word} by {incident.acknowledged_by}"
    if incident.status == "resolved" and incident.resolved_at is not None:
        return f"RESOLVED at {readable(incident.resolved_at)}"
    if message.kind == "escalation" and message.detail.get("step") is not None:
        return f"{word} (step {message.detail['step']}): still not acknowledged"
    return f"{word}: {incident.status}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``…`` when cut (vendors refuse longer fields)."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
