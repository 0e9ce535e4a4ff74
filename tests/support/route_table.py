"""The route table as the authorization matrix reads it: which routes are public, which declare an
operation of ``auth/scopes.py`` (API routes through ``require``/``attempt``, pages through
``web/deps.page``; both record it under ``__infragent_operation__``), and which do neither.

Why apart from the matrix test: the classification is the rule ("every route is public or declares
one operation"), the matrix is what is checked with it; both stay short enough to read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from infragent.server.web import deps as web_deps

# -- the public allowlist: routes anyone may call ------------------------------------------------------

#: Exact paths: liveness/readiness, the scrape page, registration (its own mode and rate limit),
#: the API docs, and the sign-in pages (they are how one stops being anonymous).
PUBLIC = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/api/v1/clients/register",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/login",
        "/logout",
        "/setup",
    }
)
#: Mounted trees served to anyone: the dashboard's and the docs' static files.
PUBLIC_MOUNTS = frozenset({"/static"})
#: Routes any signed-in user or valid key may call whatever their role (no operation to declare):
#: "who am I". Checked only for 401 without credentials.
SIGNED_IN_ANY = frozenset({"/api/v1/session"})

OPERATION_ATTR = web_deps.OPERATION_ATTR
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, with the operation its dependency declares."""

    path: str
    method: str
    operation: str
    page: bool  # a page (session only, 303 to /login) rather than an API route

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)


@dataclass(frozen=True)
class Classified:
    endpoints: list[Endpoint]
    public: list[tuple[str, str]]  # (path, method)
    signed_in_any: list[tuple[str, str]]
    undeclared: list[tuple[str, str]]


def operations(dependant: Dependant) -> list[tuple[str, bool]]:
    """(operation, is a page dependency) of every dependency in the tree that records one."""
    found: list[tuple[str, bool]] = []
    call = dependant.call
    operation = getattr(call, OPERATION_ATTR, None)
    if isinstance(operation, str):
        found.append((operation, getattr(call, "__module__", "") == web_deps.__name__))
    for sub in dependant.dependencies:
        found.extend(x for x in operations(sub) if x not in found)
    return found


def contexts(app: FastAPI) -> Iterator[tuple[str, set[str], BaseRoute, Any]]:
    """(path, methods, route, the route's effective dependant or None) through included routers
    (FastAPI >= 0.16x keeps them nested: ``app.routes`` then lists routers, not routes)."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    if walk is None:  # older FastAPI: the routes are flat
        for route in app.routes:
            dependant = route.dependant if isinstance(route, APIRoute) else None
            yield (
                str(getattr(route, "path", "")),
                set(getattr(route, "methods", None) or ()),
                route,
                dependant,
            )
        return
    for ctx in walk(app.routes):
        route = ctx.original_route
        dependant = getattr(ctx, "dependant", None) if isinstance(route, APIRoute) else None
        yield str(ctx.path), set(ctx.methods or ()), route, dependant


def classify(app: FastAPI) -> Classified:
    """Every route of ``app``: public, for any signed-in caller, declaring one operation, or none."""
    endpoints: list[Endpoint] = []
    public: list[tuple[str, str]] = []
    any_user: list[tuple[str, str]] = []
    undeclared: list[tuple[str, str]] = []
    for path, methods, route, dependant in contexts(app):
        if isinstance(route, Mount):
            if path not in PUBLIC_MOUNTS:
                undeclared.append((path, "*"))
            continue
        for method in sorted(methods - {"HEAD"}) or ["*"]:
            if path in PUBLIC:
                public.append((path, method))
                continue
            if path in SIGNED_IN_ANY:
                any_user.append((path, method))
                continue
            ops = operations(dependant) if dependant is not None else []
            if len(ops) != 1:  # none, or two that disagree: either way not one row of the table
                undeclared.append((path, method))
                continue
            ((operation, is_page),) = ops
            endpoints.append(Endpoint(path, method, operation, is_page))
    return Classified(endpoints, public, any_user, undeclared)
