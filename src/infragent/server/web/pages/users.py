"""``/users``: the tenant admin's page of users: list, create, change a role, remove.

Why every form answers the whole users section (htmx swaps it): after any change the admin sees
the table as it now is, with the error of the change inline when it was refused; the rules are
``auth/accounts.py``'s, the same as the API's (``server/api/users.py``) and the CLI's. Refusals
are answered 200 to htmx (it swaps only 2xx answers) with the reason shown, and with their own
status to a plain request. Reading needs ``users.read``, changing ``users.write`` (admin).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from infragent.auth import accounts, scopes
from infragent.auth.accounts import AccountError
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store.users import UserExistsError

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("users.read"))]
Writer = Annotated[Principal, Depends(page("users.write"))]


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _section(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    error: str = "",
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """The users section alone for htmx, else the whole page."""
    htmx = request.headers.get("HX-Request") == "true"
    return render(
        request,
        "access/users_section.html" if htmx else "users.html",
        who,
        status_code=200 if htmx else status,
        members=accounts.members(svc.store, who.client_id),
        roles=scopes.ALL_ROLES,
        error=error,
        values=values or {"role": "viewer"},
        when=_when,
    )


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, who: Reader, svc: Svc) -> HTMLResponse:
    return _section(request, who, svc)


@router.post("/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    who: Writer,
    svc: Svc,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    role: Annotated[str, Form(max_length=16)] = "viewer",
) -> HTMLResponse:
    """Add a user to the tenant; the form keeps what was typed (not the password) when refused."""
    values = {"email": email, "name": name, "role": role}
    try:
        accounts.add_user(svc.store, who.client_id, email, name, password, role, svc.clock(), who.actor)
    except UserExistsError as exc:
        return _section(request, who, svc, error=str(exc), status=409, values=values)
    except AccountError as exc:
        return _section(request, who, svc, error=exc.reason, status=exc.status, values=values)
    return _section(request, who, svc)


@router.post("/users/{user_id}/role", response_class=HTMLResponse)
def change_role(
    request: Request,
    user_id: str,
    who: Writer,
    svc: Svc,
    role: Annotated[str, Form(max_length=16)] = "",
) -> HTMLResponse:
    try:
        accounts.change_role(svc.store, who.client_id, user_id, role, svc.clock(), who.actor)
    except AccountError as exc:
        return _section(request, who, svc, error=exc.reason, status=exc.status)
    return _section(request, who, svc)


@router.post("/users/{user_id}/remove", response_class=HTMLResponse)
def remove_user(request: Request, user_id: str, who: Writer, svc: Svc) -> HTMLResponse:
    try:
        accounts.remove_user(svc.store, who.client_id, user_id, svc.clock(), who.actor)
    except AccountError as exc:
        return _section(request, who, svc, error=exc.reason, status=exc.status)
    return _section(request, who, svc)
