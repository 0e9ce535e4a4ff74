"""The redactor, table-driven from ``redact_cases.yaml``: what goes, what stays, and that it is stable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.redact import MASK, is_sensitive_key, redact, redact_value

CASES: dict[str, list[dict[str, Any]]] = yaml.safe_load(
    (Path(__file__).parent / "redact_cases.yaml").read_text()
)


@pytest.mark.parametrize("case", CASES["text"], ids=lambda c: c["name"])
def test_redact_text(case: dict[str, Any]) -> None:
    out = redact(case["text"])
    if "expect" in case:
        assert out == case["expect"]
    for secret in case.get("gone", []):
        assert secret not in out
    for context in case.get("kept", []):
        assert context in out
    if "count" in case:
        assert out.count(MASK) == case["count"]
    assert redact(out) == out  # stable: redacting twice masks nothing more


@pytest.mark.parametrize("case", CASES["value"], ids=lambda c: c["name"])
def test_redact_value(case: dict[str, Any]) -> None:
    out = redact_value(case["value"])
    assert out == case["expect"]
    assert redact_value(out) == out


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("dbpassword", True),
        ("client_secret", True),
        ("refresh_token", True),
        ("api_key", True),
        ("apiKey", True),
        ("X-Api-Key", True),
        ("AccountKey", True),
        ("private_key", True),
        ("Authorization", True),
        ("pwd", True),
        ("requirepass", True),
        ("masterauth", True),
        ("key", True),
        ("monkey", False),
        ("keyboard", False),
        ("passed", False),
        ("service", False),
        ("error", False),
    ],
)
def test_sensitive_key_names(name: str, sensitive: bool) -> None:
    assert is_sensitive_key(name) is sensitive
