"""Users and their roles per tenant (``memberships``): create, look up, change, disable.

Why users are global and roles per tenant: one person may help run several tenants (an agency, a
platform team) with a different role in each; the session names the tenant it acts in. Every change
is audited in the tenant it concerns, with the e-mail and role, never a password or its hash.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from infragent.errors import InfrAgentError
from infragent.store import audit
from infragent.store.records import MembershipRecord, UserRecord
from infragent.store.schema import memberships, sessions, users


class UserExistsError(InfrAgentError):
    """A user with this e-mail already exists: answered 409."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a user with the e-mail address {email!r} already exists")
        self.email = email


def _user(row: sa.Row[Any]) -> UserRecord:
    return UserRecord(
        row.id, row.email, row.name, row.password_hash, row.created_at, row.disabled_at, row.last_login_at
    )


def _membership(row: sa.Row[Any]) -> MembershipRecord:
    return MembershipRecord(row.user_id, row.client_id, row.role, row.created_at)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def count_users(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())


def create_user(
    conn: sa.Connection,
    *,
    email: str,
    name: str,
    password_hash: str,
    client_id: str,
    role: str,
    now: float,
    actor: str,
) -> UserRecord:
    """A new user with ``role`` in ``client_id``. Raises ``UserExistsError`` on a taken e-mail."""
    address = normalize_email(email)
    if conn.execute(sa.select(users.c.id).where(users.c.email == address)).first() is not None:
        raise UserExistsError(address)
    user = UserRecord(str(uuid.uuid4()), address, name, password_hash, now)
    conn.execute(
        users.insert().values(
            id=user.id, email=address, name=name, password_hash=password_hash, created_at=now
        )
    )
    set_role(conn, user.id, client_id, role, now, actor)
    return user


def get_user(conn: sa.Connection, user_id: str) -> UserRecord | None:
    row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
    return _user(row) if row else None


def user_by_email(conn: sa.Connection, email: str) -> UserRecord | None:
    row = conn.execute(sa.select(users).where(users.c.email == normalize_email(email))).first()
    return _user(row) if row else None


def membership(conn: sa.Connection, user_id: str, client_id: str) -> MembershipRecord | None:
    row = conn.execute(
        sa.select(memberships).where(memberships.c.user_id == user_id, memberships.c.client_id == client_id)
    ).first()
    return _membership(row) if row else None


def memberships_of(conn: sa.Connection, user_id: str) -> list[MembershipRecord]:
    rows = conn.execute(
        sa.select(memberships).where(memberships.c.user_id == user_id).order_by(memberships.c.created_at)
    )
    return [_membership(r) for r in rows]


def tenant_users(conn: sa.Connection, client_id: str) -> list[tuple[UserRecord, str]]:
    """The tenant's users with their role there, by e-mail."""
    rows = conn.execute(
        sa.select(users, memberships.c.role)
        .join(memberships, memberships.c.user_id == users.c.id)
        .where(memberships.c.client_id == client_id)
        .order_by(users.c.email)
    )
    return [(_user(r), r.role) for r in rows]


def set_role(conn: sa.Connection, user_id: str, client_id: str, role: str, now: float, actor: str) -> None:
    """Give ``user_id`` ``role`` in ``client_id`` (added, or changed), audited in that tenant."""
    owned = sa.and_(memberships.c.user_id == user_id, memberships.c.client_id == client_id)
    if conn.execute(sa.select(memberships.c.role).where(owned)).first() is None:
        conn.execute(
            memberships.insert().values(user_id=user_id, client_id=client_id, role=role, created_at=now)
        )
    else:
        conn.execute(memberships.update().where(owned).values(role=role))
    email = conn.execute(sa.select(users.c.email).where(users.c.id == user_id)).scalar_one()
    audit.append(conn, client_id, actor, "user.role", user_id, {"email": email, "role": role}, now)


def remove_member(conn: sa.Connection, user_id: str, client_id: str, now: float, actor: str) -> bool:
    """Take ``user_id`` out of ``client_id`` and end their sessions there; False when not a member."""
    owned = sa.and_(memberships.c.user_id == user_id, memberships.c.client_id == client_id)
    if conn.execute(memberships.delete().where(owned)).rowcount == 0:
        return False
    conn.execute(
        sessions.update()
        .where(sessions.c.user_id == user_id, sessions.c.client_id == client_id)
        .where(sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    audit.append(conn, client_id, actor, "user.removed", user_id, {}, now)
    return True


def admins_of(conn: sa.Connection, client_id: str) -> int:
    """How many enabled admins the tenant has (the last one may not be demoted or removed)."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(memberships.join(users, users.c.id == memberships.c.user_id))
            .where(memberships.c.client_id == client_id, memberships.c.role == "admin")
            .where(users.c.disabled_at.is_(None))
        ).scalar_one()
    )


def set_password(conn: sa.Connection, user_id: str, password_hash: str) -> None:
    conn.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash))


def set_disabled(conn: sa.Connection, user_id: str, disabled_at: float | None) -> None:
    """Disable (a time) or enable (None) a user; disabling ends every session of theirs."""
    conn.execute(users.update().where(users.c.id == user_id).values(disabled_at=disabled_at))
    if disabled_at is not None:
        conn.execute(
            sessions.update()
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=disabled_at)
        )


def record_login(conn: sa.Connection, user_id: str, now: float) -> None:
    conn.execute(users.update().where(users.c.id == user_id).values(last_login_at=now))
