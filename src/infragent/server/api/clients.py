"""Client (tenant) registration: the one unauthenticated write, returning credentials once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from infragent.auth.registration import register_client
from infragent.server.api.deps import AppServices, services
from infragent.server.schemas import RegisterIn, RegisterOut

router = APIRouter(prefix="/api/v1/clients", tags=["clients"])


@router.post("/register", response_model=RegisterOut, status_code=201)
def register(body: RegisterIn, svc: Annotated[AppServices, Depends(services)]) -> RegisterOut:
    """Create a client; the API key and webhook secret are shown in this answer only."""
    reg = register_client(svc.store, body.email, body.company_name, str(body.webhook_url), svc.clock())
    return RegisterOut(client_id=reg.client.id, api_key=reg.api_key, webhook_secret=reg.client.webhook_secret)
