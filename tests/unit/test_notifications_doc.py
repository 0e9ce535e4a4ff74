"""The examples of docs/notifications.md work: the webhook verification snippet verifies what the
server signs and refuses what it did not; every channel example is a valid channel of its kind; the
complete route tree parses and routes the incidents the page walks through where the page says;
every link leads to a page and heading that exist.

Why: a reader copies these blocks into a receiver or a ``curl``; a snippet that drifted from the
code would make every notification look forged, or a documented tree a 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infragent.notify.config import DEFAULT_TIMINGS, parse_channel, parse_route_tree
from infragent.notify.model import CHANNEL_KINDS
from infragent.notify.render import preview, validate_template
from infragent.notify.route import match_routes
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


def _channel_bodies() -> list[dict[str, Any]]:
    """The JSON bodies of the page's ``curl … /notify/channels -d '{…}'`` examples."""
    bodies = []
    for block in _blocks("sh"):
        for command in re.split(r"\n(?=curl )", block):
            if '/api/v1/notify/channels"' in command and " -d '" in command:
                bodies.append(json.loads(command.split(" -d '", 1)[1].split("'", 1)[0]))
    return bodies


def test_every_channel_example_is_a_valid_channel_of_its_kind() -> None:
    bodies = _channel_bodies()
    assert {b["kind"] for b in bodies} == set(CHANNEL_KINDS)
    for body in bodies:
        parse_channel(body["kind"], body.get("settings", {}), body.get("secrets", {}))


def _yaml_block(first_line: str) -> Any:
    (block,) = [b for b in _blocks("yaml") if b.startswith(first_line)]
    return yaml.safe_load(block)


def test_the_complete_routing_example_routes_as_the_page_says() -> None:
    doc = _yaml_block("receivers: [ops-slack]")
    names = {"ops-slack", "pager", "cto-mail", "dba-slack", "dev-discord"}
    root = parse_route_tree(doc, DEFAULT_TIMINGS, channel_names=names)

    def reached(**labels: str) -> list[str]:
        return [m.route_id for m in match_routes(root, labels)]

    assert reached(severity="critical", host="web-1", alertname="HighCpu") == ["critical"]
    assert reached(severity="warning", service="postgres", env="dev") == ["databases", "dev"]
    assert reached(severity="warning", service="postgres", env="prod") == ["databases"]
    assert reached(severity="warning", host="web-1") == ["root"]
    (critical,) = match_routes(root, {"severity": "critical"})
    assert (critical.group_wait_s, critical.group_by) == (10.0, ("alertname", "host"))
    assert critical.receivers == ("pager", "ops-slack")


@pytest.mark.parametrize("first_line", ["mute_times:", "escalation:"])
def test_the_routing_snippets_parse(first_line: str) -> None:
    doc = _yaml_block(first_line)
    root = parse_route_tree(doc, DEFAULT_TIMINGS, channel_names={"pager", "cto-mail"})
    assert root.mute_times or root.escalation


def test_the_template_example_is_a_valid_route_template() -> None:
    (route,) = _yaml_block("routes:\n  - id: prod")["routes"]
    for source in route["template"].values():
        assert validate_template(source) is None
    message = preview("email", route["template"], 1_750_000_000.0)
    assert message.title.endswith("[prod]") and "(template error" not in message.text


def test_the_sample_text_is_what_the_default_templates_render() -> None:
    (sample,) = [b for b in _blocks("text") if b.startswith("[FIRING:2]")]
    message = preview("webhook", {}, 1_750_000_000.0)
    assert f"{message.title}\n{message.text}\n" == sample
