"""The examples of docs/notifications.md work: the webhook verification snippet verifies what the
server signs and refuses what it did not.

Why: a reader copies these blocks into a receiver; a snippet that drifted from the signing code
would make every notification look forged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infragent.signing import new_secret, signed_headers

PAGE = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


def _verify_function() -> Callable[..., Any]:
    (snippet,) = [b for b in _blocks("python") if "def verify(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(PAGE), "exec"), namespace)
    verify: Callable[..., Any] = namespace["verify"]
    return verify


def test_the_documented_verifier_accepts_what_the_server_signs() -> None:
    verify = _verify_function()
    secret = new_secret()
    body = b'{"type": "infragent.notification", "id": "d-1"}'
    headers = signed_headers(secret, "d-1", body)
    assert verify(secret, headers, body) == "d-1"
    assert verify(secret, {k.title(): v for k, v in headers.items()}, body) == "d-1"


@pytest.mark.parametrize(
    "tamper",
    ["body", "secret", "id", "stale"],
)
def test_the_documented_verifier_refuses_what_the_server_did_not_sign(tamper: str) -> None:
    verify = _verify_function()
    secret = new_secret()
    body = b'{"id": "d-2"}'
    headers = signed_headers(secret, "d-2", body, now=None if tamper != "stale" else 1_000_000.0)
    if tamper == "body":
        body = b'{"id": "d-3"}'
    elif tamper == "secret":
        secret = new_secret()
    elif tamper == "id":
        headers["webhook-id"] = "d-3"
    with pytest.raises(ValueError, match=r"signature|timestamp"):
        verify(secret, headers, body)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_every_link_of_the_page_leads_somewhere() -> None:
    text = re.sub(r"```.*?```", "", PAGE.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        name, _, anchor = target.partition("#")
        page = PAGE if not name else PAGE.parent / name
        if not page.exists() or (anchor and anchor not in _anchors(page)):
            broken.append(target)
    assert broken == []
