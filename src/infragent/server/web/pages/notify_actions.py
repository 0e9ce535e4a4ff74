"""What the notification pages do beyond one store call, the same way the API does it: the
outbound-URL check of a channel's URLs, the channel names the route tree uses (a channel a route
names cannot be deleted), and a test send.

Why the URL check is here and not in ``notify/config.py``: it resolves names (I/O) against the
server's outbound policy (``webhook_allowed_networks``), as registration's webhook check does; a
refusal names the field and the host, never the URL (a Slack, Discord or Teams URL *is* a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from infragent.notify.channels.base import deps_from_settings
from infragent.notify.model import DeliveryResult
from infragent.notify.testsend import test_send
from infragent.outbound.policy import check_url
from infragent.outbound.transport import system_resolver
from infragent.server.api.deps import AppServices
from infragent.server.auth import Principal
from infragent.store import notify_config

#: the fields of every kind that hold a URL the server will connect to
URL_FIELDS = (("settings", "url"), ("settings", "api_url"), ("secrets", "url"))


def check_urls(
    kind: str, settings: Mapping[str, Any], secrets: Mapping[str, Any], svc: AppServices
) -> list[tuple[str, str]]:
    """``(field, "refused: why")`` for each URL among ``settings``/``secrets`` the outbound policy
    refuses. The reason names the host at most, never the path or query."""
    problems: list[tuple[str, str]] = []
    for section, name in URL_FIELDS:
        value = (settings if section == "settings" else secrets).get(name)
        if not isinstance(value, str) or not value:
            continue
        why = check_url(value, svc.outbound, system_resolver)
        if why is not None:
            problems.append((f"{section}.{name}", f"refused: {_without_url(why, value)}"))
    return problems


def _without_url(why: str, url: str) -> str:
    """``why`` with the URL (or its path and query) cut out, should a reason ever quote it."""
    parts = urlsplit(url)
    for part in (url, parts.path, parts.query):
        if part and part != "/":
            why = why.replace(part, "…")
    return why


def receivers_in_use(conn: sa.Connection, client_id: str) -> set[str]:
    """Every channel name the tenant's stored route tree names (receivers and escalation steps)."""
    routing = notify_config.get_routing(conn, client_id)
    found: set[str] = set()
    if routing is None:
        return found

    def walk(node: Any) -> None:
        if not isinstance(node, Mapping):
            return
        found.update(str(r) for r in node.get("receivers") or [] if isinstance(r, str))
        for step in node.get("escalation") or []:
            if isinstance(step, Mapping):
                found.update(str(r) for r in step.get("receivers") or [] if isinstance(r, str))
        for child in node.get("routes") or []:
            walk(child)

    walk(routing.tree)
    return found


def run_test_send(svc: AppServices, who: Principal, channel_id: str) -> DeliveryResult:
    """One test message through the channel now, no retry (``notify.testsend.test_send``, as the
    API's ``POST /api/v1/notify/channels/{id}/test``). ``NotifyNotFoundError`` for another
    tenant's or a missing channel."""
    with svc.store.read() as conn:
        channel = notify_config.get_channel(conn, who.client_id, channel_id)
    deps = deps_from_settings(svc.settings)
    try:
        return test_send(channel, deps, now=svc.clock(), public_url=svc.settings.public_url)
    finally:
        deps.http.close()
