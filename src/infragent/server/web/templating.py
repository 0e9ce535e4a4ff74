"""The dashboard's one Jinja2 environment and ``render``: every page goes through here.

Why one place: autoescaping, the CSRF token, the signed-in principal, the permission check the
templates use to hide buttons (``can``, the API's own table: ``auth/scopes.py``) and the asset URLs
are the same on every page, so a page cannot forget one. Templates are package data
(``server/web/templates``); assets are served from ``/static`` (``server/docs.py`` mounts it) with
the package version in the query string, so a new release is never served an old cached file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from infragent import __version__
from infragent.server.auth import Principal

TEMPLATES: Final = Path(__file__).parent / "templates"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def static(path: str) -> str:
    """The URL of a file under ``server/static``, cache-busted by the package version."""
    return f"/static/{path}?v={__version__}"


env.globals["static"] = static
env.globals["version"] = __version__


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it swaps the answer into part of the page)."""
    return request.headers.get("HX-Request") == "true"


def render_part(
    request: Request,
    part: str,
    whole: str,
    who: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``part`` for htmx, else the ``whole`` page. Why htmx always gets 200: htmx swaps only 2xx
    answers, so a refusal (a taken e-mail, a bad parameter) would vanish; the part shows the error
    instead, and a plain request (no JavaScript, an API-like client) gets the real 4xx status."""
    if is_htmx(request):
        return render(request, part, who, **context)
    return render(request, whole, who, status_code=status_code, **context)


def render(
    request: Request,
    template: str,
    who: Principal | None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered with the page's context: ``who``, ``can(op)``, ``csrf``, ``request``."""

    def can(operation: str) -> bool:
        return who is not None and who.can(operation)

    html = env.get_template(template).render(
        request=request,
        who=who,
        can=can,
        csrf=who.csrf_token if who is not None else "",
        path=request.url.path,
        htmx=is_htmx(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=headers)
