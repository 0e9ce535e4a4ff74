"""``auth/scopes.py``, the one table of which scope each operation needs: table-driven, no I/O."""

from __future__ import annotations

import pytest

from infragent.auth import scopes
from infragent.auth.scopes import ScopeError


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (("ingest",), "ingest", True),
        (("ingest",), "read", False),
        (("ingest",), "admin", False),
        (("read",), "ingest", False),
        (("read", "ingest"), "read", True),
        (("operate",), "read", False),
        (("admin",), "ingest", True),  # admin implies every scope
        (("admin",), "read", True),
        (("admin",), "operate", True),
        (("ingest", "read", "admin"), "read", True),  # keys stored before scopes mattered
        ((), "read", False),
    ],
)
def test_allows(held: tuple[str, ...], needed: scopes.Scope, allowed: bool) -> None:
    assert scopes.allows(held, needed) is allowed


def test_every_operation_needs_a_known_scope() -> None:
    assert set(scopes.OPERATIONS.values()) <= set(scopes.ALL_SCOPES)
    assert scopes.ALL_SCOPES == ("ingest", "read", "operate", "admin")


def test_the_keys_we_hand_out() -> None:
    assert scopes.REGISTRATION_SCOPES == ("admin",)
    assert scopes.AGENT_SCOPES == scopes.SDK_SCOPES == ("ingest",)


def test_check_names_the_missing_scope() -> None:
    scopes.check(("read",), "events.read")
    with pytest.raises(ScopeError) as err:
        scopes.check(("ingest",), "events.read")
    assert err.value.required_scope == "read" and err.value.operation == "events.read"
    assert "'read'" in str(err.value)
    with pytest.raises(KeyError):
        scopes.required("no.such.operation")


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (["ingest"], None),
        (["ingest", "read"], None),
        ([], "at least one scope"),
        (["root"], "unknown scope(s) 'root'"),
        (["read", "read"], "listed twice"),
    ],
)
def test_problems(given: list[str], problem: str | None) -> None:
    found = scopes.problems(given)
    assert found == problem if problem is None else (found is not None and problem in found)
