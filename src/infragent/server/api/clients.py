"""Client (tenant) registration: the one unauthenticated write, returning credentials once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError

from infragent.auth.registration import register_client
from infragent.outbound.policy import check_url
from infragent.outbound.transport import system_resolver
from infragent.server.api.deps import AppServices, services
from infragent.server.schemas import RegisterIn, RegisterOut

router = APIRouter(prefix="/api/v1/clients", tags=["clients"])


@router.post("/register", response_model=RegisterOut, status_code=201)
def register(body: RegisterIn, svc: Annotated[AppServices, Depends(services)]) -> RegisterOut:
    """Create a client; the API key and webhook secret are shown in this answer only.

    ``webhook_url`` must pass the outbound policy (``webhook_allowed_networks``), else 422 naming it:
    the server will connect there, so an address it may not reach is refused before it is stored.
    """
    url = str(body.webhook_url)
    refusal = check_url(url, svc.outbound, system_resolver)
    if refusal is not None:
        error = {"loc": ("body", "webhook_url"), "msg": f"refused: {refusal}", "type": "outbound_refused"}
        raise RequestValidationError([error])
    reg = register_client(svc.store, body.email, body.company_name, url, svc.clock())
    return RegisterOut(client_id=reg.client.id, api_key=reg.api_key, webhook_secret=reg.client.webhook_secret)
