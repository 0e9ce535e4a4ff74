"""Every page module's router, in menu order; ``server/web/__init__.py`` installs them.

A feature adds its module here (one line), so the frame does not change when a page is added.
"""

from __future__ import annotations

from fastapi import APIRouter

from infragent.server.web.pages import (
    access,
    audit,
    guardrails,
    home,
    hosts,
    inbox,
    incidents,
    keys,
    notify_channels,
    notify_deliveries,
    notify_routes,
    notify_silences,
    remote,
    responder,
    rules,
    runs,
    users,
)

PAGES: tuple[APIRouter, ...] = (
    home.router,
    access.router,
    hosts.router,
    remote.router,
    incidents.router,
    runs.router,
    rules.router,
    responder.router,
    guardrails.router,
    notify_deliveries.router,
    notify_channels.router,
    notify_routes.router,
    notify_silences.router,
    inbox.router,
    keys.router,
    users.router,
    audit.router,
)
