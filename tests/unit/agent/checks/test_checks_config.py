"""Check definitions: defaults, and errors that name the check and the field."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from infragent.agent.checks import CommandCheck, HttpCheck, ProcessCheck, parse_check, parse_checks
from infragent.errors import ConfigError


def test_defaults() -> None:
    check = parse_check({"type": "http", "name": "web", "url": "http://127.0.0.1:8080/health"})
    assert isinstance(check, HttpCheck)
    assert (check.interval_s, check.timeout_s, check.failures_before_down, check.successes_before_up) == (
        30.0,
        5.0,
        3,
        1,
    )
    assert check.method == "GET"
    assert check.expect_status == ((200, 399),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(200, ((200, 200),)), ("200-299,404", ((200, 299), (404, 404))), ([200, 204], ((200, 200), (204, 204)))],
)
def test_expect_status_forms(value: object, expected: object) -> None:
    raw = {"type": "http", "name": "web", "url": "https://example.test", "expect_status": value}
    assert parse_check(raw).expect_status == expected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"type": "http", "name": "web"}, "checks[0] (web).url", "Field required"),
        ({"type": "http", "name": "web", "url": "ftp://x"}, "checks[0] (web).url", "http:// or https://"),
        (
            {"type": "http", "name": "web", "url": "http://x", "body_regex": "("},
            "checks[0] (web).body_regex",
            "regular",
        ),
        (
            {"type": "http", "name": "web", "url": "http://x", "expect_status": "700"},
            "checks[0] (web).expect_status",
            "100-599",
        ),
        ({"type": "tcp", "name": "db", "host": "127.0.0.1", "port": 70000}, "checks[0] (db).port", "65535"),
        ({"type": "process", "name": "p"}, "checks[0] (p)", "exactly one of process_name or pidfile"),
        ({"type": "command", "name": "c", "argv": []}, "checks[0] (c).argv", "at least 1"),
        ({"type": "systemd", "name": "s", "unit": "a b"}, "checks[0] (s).unit", "pattern"),
        ({"type": "smtp", "name": "m"}, "checks[0] (m).type", "must be one of"),
        (
            {"type": "tcp", "name": "db", "host": "h", "port": 1, "interval": 5},
            "checks[0] (db).interval",
            "Extra",
        ),
        (
            {"type": "tcp", "name": "db", "host": "h", "port": 1, "failures_before_down": 0},
            "checks[0] (db).failures_before_down",
            "greater",
        ),
    ],
)
def test_errors_name_check_and_field(raw: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_checks([raw])
    assert caught.value.key == key
    assert message in caught.value.message


def test_duplicate_names_are_rejected() -> None:
    raw = {"type": "tcp", "name": "db", "host": "127.0.0.1", "port": 5432}
    with pytest.raises(ConfigError, match=r"checks\[1\] \(db\)\.name: duplicate"):
        parse_checks([raw, raw])


def test_every_type_parses() -> None:
    checks = parse_checks(
        [
            {"type": "http", "name": "a", "url": "http://x"},
            {"type": "tcp", "name": "b", "host": "x", "port": 1},
            {"type": "process", "name": "c", "pidfile": "/run/x.pid"},
            {"type": "systemd", "name": "d", "unit": "nginx.service"},
            {"type": "command", "name": "e", "argv": ["true"], "timeout_s": 1},
        ]
    )
    assert [c.type for c in checks] == ["http", "tcp", "process", "systemd", "command"]
    assert isinstance(checks[2], ProcessCheck) and isinstance(checks[4], CommandCheck)
    with pytest.raises(dataclasses.FrozenInstanceError, match="name"):
        checks[0].name = "other"
