"""Every page module's router, in menu order; ``server/web/__init__.py`` installs them.

A feature adds its module here (one line), so the frame does not change when a page is added.
"""

from __future__ import annotations

from fastapi import APIRouter

from infragent.server.web.pages import access, audit, home, hosts, incidents, keys, remote, rules, users

PAGES: tuple[APIRouter, ...] = (
    home.router,
    access.router,
    hosts.router,
    remote.router,
    incidents.router,
    rules.router,
    keys.router,
    users.router,
    audit.router,
)
