"""Password hashing and the password rule (``auth/passwords.py``): argon2id, verified in equal time
for unknown users, re-hashed when the parameters change."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from infragent.auth import passwords


def test_a_hash_is_argon2id_salted_and_verifies_only_its_password() -> None:
    first = passwords.hash_password("correct horse battery")
    second = passwords.hash_password("correct horse battery")
    assert first.startswith("$argon2id$") and first != second  # a fresh salt each time
    assert passwords.verify(first, "correct horse battery")
    assert not passwords.verify(first, "correct horse batterY")
    assert not passwords.verify(first, "")


@pytest.mark.parametrize("stored", [None, "", "not-a-hash", "$argon2id$v=19$broken"])
def test_no_hash_or_a_broken_one_never_verifies(stored: str | None) -> None:
    assert not passwords.verify(stored, "correct horse battery")


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("", False),
        ("x" * 9, False),
        ("x" * 10, True),
        ("ünïcödé pass", True),
        ("x" * 1024, True),
        ("x" * 1025, False),
    ],
)
def test_the_password_rule(password: str, ok: bool) -> None:
    assert (passwords.problem(password) is None) is ok


def test_a_hash_with_weaker_parameters_needs_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash("correct horse battery")
    assert passwords.verify(weak, "correct horse battery")
    assert passwords.needs_rehash(weak)
    assert not passwords.needs_rehash(passwords.hash_password("correct horse battery"))
