"""``/login``, ``/logout`` and ``/setup``: signing in and out, and the first-run setup.

Why plain form posts (no htmx) here: these pages must work before any session or CSRF token
exists, and a sign-in ends in a redirect that sets the cookie. What they guard against:

* guessing passwords: failed sign-ins are limited per client IP (``server/logins.py``) with a 429
  page and ``Retry-After``; the error never says whether the e-mail has an account;
* open redirects: ``next`` is followed only to a local path (``local_path``);
* cross-site posts: the session cookie is ``SameSite=Strict``; a sign-in or setup posted from
  another origin (its ``Origin`` header names another host) is refused, so another site cannot sign
  a visitor into an account of its choosing; signing out needs the session's CSRF token;
* setup after the fact: ``/setup`` answers 404 as soon as any user exists.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from infragent.auth import accounts
from infragent.auth import sessions as tokens
from infragent.auth.accounts import AccountError, SignIn
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import signed_in
from infragent.server.web.templating import render
from infragent.store.users import UserExistsError

logger = logging.getLogger(__name__)

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
#: Said for every failed sign-in, whatever the cause (unknown e-mail, wrong password, disabled).
WRONG = "wrong e-mail or password"


def local_path(target: str | None) -> str:
    """``target`` when it is a path on this server, else ``/``: never another host (``//evil``,
    ``/\\evil`` and ``https://evil`` all fall back), never a header-splitting character."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(c in target for c in "\r\n\t\\") or urlsplit(target).netloc:
        return "/"
    return target


def cross_site(request: Request) -> bool:
    """Whether a browser says this post comes from a page of another origin than this server."""
    origin = request.headers.get("origin")
    if not origin:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _login_page(
    request: Request,
    *,
    status_code: int = 200,
    error: str = "",
    email: str = "",
    next_url: str = "/",
    tenants: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "access/login.html",
        None,
        status_code=status_code,
        headers=headers,
        error=error,
        email=email,
        next_url=next_url,
        tenants=tenants or {},
    )


def _too_many(request: Request, wait_s: int, email: str, next_url: str) -> HTMLResponse:
    return _login_page(
        request,
        status_code=429,
        error=f"too many failed sign-ins from your address; try again in {wait_s} s",
        email=email,
        next_url=next_url,
        headers={"Retry-After": str(wait_s)},
    )


def _signed_in_response(
    svc: AppServices, request: Request, user_id: str, client_id: str, to: str
) -> Response:
    cookie, _record = svc.sessions.start(
        user_id, client_id, _client_ip(request), request.headers.get("user-agent", "")
    )
    response = RedirectResponse(to, status_code=303)
    svc.sessions.set_cookie(response, cookie, request)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, svc: Svc, next: str = "/") -> Response:
    """The sign-in form; on a server with no user yet, the first-run setup instead."""
    if accounts.user_count(svc.store) == 0:
        return RedirectResponse("/setup", status_code=303)
    return _login_page(request, next_url=local_path(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    svc: Svc,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    tenant: Annotated[str, Form(max_length=36)] = "",
) -> Response:
    """Check the password, then start a session in the chosen (or only) tenant and go to ``next``."""
    target = local_path(next)
    if cross_site(request):
        return _login_page(request, status_code=403, error="sign-in refused: posted from another site")
    ip = _client_ip(request)
    wait_s = svc.logins.blocked(ip)
    if wait_s is not None:
        return _too_many(request, wait_s, email, target)
    found: SignIn | None = accounts.authenticate(svc.store, email, password, svc.clock())
    if found is None:  # logged by address only: the e-mail field sometimes holds a password
        logger.info("failed sign-in from %s", ip)
        wait_s = svc.logins.failed(ip)
        if wait_s is not None:
            return _too_many(request, wait_s, email, target)
        return _login_page(request, status_code=401, error=WRONG, email=email, next_url=target)
    held = {m.client_id for m in found.memberships}
    if len(held) == 1:
        (client_id,) = held
    elif tenant in held:
        client_id = tenant
    else:  # several tenants and none (or a foreign one) chosen: ask which
        names = accounts.tenant_names(svc.store, [m.client_id for m in found.memberships])
        return _login_page(
            request,
            error="choose the tenant to work in, then enter your password again" if tenant else "",
            email=email,
            next_url=target,
            tenants=names,
        )
    return _signed_in_response(svc, request, found.user.id, client_id, target)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (its row is revoked: the old cookie no longer works anywhere) and go to sign-in.

    Needs the session's CSRF token (the form's hidden ``csrf_token`` field or the header), so
    another site cannot sign a visitor out.
    """
    svc: AppServices = request.app.state.services
    cookie = request.cookies.get(tokens.COOKIE)
    who = await signed_in(request)
    response = RedirectResponse("/login", status_code=303)
    if who is None or cookie is None:
        svc.sessions.clear_cookie(response)
        return response
    form = await request.form()
    given = form.get(tokens.CSRF_FIELD) or request.headers.get(tokens.CSRF_HEADER)
    if not isinstance(given, str) or not tokens.csrf_ok(who.csrf_token, given):
        return render(request, "forbidden.html", who, status_code=403, reason="missing or wrong CSRF token")
    await anyio.to_thread.run_sync(svc.sessions.end, cookie)
    svc.sessions.clear_cookie(response)
    return response


@router.get("/setup", response_class=HTMLResponse)
def setup_form(request: Request, svc: Svc) -> HTMLResponse:
    """The first-run form (the first admin and their tenant); 404 once any user exists."""
    if accounts.user_count(svc.store) > 0:
        raise HTTPException(status_code=404, detail="Not Found")
    return render(request, "access/setup.html", None, error="", values={})


@router.post("/setup", response_class=HTMLResponse)
def setup(
    request: Request,
    svc: Svc,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    company_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Create the first admin and sign them in; 404 once any user exists."""
    values = {"email": email, "name": name, "company_name": company_name}
    if cross_site(request):
        return render(
            request,
            "access/setup.html",
            None,
            status_code=403,
            error="refused: posted from another site",
            values=values,
        )
    try:
        user, client_id = accounts.create_first_admin(
            svc.store, email, name, password, company_name, svc.clock()
        )
    except AccountError as exc:
        if exc.status == 404:
            raise HTTPException(status_code=404, detail="Not Found") from None
        return render(
            request, "access/setup.html", None, status_code=exc.status, error=exc.reason, values=values
        )
    except UserExistsError as exc:  # the one tenant's own e-mail is free; this is another race
        return render(request, "access/setup.html", None, status_code=409, error=str(exc), values=values)
    accounts.record_sign_in(svc.store, user.id, svc.clock())
    return _signed_in_response(svc, request, user.id, client_id, "/")
