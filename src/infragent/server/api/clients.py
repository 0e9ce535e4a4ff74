"""Client (tenant) registration: the one unauthenticated write, returning credentials once.

Refusals: 429 with ``Retry-After`` past ``registration_rate_limit`` registrations per client IP
and window (``server/ratelimit.py`` says why), 409 when the e-mail already owns a tenant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from infragent.auth import scopes
from infragent.auth.registration import EmailTakenError, register_client
from infragent.outbound.policy import check_url
from infragent.outbound.transport import system_resolver
from infragent.server.api.deps import AppServices, services
from infragent.server.schemas import RegisterIn, RegisterOut

router = APIRouter(prefix="/api/v1/clients", tags=["clients"])


@router.post(
    "/register",
    response_model=RegisterOut,
    status_code=201,
    responses={
        409: {"description": "a client with this e-mail address is already registered"},
        422: {"description": "a field is invalid; a webhook_url the outbound policy refuses names it"},
        429: {"description": "too many registrations from this address; retry after Retry-After seconds"},
    },
)
def register(
    body: RegisterIn, request: Request, svc: Annotated[AppServices, Depends(services)]
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
