"""People and their access: the first admin, adding users, roles, disabling, passwords, sign-in.

Why a service over the store rather than store calls in each route: the API, the pages and the CLI
all change users, and the rules must be the same for each of them: a password meets
``passwords.problem``; a role is one of ``scopes.ALL_ROLES``; the tenant keeps at least one enabled
admin (nobody can lock a tenant out of its own users and keys); the first admin exists only while
no user does. Each change is one transaction and is audited in the tenant it concerns, naming the
e-mail and role, never a password or its hash (``store/users.py``).

Refusals are ``AccountError``s carrying the HTTP ``status`` they are answered with, so the API, the
pages and the CLI word and code them alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from infragent.auth import passwords, scopes
from infragent.auth.registration import register_client
from infragent.errors import InfrAgentError
from infragent.store import access, audit, users
from infragent.store.base import Database
from infragent.store.records import MembershipRecord, UserRecord

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_EMAIL: Final = 320
MAX_NAME: Final = 200
#: The audit actor of the first-run setup (nobody is signed in yet).
SETUP_ACTOR: Final = "setup"


class AccountError(InfrAgentError):
    """A change to users refused as asked; ``status`` is its HTTP answer.

    Why one base with a status: the API answers it as JSON, the pages show it inline and the CLI
    prints it, each with the one reason written here.
    """

    status = 422

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SetupDoneError(AccountError):
    """First-run setup asked for while a user exists: the setup page is gone (404)."""

    status = 404


class LastAdminError(AccountError):
    """The change would leave the tenant without an enabled admin: 409."""

    status = 409


class SharedUserError(AccountError):
    """Disabling a user who belongs to other tenants too, asked by one tenant's admin: 409."""

    status = 409


class NotMemberError(AccountError):
    """No such user in this tenant: 404, the same as a user of another tenant."""

    status = 404


@dataclass(frozen=True, slots=True)
class SignIn:
    """A user whose password matched, with the tenants they may act in (at least one)."""

    user: UserRecord
    memberships: list[MembershipRecord]


@dataclass(frozen=True, slots=True)
class Member:
    """A user as a tenant's admin sees them: the user and their role in that tenant."""

    user: UserRecord
    role: str


def check_email(email: str) -> str:
    """The address normalized (trimmed, lower-case), or ``AccountError`` saying what is wrong."""
    address = users.normalize_email(email)
    if len(address) > MAX_EMAIL or not _EMAIL.match(address):
        raise AccountError("not an e-mail address")
    return address


def check_password(password: str) -> None:
    problem = passwords.problem(password)
    if problem:
        raise AccountError(problem)


def check_role(role: str) -> str:
    if role not in scopes.ALL_ROLES:
        raise AccountError(f"unknown role {role!r}: choose from {', '.join(scopes.ALL_ROLES)}")
    return role


def _name(name: str, address: str) -> str:
    shown = name.strip() or address.split("@")[0]
    if len(shown) > MAX_NAME:
        raise AccountError(f"the name must be at most {MAX_NAME} characters long")
    return shown


def create_first_admin(
    db: Database, email: str, name: str, password: str, company_name: str, now: float
) -> tuple[UserRecord, str]:
    """The first user of the server, admin of a tenant: (the user, the tenant's id).

    The admin joins the server's one tenant when exactly one exists (``infragent up`` made one for
    this machine); with none or several, a new tenant named ``company_name`` is registered for them
    with no webhook URL (its agents poll for commands; docs/security.md "Users and roles").
    Raises ``SetupDoneError`` once any user exists, and ``AccountError`` on a bad field.
    """
    address = check_email(email)
    shown = _name(name, address)
    check_password(password)
    with db.read() as conn:
        if users.count_users(conn) > 0:
            raise SetupDoneError("first-run setup is over: a user already exists; sign in instead")
        client_id = access.only_tenant(conn)
    if client_id is None:
        company = company_name.strip() or shown
        client_id = register_client(db, address, company[:200], "", now).client.id
    password_hash = passwords.hash_password(password)  # slow: outside the transaction
    with db.write() as conn:
        access.lock_setup(conn)
        if users.count_users(conn) > 0:  # another setup won the race
            raise SetupDoneError("first-run setup is over: a user already exists; sign in instead")
        user = users.create_user(
            conn,
            email=address,
            name=shown,
            password_hash=password_hash,
            client_id=client_id,
            role="admin",
            now=now,
            actor=SETUP_ACTOR,
        )
    return user, client_id


