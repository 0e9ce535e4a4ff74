"""Client (tenant) registration: the one unauthenticated write, returning credentials once.

Refusals: 429 with ``Retry-After`` past ``registration_rate_limit`` registrations per client IP
and window (``server/ratelimit.py`` says why), 409 when the e-mail already owns a tenant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from infragent.auth import scopes
from infragent.auth.registration import EmailTakenError, register_client
from infragent.server.api.deps import AppServices, services
from infragent.server.schemas import RegisterIn, RegisterOut

router = APIRouter(prefix="/api/v1/clients", tags=["clients"])


@router.post(
    "/register",
    response_model=RegisterOut,
    status_code=201,
    responses={
        409: {"description": "a client with this e-mail address is already registered"},
        429: {"description": "too many registrations from this address; retry after Retry-After seconds"},
    },
)
def register(
    body: RegisterIn, request: Request, svc: Annotated[AppServices, Depends(services)]
) -> RegisterOut:
    """Create a client; its admin API key and webhook secret are shown in this answer only."""
    address = request.client.host if request.client else "unknown"
    wait_s = svc.registrations.hit(address)
    if wait_s is not None:
        raise HTTPException(
            status_code=429,
            detail=f"too many registrations from {address}; retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    try:
        reg = register_client(svc.store, body.email, body.company_name, str(body.webhook_url), svc.clock())
    except EmailTakenError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return RegisterOut(
        client_id=reg.client.id,
        api_key=reg.api_key,
        webhook_secret=reg.client.webhook_secret,
        scopes=list(scopes.REGISTRATION_SCOPES),
    )
