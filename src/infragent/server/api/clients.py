"""Client (tenant) registration: the one unauthenticated write, returning credentials once.

Refusals: 403 when ``registration_mode`` closes registration (``registration_allowed``), 401/403
in ``admin-only`` mode without a signed-in admin or an admin key, 429 with ``Retry-After`` past
``registration_rate_limit`` registrations per client IP and window (``server/ratelimit.py`` says
why), 409 when the e-mail already owns a tenant.

Why ``auto`` is the default (open until the first user exists, then closed): a fresh server must
let its owner in (``infragent up``, the quick start, the SDK's tests), and once someone runs it
with people signed in, anyone on the network creating tenants there is not what they want.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from infragent.auth import accounts, scopes
from infragent.auth.registration import EmailTakenError, register_client
from infragent.outbound.policy import check_url
from infragent.outbound.transport import system_resolver
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import authorize
from infragent.server.schemas import RegisterIn, RegisterOut

router = APIRouter(prefix="/api/v1/clients", tags=["clients"])

CLOSED = (
    "registration is closed on this server: an admin can enable it with the setting registration_mode "
    "(INFRAGENT_REGISTRATION_MODE=open, or admin-only to let admins register tenants)"
)


async def registration_allowed(request: Request, svc: Annotated[AppServices, Depends(services)]) -> None:
    """Refuse the registration unless ``registration_mode`` allows it for this caller: ``open``
    always; ``auto`` while no user exists; ``admin-only`` for an admin key or a signed-in admin
    (with the CSRF header); ``closed`` never."""
    mode = svc.settings.registration_mode
    if mode == "auto":
        users_exist = await anyio.to_thread.run_sync(accounts.user_count, svc.store) > 0
        mode = "closed" if users_exist else "open"
    if mode == "closed":
        raise HTTPException(status_code=403, detail=CLOSED)
    if mode == "admin-only":
        await authorize(request, "clients.register")


@router.post(
    "/register",
    response_model=RegisterOut,
    status_code=201,
    responses={
        401: {"description": "registration_mode is admin-only and no admin key or session was given"},
        403: {"description": "registration is closed (registration_mode), or the caller is no admin"},
        409: {"description": "a client with this e-mail address is already registered"},
        422: {"description": "a field is invalid; a webhook_url the outbound policy refuses names it"},
        429: {"description": "too many registrations from this address; retry after Retry-After seconds"},
    },
)
def register(
    body: RegisterIn,
    request: Request,
    svc: Annotated[AppServices, Depends(services)],
    _allowed: Annotated[None, Depends(registration_allowed)],
) -> RegisterOut:
    """Create a client; its admin API key and webhook secret are shown in this answer only.

    ``webhook_url`` must pass the outbound policy (``webhook_allowed_networks``), else 422 naming it:
    the server will connect there, so an address it may not reach is refused before it is stored.
    """
    address = request.client.host if request.client else "unknown"
    wait_s = svc.registrations.hit(address)
    if wait_s is not None:
        raise HTTPException(
            status_code=429,
            detail=f"too many registrations from {address}; retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    url = str(body.webhook_url)
    refusal = check_url(url, svc.outbound, system_resolver)
    if refusal is not None:
        error = {"loc": ("body", "webhook_url"), "msg": f"refused: {refusal}", "type": "outbound_refused"}
        raise RequestValidationError([error])
    try:
        reg = register_client(svc.store, body.email, body.company_name, url, svc.clock())
    except EmailTakenError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return RegisterOut(
        client_id=reg.client.id,
        api_key=reg.api_key,
        webhook_secret=reg.client.webhook_secret,
        scopes=list(scopes.REGISTRATION_SCOPES),
    )
