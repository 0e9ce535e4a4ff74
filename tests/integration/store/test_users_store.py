"""Users, memberships and sessions in the store, on SQLite and PostgreSQL (``store/users.py``,
``store/access.py``, ``store/sessions.py``), and the rules ``auth/accounts.py`` keeps over them."""

from __future__ import annotations

import pytest

from infragent.auth import accounts, passwords
from infragent.auth.accounts import AccountError, LastAdminError, NotMemberError, SetupDoneError
from infragent.store import access, audit, sessions, users
from infragent.store.sql import SqlStore
from support.databases import create_client

HASH = passwords.hash_password("correct horse battery")


def _client(store: SqlStore, email: str = "a@example.com", company: str = "Alpha") -> str:
    return create_client(store, email, company, "http://127.0.0.1:9/h", now=1.0).client.id


def test_users_are_unique_by_lower_cased_email_and_roles_are_per_tenant(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    with store.write() as conn:
        ann = users.create_user(
            conn,
            email=" Ann@Example.COM ",
            name="Ann",
            password_hash=HASH,
            client_id=alpha,
            role="admin",
            now=2.0,
            actor="t",
        )
        with pytest.raises(users.UserExistsError):
            users.create_user(
                conn,
                email="ann@example.com",
                name="x",
                password_hash=HASH,
                client_id=beta,
                role="viewer",
                now=2.0,
                actor="t",
            )
    with store.write() as conn:
        users.set_role(conn, ann.id, beta, "viewer", 3.0, "t")
        assert users.user_by_email(conn, "ANN@example.com") == ann
        assert [(m.client_id, m.role) for m in users.memberships_of(conn, ann.id)] == [
            (alpha, "admin"),
            (beta, "viewer"),
        ]
        assert access.tenant_count(conn, ann.id) == 2
        assert access.tenant_names(conn, [alpha, beta]) == {alpha: "Alpha", beta: "Beta"}
        assert access.only_tenant(conn) is None
        assert [name for _id, name in access.tenants(conn)] == ["Alpha", "Beta"]
        assert (
            users.count_users(conn) == 1
            and users.admins_of(conn, alpha) == 1
            and users.admins_of(conn, beta) == 0
        )
        entries = audit.entries(conn, beta, [ann.id])
    assert [(e.kind, e.detail) for e in entries] == [
        ("user.role", {"email": "ann@example.com", "role": "viewer"})
    ]


def test_removing_or_disabling_a_user_ends_their_sessions(store: SqlStore) -> None:
    alpha, beta = _client(store), _client(store, "b@example.com", "Beta")
    user = accounts.add_user(
        store, alpha, "bob@example.com", "Bob", "correct horse battery", "operator", 2.0, "t"
    )
    accounts.grant_role(store, beta, "bob@example.com", "viewer", 2.0, "t")
    with store.write() as conn:
        for sid, client in (("s-alpha", alpha), ("s-beta", beta)):
            sessions.create_session(
                conn,
                session_id=sid,
                user_id=user.id,
                client_id=client,
                csrf_token="c",
                now=3.0,
                ttl_s=100.0,
                ip="127.0.0.1",
                user_agent="t",
            )
    accounts.remove_user(store, alpha, user.id, 4.0, "t")
    with store.read() as conn:
        a, b = sessions.get_session(conn, "s-alpha"), sessions.get_session(conn, "s-beta")
    assert a is not None and not a.live(5.0)
    assert b is not None and b.live(5.0)  # another tenant's session lives on
    accounts.set_disabled(store, beta, user.id, True, 6.0, "t")
    with store.read() as conn:
        b = sessions.get_session(conn, "s-beta")
    assert b is not None and not b.live(7.0)


def test_the_first_admin_only_while_no_user_exists(store: SqlStore) -> None:
    alpha = _client(store)
    user, client_id = accounts.create_first_admin(
        store, "root@example.com", "", "correct horse battery", "", 1.0
    )
    assert client_id == alpha and user.name == "root"
    with pytest.raises(SetupDoneError):
        accounts.create_first_admin(store, "eve@example.com", "", "correct horse battery", "", 2.0)


def test_account_rules(store: SqlStore) -> None:
    alpha = _client(store)
    admin = accounts.add_user(store, alpha, "ann@example.com", "", "correct horse battery", "admin", 1.0, "t")
    for bad in (
        ("not-an-email", "correct horse battery", "viewer"),
        ("b@example.com", "short", "viewer"),
        ("b@example.com", "correct horse battery", "root"),
    ):
        with pytest.raises(AccountError) as refused:
            accounts.add_user(store, alpha, bad[0], "", bad[1], bad[2], 1.0, "t")
        assert refused.value.status == 422
    with pytest.raises(LastAdminError):
        accounts.change_role(store, alpha, admin.id, "viewer", 2.0, "t")
    with pytest.raises(LastAdminError):
        accounts.remove_user(store, alpha, admin.id, 2.0, "t")
    with pytest.raises(NotMemberError):
        accounts.change_role(store, alpha, "no-such-user", "viewer", 2.0, "t")
    other = accounts.add_user(store, alpha, "bob@example.com", "", "correct horse battery", "admin", 1.0, "t")
    accounts.set_disabled(store, alpha, other.id, True, 3.0, "t")  # a disabled admin does not count
    with pytest.raises(LastAdminError):
        accounts.change_role(store, alpha, admin.id, "operator", 4.0, "t")


def test_authenticate_records_the_sign_in_and_refuses_alike(store: SqlStore) -> None:
    alpha = _client(store)
    user = accounts.add_user(store, alpha, "ann@example.com", "", "correct horse battery", "viewer", 1.0, "t")
    found = accounts.authenticate(store, " ANN@example.com", "correct horse battery", 5.0)
    assert (
        found is not None and found.user.id == user.id and [m.role for m in found.memberships] == ["viewer"]
    )
    assert accounts.member(store, alpha, user.id).user.last_login_at == 5.0
    assert accounts.authenticate(store, "ann@example.com", "wrong password!", 6.0) is None
    assert accounts.authenticate(store, "nobody@example.com", "correct horse battery", 6.0) is None
    accounts.remove_user(store, alpha, user.id, 7.0, "t")
    assert accounts.authenticate(store, "ann@example.com", "correct horse battery", 8.0) is None  # no tenant