def add_user(
    db: Database,
    client_id: str,
    email: str,
    name: str,
    password: str,
    role: str,
    now: float,
    actor: str,
) -> UserRecord:
    """A new user with ``role`` in ``client_id``.

    Raises ``UserExistsError`` (409) when the e-mail is taken, ``AccountError`` (422) on a bad field.
    """
    address = check_email(email)
    shown = _name(name, address)
    check_role(role)
    check_password(password)
    password_hash = passwords.hash_password(password)
    with db.write() as conn:
        return users.create_user(
            conn,
            email=address,
            name=shown,
            password_hash=password_hash,
            client_id=client_id,
            role=role,
            now=now,
            actor=actor,
        )


def members(db: Database, client_id: str) -> list[Member]:
    """The tenant's users with their role there, by e-mail."""
    with db.read() as conn:
        return [Member(user, role) for user, role in users.tenant_users(conn, client_id)]


def member(db: Database, client_id: str, user_id: str) -> Member:
    """One user of the tenant; ``NotMemberError`` when they have no role there."""
    with db.read() as conn:
        found = users.membership(conn, user_id, client_id)
        user = users.get_user(conn, user_id) if found else None
    if found is None or user is None:
        raise NotMemberError("no such user in this tenant")
    return Member(user, found.role)


def _keeps_an_admin(enabled_admins: int, target_is_enabled_admin: bool) -> None:
    if target_is_enabled_admin and enabled_admins <= 1:
        raise LastAdminError("the tenant's last admin cannot be demoted, disabled or removed")


def change_role(db: Database, client_id: str, user_id: str, role: str, now: float, actor: str) -> None:
    """Give a member of ``client_id`` another role; refuses demoting the last enabled admin (409)."""
    check_role(role)
    with db.write() as conn:
        audit.lock_tenant(conn, client_id)  # two admins demoting each other at once: one wins
        current = users.membership(conn, user_id, client_id)
        user = users.get_user(conn, user_id)
        if current is None or user is None:
            raise NotMemberError("no such user in this tenant")
        if current.role == role:
            return
        if role != "admin":
            _keeps_an_admin(users.admins_of(conn, client_id), current.role == "admin" and not user.disabled)
        users.set_role(conn, user_id, client_id, role, now, actor)


def grant_role(db: Database, client_id: str, email: str, role: str, now: float, actor: str) -> UserRecord:
    """Give the user with ``email`` ``role`` in ``client_id``, adding them to it when they are not
    a member yet (how one person comes to work in two tenants: ``infragent users set-role``).
    Demoting the tenant's last enabled admin is refused (409)."""
    check_role(role)
    with db.read() as conn:
        user = users.user_by_email(conn, email)
    if user is None:
        raise NotMemberError(f"no user has the e-mail address {users.normalize_email(email)!r}")
    with db.write() as conn:
        audit.lock_tenant(conn, client_id)
        current = users.membership(conn, user.id, client_id)
        if current is not None and current.role == role:
            return user
        if current is not None and role != "admin":
            _keeps_an_admin(users.admins_of(conn, client_id), current.role == "admin" and not user.disabled)
        users.set_role(conn, user.id, client_id, role, now, actor)
    return user


def remove_user(db: Database, client_id: str, user_id: str, now: float, actor: str) -> None:
    """Take a user out of ``client_id`` (their sessions there end); the last admin stays (409)."""
    with db.write() as conn:
        audit.lock_tenant(conn, client_id)
        current = users.membership(conn, user_id, client_id)
        user = users.get_user(conn, user_id)
        if current is None or user is None:
            raise NotMemberError("no such user in this tenant")
        _keeps_an_admin(users.admins_of(conn, client_id), current.role == "admin" and not user.disabled)
        users.remove_member(conn, user_id, client_id, now, actor)


