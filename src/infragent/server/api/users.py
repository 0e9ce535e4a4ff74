"""The caller's tenant's users (admin: ``users.read`` / ``users.write``) and who the caller is.

Why tenant-scoped ids and 404s: a user is global (one person may be in several tenants) but an
admin only sees and changes the members of their own tenant; a user of another tenant answers 404,
the same as one that does not exist. The rules (password length, known roles, the last admin stays)
are ``auth/accounts.py``'s, shared with the users page and the CLI. No answer ever carries a
password or its hash.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import Field

from infragent.auth import accounts
from infragent.auth.accounts import AccountError, Member
from infragent.auth.scopes import Role
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.schemas import Strict
from infragent.store.users import UserExistsError

router = APIRouter(prefix="/api/v1", tags=["users"])

_REFUSALS: dict[int | str, dict[str, str]] = {
    404: {"description": "no such user in the caller's tenant"},
    409: {"description": "the change would leave the tenant without an enabled admin"},
    422: {"description": "a field is invalid (e-mail, role, or a password shorter than the rule)"},
}


class UserIn(Strict):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    password: str = Field(max_length=1024, description="At least 10 characters; stored as an argon2id hash.")
    role: Role = "viewer"


class UserPatch(Strict):
    role: Role | None = None
    disabled: bool | None = Field(
        default=None,
        description="true ends every session of the user; refused (409) for a user of other tenants",
    )


class UserOut(Strict):
    id: str
    email: str
    name: str
    role: str
    created_at: float
    last_login_at: float | None
    disabled: bool


class SessionOut(Strict):
    """Who is asking: a signed-in user (``user_id``, ``email``, ``role``) or an API key (``key_id``)."""

    client_id: str
    scopes: list[str]
    user_id: str | None = None
    email: str | None = None
    role: str | None = None
    key_id: str | None = None


def _out(member: Member) -> UserOut:
    user = member.user
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=member.role,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        disabled=user.disabled,
    )


def _refused(exc: AccountError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.reason)


@router.get("/users", response_model=list[UserOut])
def list_users(
    who: Annotated[Principal, Depends(require("users.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> list[UserOut]:
    """The tenant's users with their role here, by e-mail."""
    return [_out(m) for m in accounts.members(svc.store, who.client_id)]


@router.post("/users", response_model=UserOut, status_code=201, responses=_REFUSALS)
def create_user(
    body: UserIn,
    who: Annotated[Principal, Depends(require("users.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> UserOut:
    """A new user with ``role`` in the caller's tenant; 409 when the e-mail already has an account."""
    try:
        user = accounts.add_user(
            svc.store, who.client_id, body.email, body.name, body.password, body.role, svc.clock(), who.actor
        )
    except UserExistsError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except AccountError as exc:
        raise _refused(exc) from None
    return _out(Member(user, body.role))


@router.patch("/users/{user_id}", response_model=UserOut, responses=_REFUSALS)
def change_user(
    user_id: str,
    body: UserPatch,
    who: Annotated[Principal, Depends(require("users.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> UserOut:
    """Change a member's role and/or disable or enable them; the last enabled admin stays (409)."""
    now = svc.clock()
    try:
        if body.role is not None:
            accounts.change_role(svc.store, who.client_id, user_id, body.role, now, who.actor)
        if body.disabled is not None:
            accounts.set_disabled(svc.store, who.client_id, user_id, body.disabled, now, who.actor)
        return _out(accounts.member(svc.store, who.client_id, user_id))
    except AccountError as exc:
        raise _refused(exc) from None


@router.delete("/users/{user_id}", status_code=204, responses=_REFUSALS)
def remove_user(
    user_id: str,
    who: Annotated[Principal, Depends(require("users.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> Response:
    """Take the user out of the caller's tenant (their sessions here end); their account stays."""
    try:
        accounts.remove_user(svc.store, who.client_id, user_id, svc.clock(), who.actor)
    except AccountError as exc:
        raise _refused(exc) from None
    return Response(status_code=204)


@router.get("/session", response_model=SessionOut)
def whoami(who: Annotated[Principal, Depends(require("session.read"))]) -> SessionOut:
    """Who the caller is in which tenant, with the scopes held: a signed-in user, or an API key.

    Never the CSRF token nor any secret: a page has the token in its ``<meta name="csrf-token">``.
    """
    if who.user_id is not None:
        return SessionOut(
            client_id=who.client_id,
            scopes=list(who.scopes),
            user_id=who.user_id,
            email=who.email,
            role=who.role,
        )
    return SessionOut(client_id=who.client_id, scopes=list(who.scopes), key_id=who.key_id)
