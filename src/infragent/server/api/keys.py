"""API keys of the caller's tenant: list, mint with chosen scopes, rotate, revoke (all ``admin``).

Why these four: ``infragent agent install`` turns an admin key into an ingest-only key for the host
(create); a person must see which keys exist and which are still used (list: prefix, scopes,
created, last use; never a secret or its hash); a key can be replaced without an outage (rotate:
the old key keeps working for a grace period while hosts move to the new one); a leaked key must
be stoppable at once (revoke). Another tenant's key is a 404, the same as a key that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from infragent.auth import registration
from infragent.auth.scopes import Scope
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schemas import Strict
from infragent.store.records import KeyRecord

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


class KeyInfo(Strict):
    """What anyone may see of a key: never its secret nor its hash."""

    key_id: str
    prefix: str = Field(description="The visible start of the key, `ia_<key_id>_…`.")
    name: str
    scopes: list[str]
    created_at: float
    last_used_at: float | None = Field(description="Recorded at most once a minute; null: never used.")
    expires_at: float | None = Field(description="End of a rotated key's grace period; null: no end.")
    revoked: bool
    replaced_by: str | None = Field(description="The key that replaced this one by rotation.")


class KeyList(Strict):
    keys: list[KeyInfo]


class RotateIn(Strict):
    grace_s: float | None = Field(
        default=None,
        ge=0,
        le=90 * 24 * 3600,
        description="How long the old key keeps working; default key_rotation_grace_s; 0: stops now.",
    )


class RotatedOut(Strict):
    key_id: str
    api_key: str = Field(description="Shown once; only its hash is stored.")
    scopes: list[str]
    name: str
    replaces: str = Field(description="The old key's id.")
    old_expires_at: float = Field(description="When the old key stops working.")


class RevokedOut(Strict):
    key_id: str
    revoked: bool


def key_info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(
        key_id=record.key_id,
        prefix=registration.key_prefix(record.key_id),
        name=record.name,
        scopes=list(record.scopes),
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        expires_at=record.expires_at,
        revoked=record.revoked,
        replaced_by=record.replaced_by,
    )


@router.get("", response_model=KeyList)
def list_keys(
    who: Annotated[Principal, Depends(require("keys.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> KeyList:
    """Every key of the caller's tenant, oldest first, revoked and expired ones included."""
    return KeyList(keys=[key_info(r) for r in registration.list_keys(svc.store, who.client_id)])


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


@router.post(
    "/{key_id}/rotate",
    response_model=RotatedOut,
    status_code=201,
    responses={
        404: {"description": "no such key in the caller's tenant"},
        409: {"description": "the key is revoked or its grace period has ended"},
    },
)
def rotate_key(
    key_id: str,
    who: Annotated[Principal, Depends(require("keys.rotate"))],
    svc: Annotated[AppServices, Depends(services)],
    body: Annotated[RotateIn | None, Body()] = None,
) -> RotatedOut:
    """A successor of the key with the same scopes and name, its plaintext in this answer only; the
    old key keeps working ``grace_s`` seconds (audited as ``key.rotated``)."""
    grace_s = body.grace_s if body is not None and body.grace_s is not None else None
    if grace_s is None:
        grace_s = svc.settings.key_rotation_grace_s
    try:
        rotation = registration.rotate_key(
            svc.store, who.client_id, key_id, svc.clock(), grace_s=grace_s, actor=who.actor
        )
    except registration.KeyInactiveError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    if rotation is None:
        raise HTTPException(status_code=404, detail=f"key {key_id!r} not found")
    svc.keys.drop(key_id)  # the next request reads its end of grace from the store
    new = rotation.new
    return RotatedOut(
        key_id=new.key_id,
        api_key=new.plaintext,
        scopes=list(new.scopes),
        name=new.name,
        replaces=key_id,
        old_expires_at=rotation.old_expires_at,
    )


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