def set_disabled(
    db: Database,
    client_id: str,
    user_id: str,
    disabled: bool,
    now: float,
    actor: str,
    *,
    anywhere: bool = False,
) -> None:
    """Disable (every session ends) or enable a member of ``client_id``.

    Why refused (409) for a user who is in other tenants too, unless ``anywhere`` (the CLI, run by
    whoever runs the server): disabling reaches every tenant of theirs, and one tenant's admin must
    not lock a person out of another's; they can remove the user from their own tenant instead.
    """
    with db.write() as conn:
        audit.lock_tenant(conn, client_id)
        current = users.membership(conn, user_id, client_id)
        user = users.get_user(conn, user_id)
        if current is None or user is None:
            raise NotMemberError("no such user in this tenant")
        if user.disabled == disabled:
            return
        if disabled:
            if not anywhere and access.tenant_count(conn, user_id) > 1:
                raise SharedUserError(
                    "this user belongs to other tenants too; remove them from this tenant instead"
                )
            _keeps_an_admin(users.admins_of(conn, client_id), current.role == "admin")
        users.set_disabled(conn, user_id, now if disabled else None)
        kind = "user.disabled" if disabled else "user.enabled"
        audit.append(conn, client_id, actor, kind, user_id, {"email": user.email}, now)


def _by_email(found: UserRecord | None, email: str) -> UserRecord:
    if found is None:
        raise NotMemberError(f"no user has the e-mail address {users.normalize_email(email)!r}")
    return found


def reset_password(db: Database, email: str, password: str, now: float, actor: str) -> UserRecord:
    """Set a user's password and end their sessions (whoever held one must sign in with the new
    password); audited in each of their tenants, without the password."""
    check_password(password)
    password_hash = passwords.hash_password(password)
    with db.write() as conn:
        user = _by_email(users.user_by_email(conn, email), email)
        users.set_password(conn, user.id, password_hash)
        access.end_sessions(conn, user.id, now)
        for held in users.memberships_of(conn, user.id):
            audit.append(conn, held.client_id, actor, "user.password", user.id, {"email": user.email}, now)
    return user


def disable_everywhere(db: Database, email: str, disabled: bool, now: float, actor: str) -> UserRecord:
    """Disable (every session ends) or enable a user in all their tenants: what the server's own
    operator may do (``infragent users disable``). Refused (409) when they are the last enabled
    admin of a tenant: make another admin there first."""
    with db.write() as conn:
        user = _by_email(users.user_by_email(conn, email), email)
        if user.disabled == disabled:
            return user
        held = users.memberships_of(conn, user.id)
        for m in held:
            audit.lock_tenant(conn, m.client_id)
            if disabled and m.role == "admin" and users.admins_of(conn, m.client_id) <= 1:
                raise LastAdminError(f"{user.email} is the last enabled admin of tenant {m.client_id}")
        users.set_disabled(conn, user.id, now if disabled else None)
        kind = "user.disabled" if disabled else "user.enabled"
        for m in held:
            audit.append(conn, m.client_id, actor, kind, user.id, {"email": user.email}, now)
    return user


def authenticate(db: Database, email: str, password: str, now: float) -> SignIn | None:
    """The user whose e-mail and password these are, with their tenants; None otherwise.

    Why one None for every failure (unknown e-mail, wrong password, disabled, in no tenant) and a
    full password check even without a user: the sign-in page must not tell anyone which addresses
    have accounts, neither by its words nor by its timing. A hash made with older parameters is
    replaced by one with today's (``passwords.needs_rehash``).
    """
    address = users.normalize_email(email)
    with db.read() as conn:
        user = users.user_by_email(conn, address) if len(address) <= MAX_EMAIL else None
    if not passwords.verify(user.password_hash if user else None, password) or user is None:
        return None
    if user.disabled:
        return None
    rehashed = passwords.hash_password(password) if passwords.needs_rehash(user.password_hash) else None
    with db.write() as conn:
        held = users.memberships_of(conn, user.id)
        if not held:
            return None
        if rehashed is not None:
            users.set_password(conn, user.id, rehashed)
        users.record_login(conn, user.id, now)
    return SignIn(user, held)


def record_sign_in(db: Database, user_id: str, now: float) -> None:
    """Note a sign-in made without ``authenticate`` (the first-run setup signs its admin in)."""
    with db.write() as conn:
        users.record_login(conn, user_id, now)


def tenant_names(db: Database, client_ids: list[str]) -> dict[str, str]:
    """client id → company name, for choosing a tenant at sign-in."""
    with db.read() as conn:
        return access.tenant_names(conn, client_ids)


def user_count(db: Database) -> int:
    with db.read() as conn:
        return users.count_users(conn)
