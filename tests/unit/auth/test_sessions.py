"""Session cookies and CSRF tokens (``auth/sessions.py``): signed, expiring, tamper-evident, and the
database keeps only the token's hash."""

from __future__ import annotations

import time

import pytest

from infragent.auth import sessions


def test_a_signed_token_comes_back_with_the_same_key() -> None:
    key = sessions.new_signing_key()
    token = sessions.new_token()
    cookie = sessions.sign(token, key)
    assert token not in cookie.split(".")[1:]  # the value is not the bare token twice
    assert sessions.unsign(cookie, key, 3600) == token


def test_another_key_or_an_altered_cookie_is_refused() -> None:
    key = sessions.new_signing_key()
    cookie = sessions.sign(sessions.new_token(), key)
    assert sessions.unsign(cookie, sessions.new_signing_key(), 3600) is None
    flipped = cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    assert sessions.unsign(flipped, key, 3600) is None
    assert sessions.unsign("", key, 3600) is None
    assert sessions.unsign("garbage", key, 3600) is None


def test_an_old_cookie_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    key = sessions.new_signing_key()
    token = sessions.new_token()
    real = time.time()
    monkeypatch.setattr(time, "time", lambda: real - 7200)  # signed two hours ago
    cookie = sessions.sign(token, key)
    monkeypatch.setattr(time, "time", lambda: real)
    assert sessions.unsign(cookie, key, 3600) is None
    assert sessions.unsign(cookie, key, 3 * 3600) == token


def test_the_row_id_is_the_tokens_sha256_not_the_token() -> None:
    token = sessions.new_token()
    digest = sessions.token_hash(token)
    assert len(digest) == 64 and token not in digest
    assert digest == sessions.token_hash(token) != sessions.token_hash(sessions.new_token())


def test_csrf_comparison() -> None:
    expected = sessions.new_csrf()
    assert sessions.csrf_ok(expected, expected)
    assert not sessions.csrf_ok(expected, None)
    assert not sessions.csrf_ok(expected, "")
    assert not sessions.csrf_ok(expected, sessions.new_csrf())
    assert {"GET", "HEAD", "OPTIONS"} == set(sessions.SAFE_METHODS)
