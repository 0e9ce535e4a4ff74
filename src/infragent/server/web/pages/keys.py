"""``/keys``: the tenant admin's page of API keys: list, create (the secret shown once), rotate (the
successor's secret shown once, the old key's end of grace in its row), revoke.

Why every form answers the whole keys section (htmx swaps it): after any change the admin sees the
table as it now is, with the one-time secret or the refusal on top. The rules are the API's
(``auth/registration.py``, ``server/api/keys.py``): the same scopes check, the same 404 for another
tenant's key, the same 409 for rotating a revoked or expired key. Refusals are answered 200 to htmx
(it swaps only 2xx answers) with the reason shown, and with their own status to a plain request.
Reading needs ``keys.read``; each form needs its own operation (all ``admin``).

Why the secret is in the answer and nowhere else: the store keeps only its hash, so this answer
is the only copy; the page says so next to a copy button (``static/js/keys.js``).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from infragent.auth import registration, scopes
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web.deps import page
from infragent.server.web.templating import render

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]


def when(ts: float | None) -> str:
    """A stored time for people (UTC); the ``data-ts`` beside it lets a script localise it."""
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _section(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    error: str = "",
    status: int = 200,
    secret: registration.MintedKey | None = None,
    replaces: str = "",
    old_expires_at: float | None = None,
    values: dict[str, object] | None = None,
) -> HTMLResponse:
    """The keys section alone for htmx, else the whole page."""
    htmx = request.headers.get("HX-Request") == "true"
    return render(
        request,
        "keys/section.html" if htmx else "keys.html",
        who,
        status_code=200 if htmx else status,
        keys=registration.list_keys(svc.store, who.client_id),
        now=svc.clock(),
        all_scopes=scopes.ALL_SCOPES,
        error=error,
        secret=secret,
        replaces=replaces,
        old_expires_at=old_expires_at,
        values=values or {"name": "", "scopes": []},
        prefix=registration.key_prefix,
        when=when,
    )


@router.get("/keys", response_class=HTMLResponse)
def keys_page(
    request: Request, who: Annotated[Principal, Depends(page("keys.read"))], svc: Svc
) -> HTMLResponse:
    return _section(request, who, svc)


@router.post("/keys", response_class=HTMLResponse)
def create_key(
    request: Request,
    who: Annotated[Principal, Depends(page("keys.create"))],
    svc: Svc,
    name: Annotated[str, Form(max_length=200)] = "",
    key_scopes: Annotated[list[str] | None, Form(alias="scopes")] = None,
) -> HTMLResponse:
    """Mint a key with the ticked scopes; the answer shows its secret once."""
    chosen = key_scopes or []
    try:
        minted = registration.mint_key(
            svc.store, who.client_id, chosen, svc.clock(), actor=who.actor, name=name
        )
    except ValueError as exc:
        values: dict[str, object] = {"name": name, "scopes": chosen}
        return _section(request, who, svc, error=f"not created: {exc}", status=422, values=values)
    return _section(request, who, svc, secret=minted, status=201)


@router.post("/keys/{key_id}/rotate", response_class=HTMLResponse)
def rotate_key(
    request: Request, key_id: str, who: Annotated[Principal, Depends(page("keys.rotate"))], svc: Svc
) -> HTMLResponse:
    """Mint the key's successor (shown once); the old key keeps working ``key_rotation_grace_s``."""
    try:
        rotation = registration.rotate_key(
            svc.store,
            who.client_id,
            key_id,
            svc.clock(),
            grace_s=svc.settings.key_rotation_grace_s,
            actor=who.actor,
        )
    except registration.KeyInactiveError as exc:
        return _section(request, who, svc, error=str(exc), status=409)
    if rotation is None:
        return _section(request, who, svc, error=f"key {key_id!r} not found", status=404)
    svc.keys.drop(key_id)
    return _section(
        request,
        who,
        svc,
        secret=rotation.new,
        replaces=key_id,
        old_expires_at=rotation.old_expires_at,
        status=201,
    )


@router.post("/keys/{key_id}/revoke", response_class=HTMLResponse)
def revoke_key(
    request: Request, key_id: str, who: Annotated[Principal, Depends(page("keys.revoke"))], svc: Svc
) -> HTMLResponse:
    """Revoke the key at once (the page asked to confirm first)."""
    if not registration.revoke_key(svc.store, who.client_id, key_id, svc.clock(), actor=who.actor):
        return _section(request, who, svc, error=f"key {key_id!r} not found", status=404)
    svc.keys.drop(key_id)
    return _section(request, who, svc)
