"""``infragent users`` through typer's ``CliRunner`` on a temporary SQLite database (issue 12,
point 1: "the first admin created by ``infragent users create --admin``"). What is checked is what
the database holds afterwards, read back through the store, and the exit codes scripts rely on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from infragent.auth import accounts
from infragent.cli.main import main
from infragent.cli.users import users_app
from infragent.store import access, audit
from infragent.store.sql import SqlStore, open_store
from support.databases import create_client

PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'users.db'}"


def run(db: str, *args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(users_app, list(args), input=stdin, env={"INFRAGENT_DATABASE_URL": db})
    return result.exit_code, result.output


def _store(db: str) -> SqlStore:
    return open_store(db)


def test_create_admin_on_a_fresh_database_makes_the_first_admin_and_a_tenant(db: str) -> None:
    code, out = run(
        db,
        "create",
        "Root@Example.com",
        "--admin",
        "--company",
        "Initech",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, out
    store = _store(db)
    try:
        found = accounts.authenticate(store, "root@example.com", PASSWORD, 1.0)
        assert found is not None
        (membership,) = found.memberships
        assert membership.role == "admin"
        assert accounts.tenant_names(store, [membership.client_id]) == {membership.client_id: "Initech"}
    finally:
        store.close()


def test_users_join_the_only_tenant_and_set_role_adds_to_another(db: str) -> None:
    store = _store(db)
    first = create_client(store, "a@example.com", "Alpha", "http://127.0.0.1:9/h", now=1.0).client.id
    try:
        code, out = run(db, "create", "ann@example.com", "--admin", "--password-stdin", stdin=PASSWORD)
        assert code == 0, out
        code, out = run(
            db, "create", "bob@example.com", "--role", "operator", "--password-stdin", stdin=PASSWORD
        )
        assert code == 0, out
        assert {m.user.email: m.role for m in accounts.members(store, first)} == {
            "ann@example.com": "admin",
            "bob@example.com": "operator",
        }
        second = create_client(store, "b@example.com", "Beta", "http://127.0.0.1:9/h", now=2.0).client.id
        code, out = run(db, "create", "cat@example.com", "--password-stdin", stdin=PASSWORD)
        assert code == 2 and first in out and second in out  # which tenant? it lists them
        code, out = run(db, "set-role", "bob@example.com", "viewer", "--tenant", second)
        assert code == 0, out
        assert [m.role for m in accounts.members(store, second)] == ["viewer"]
        code, out = run(db, "list")
        assert code == 0 and "Alpha" in out and "Beta" in out and out.count("bob@example.com") == 2
        code, out = run(db, "list", "--tenant", second)
        assert "ann@example.com" not in out and "bob@example.com" in out
    finally:
        store.close()


def test_refusals_exit_1_with_the_reason(db: str) -> None:
    assert run(db, "create", "ann@example.com", "--admin", "--password-stdin", stdin=PASSWORD)[0] == 0
    code, out = run(db, "create", "ann@example.com", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    assert code == 1 and "already exists" in out
    code, out = run(db, "create", "bob@example.com", "--password-stdin", stdin="short")
    assert code == 1 and "at least 10" in out
    code, out = run(db, "create", "bob@example.com", "--role", "root", "--password-stdin", stdin=PASSWORD)
    assert code == 2 and "unknown role" in out
    code, out = run(db, "disable", "ann@example.com")
    assert code == 1 and "last enabled admin" in out
    code, out = run(db, "set-role", "ann@example.com", "viewer")
    assert code == 1 and "last admin" in out
    code, out = run(db, "reset-password", "nobody@example.com", "--password-stdin", stdin=PASSWORD)
    assert code == 1 and "no user" in out


def test_disable_and_reset_password(db: str) -> None:
    assert run(db, "create", "ann@example.com", "--admin", "--password-stdin", stdin=PASSWORD)[0] == 0
    assert run(db, "create", "bob@example.com", "--password-stdin", stdin=PASSWORD)[0] == 0
    store = _store(db)
    try:
        assert run(db, "disable", "bob@example.com")[0] == 0
        assert accounts.authenticate(store, "bob@example.com", PASSWORD, 1.0) is None
        assert run(db, "disable", "bob@example.com", "--enable")[0] == 0
        new = "a much better passphrase"
        code, out = run(db, "reset-password", "bob@example.com", "--password-stdin", stdin=new + "\n")
        assert code == 0, out
        assert accounts.authenticate(store, "bob@example.com", PASSWORD, 1.0) is None
        assert accounts.authenticate(store, "bob@example.com", new, 1.0) is not None
        (member,) = [m for m in accounts.members(store, _only(store)) if m.user.email == "bob@example.com"]
        with store.read() as conn:
            kinds = [e.kind for e in audit.entries(conn, _only(store), [member.user.id])]
            details = str([e.detail for e in audit.entries(conn, _only(store))])
        assert kinds == ["user.role", "user.disabled", "user.enabled", "user.password"]
        assert new not in details and PASSWORD not in details
    finally:
        store.close()


def test_no_terminal_and_no_password_stdin_is_a_usage_error(db: str) -> None:
    code, out = run(db, "create", "ann@example.com", "--admin")
    assert code == 2 and "--password-stdin" in out


def test_the_group_is_registered_on_the_main_cli(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["infragent", "users", "--help"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 0


def _only(store: SqlStore) -> str:
    with store.read() as conn:
        found = access.only_tenant(conn)
    assert found is not None
    return found
