"""API keys of the caller's tenant: mint one with chosen scopes, revoke one (both need ``admin``).

Why these two and no more yet: ``infragent agent install`` turns an admin key into an ingest-only
key for the host (``POST /api/v1/keys``), and a leaked key must be stoppable at once
(``POST /api/v1/keys/{key_id}/revoke``). Listing, rotation and the UI come with the dashboard.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from infragent.auth import registration
from infragent.auth.scopes import Scope
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schemas import Strict

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


class KeyIn(Strict):
    scopes: list[Scope] = Field(
        description="What the key may do: ingest (agents, SDKs), read, operate, admin (implies all)."
    )
    name: str = Field(default="", max_length=200, description="A label for people, e.g. the host's name.")


class KeyOut(Strict):
    key_id: str
    api_key: str = Field(description="Shown once; only its hash is stored.")
    scopes: list[Scope]
    name: str


class RevokedOut(Strict):
    key_id: str
    revoked: bool


@router.post("", response_model=KeyOut, status_code=201)
def create_key(
    body: KeyIn,
    who: Annotated[Principal, Depends(require("keys.create"))],
    svc: Annotated[AppServices, Depends(services)],
) -> KeyOut:
    """A new key of the caller's tenant with exactly ``scopes``; its plaintext is in this answer only."""
    try:
        key = registration.mint_key(
            svc.store, who.client_id, body.scopes, svc.clock(), actor=who.actor, name=body.name
        )
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "scopes"), "msg": str(exc), "type": "value_error"}]
        ) from None
    return KeyOut(key_id=key.key_id, api_key=key.plaintext, scopes=body.scopes, name=body.name)


@router.post("/{key_id}/revoke", response_model=RevokedOut)
def revoke_key(
    key_id: str,
    who: Annotated[Principal, Depends(require("keys.revoke"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RevokedOut:
    """Revoke a key of the caller's tenant; the next request with it is 401. Another tenant's key,
    or no key, is a 404."""
    if not registration.revoke_key(svc.store, who.client_id, key_id, svc.clock(), actor=who.actor):
        raise HTTPException(status_code=404, detail=f"key {key_id!r} not found")
    svc.keys.drop(key_id)
    return RevokedOut(key_id=key_id, revoked=True)
