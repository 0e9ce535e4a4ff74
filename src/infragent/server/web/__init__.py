"""The web dashboard: server-rendered pages (Jinja2 + htmx), live over the tenant's stream (SSE),
charts with uPlot, every asset served by this server (docs/dashboard.md).

``install_web(app)`` adds the pages and the answers to ``LoginRequiredError`` (redirect to sign-in) and
``PageForbiddenError`` (a 403 page). Each page module under ``pages/`` has one ``router``; ``PAGES``
lists them. A page reads through the store with the signed-in user's tenant only: another tenant's
host or incident is a 404, the same as one that does not exist.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from infragent.server.web.deps import LoginRequiredError, PageForbiddenError
from infragent.server.web.pages import PAGES
from infragent.server.web.templating import render


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequiredError)
    target = f"/login?next={exc.next_url}"
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageForbiddenError)
    why = exc.reason or f"your role ({exc.who.role}) does not allow {exc.operation}"
    return render(request, "forbidden.html", exc.who, status_code=403, reason=why)


def install_web(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequiredError, _login_required)
    app.add_exception_handler(PageForbiddenError, _forbidden)
    for router in PAGES:
        app.include_router(router, include_in_schema=False)
