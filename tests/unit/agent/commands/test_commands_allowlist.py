"""The local allowlist: config errors at load time, exact argv rendering, and every way to refuse."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from infragent.agent.allowlist import (
    Allowlist,
    ArgvCall,
    HttpCall,
    ProcessCall,
    RejectedError,
    parse_template,
)
from infragent.errors import ConfigError
from infragent.model import ActionSpec

UNIT = "[a-z0-9][a-z0-9@_-]{0,63}"

EXAMPLE: list[dict[str, Any]] = [
    {"name": "restart-nginx", "kind": "systemd", "op": "restart", "unit": "nginx.service"},
    {
        "name": "restart",
        "kind": "systemd",
        "op": "restart",
        "unit": "{unit}.service",
        "params": {"unit": UNIT},
    },
    {
        "name": "rotate-logs",
        "kind": "script",
        "path": "/usr/local/lib/infragent/rotate.sh",
        "args": ["--app={app}", "{note}"],
        "params": {"app": "[a-z]+", "note": "[a-z ]+"},
        "timeout_s": 60,
        "description": "rotate an app's logs",
    },
    {
        "name": "restart-worker",
        "kind": "process",
        "pidfile": "/run/{app}.pid",
        "stop_signal": "SIGINT",
        "start": ["/usr/local/bin/worker", "--app", "{app}"],
        "params": {"app": "[a-z]+"},
    },
    {
        "name": "flush",
        "kind": "http",
        "url": "http://127.0.0.1:8080/admin/flush/{key}",
        "params": {"key": "[a-z./]+"},
    },
]


@pytest.fixture
def allowlist() -> Allowlist:
    return Allowlist.from_config(EXAMPLE)


def test_specs_report_names_patterns_and_descriptions(allowlist: Allowlist) -> None:
    specs = allowlist.specs()
    assert [s.name for s in specs] == ["restart-nginx", "restart", "rotate-logs", "restart-worker", "flush"]
    assert specs[1] == ActionSpec(
        name="restart", params={"unit": UNIT}, description="systemctl restart {unit}.service"
    )
    assert specs[2].description == "rotate an app's logs"
    assert Allowlist.from_config(None).specs() == []


def test_systemd_argv(allowlist: Allowlist) -> None:
    assert allowlist.render("restart-nginx", {}) == ArgvCall(
        "restart-nginx",
        "systemd",
        ("systemctl", "restart", "--no-ask-password", "--", "nginx.service"),
        30.0,
        65536,
    )
    call = allowlist.render("restart", {"unit": "php-fpm@www"})
    assert isinstance(call, ArgvCall)
    assert call.argv == ("systemctl", "restart", "--no-ask-password", "--", "php-fpm@www.service")


def test_script_params_fill_part_of_an_element_and_are_never_split(allowlist: Allowlist) -> None:
    call = allowlist.render("rotate-logs", {"app": "shop", "note": "a b  c"})
    assert isinstance(call, ArgvCall)
    assert call.argv == ("/usr/local/lib/infragent/rotate.sh", "--app=shop", "a b  c")
    assert call.timeout_s == 60


def test_process_call(allowlist: Allowlist) -> None:
    call = allowlist.render("restart-worker", {"app": "billing"})
    assert call == ProcessCall(
        action="restart-worker",
        pidfile="/run/billing.pid",
        match=None,
        stop_signal=signal.SIGINT,
        stop_timeout_s=10.0,
        start=("/usr/local/bin/worker", "--app", "billing"),
        start_grace_s=1.0,
        timeout_s=30.0,
        output_cap_bytes=65536,
    )


def test_http_params_are_percent_encoded_so_they_cannot_reshape_the_url(allowlist: Allowlist) -> None:
    call = allowlist.render("flush", {"key": "../../x"})
    assert call == HttpCall("flush", "POST", "http://127.0.0.1:8080/admin/flush/..%2F..%2Fx", 30.0, 65536)


@pytest.mark.parametrize(
    ("action", "params", "why"),
    [
        ("rm", {}, "not in this agent's allowlist"),
        ("restart", {}, "required"),
        ("restart", {"unit": "nginx", "extra": "x"}, "not declared"),
        ("restart", {"unit": "nginx; rm -rf /"}, "does not match"),
        ("restart", {"unit": "$(id)"}, "does not match"),
        ("restart", {"unit": "a b"}, "does not match"),
        ("restart", {"unit": "nginx\n"}, "control characters"),
        ("restart", {"unit": "../x"}, "does not match"),
        ("restart", {"unit": "-x"}, "does not match"),
        ("rotate-logs", {"app": "a", "note": "x\ty"}, "control characters"),
        ("rotate-logs", {"app": "a", "note": "x" * 2000}, "too long"),
    ],
)
def test_render_rejections(allowlist: Allowlist, action: str, params: dict[str, str], why: str) -> None:
    with pytest.raises(RejectedError, match=why):
        allowlist.render(action, params)


def test_control_characters_are_refused_even_by_a_permissive_pattern() -> None:
    allowlist = Allowlist.from_config(
        [{"name": "s", "kind": "script", "path": "/bin/true", "args": ["{v}"], "params": {"v": r"[\s\S]*"}}]
    )
    for value in ("a\nb", "a\x00b", "a\rb", "\x1b[31m"):
        with pytest.raises(RejectedError, match="control characters"):
            allowlist.render("s", {"v": value})


def _script(**overrides: Any) -> dict[str, Any]:
    return {"name": "s", "kind": "script", "path": "/bin/true", **overrides}


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        (_script(args=["{x}"]), "actions[0] (s)", "no pattern in params"),
        (_script(params={"x": "a"}), "actions[0] (s)", "used by no template"),
        (_script(args=["{x}"], params={"x": "("}), "actions[0] (s).params", "bad regex"),
        (_script(args=["{x.__class__}"], params={"x": "a"}), "actions[0] (s)", "bare {name}"),
        (_script(args=["{x!r}"], params={"x": "a"}), "actions[0] (s)", "bare {name}"),
        (_script(args=["{x:>9}"], params={"x": "a"}), "actions[0] (s)", "bare {name}"),
        (_script(args=["{"]), "actions[0] (s)", "bad template"),
        (_script(path="{prog}", params={"prog": "a"}), "actions[0] (s).path", "absolute path"),
        (_script(path="bin/true"), "actions[0] (s).path", "absolute path"),
        (_script(shell=True), "actions[0] (s).shell", "Extra inputs"),
        (_script(name="bad name"), "actions[0] (bad name).name", "should match"),
        (_script(timeout_s=0), "actions[0] (s).timeout_s", "greater than 0"),
        ({"name": "s", "kind": "exec"}, "actions[0] (s).kind", "must be one of"),
        ({"name": "s", "kind": "systemd", "op": "kill", "unit": "x"}, "actions[0] (s).op", "restart"),
        ({"name": "h", "kind": "http", "url": "http://10.0.0.1/x"}, "actions[0] (h).url", "not loopback"),
        (
            {"name": "h", "kind": "http", "url": "http://{h}/x", "params": {"h": "a"}},
            "actions[0] (h).url",
            "fixed host",
        ),
        ({"name": "h", "kind": "http", "url": "http://a@127.0.0.1/"}, "actions[0] (h).url", "fixed host"),
        ({"name": "h", "kind": "http", "url": "file:///etc/passwd"}, "actions[0] (h).url", "http"),
        (
            {"name": "p", "kind": "process", "start": ["/bin/x"]},
            "actions[0] (p)",
            "exactly one of pidfile or match",
        ),
        ({"name": "p", "kind": "process", "match": "x", "start": ["x"]}, "actions[0] (p)", "start[0]"),
        (
            {"name": "p", "kind": "process", "match": "x", "start": ["/x"], "stop_signal": "SIGNOPE"},
            "stop_signal",
            "unknown",
        ),
    ],
)
def test_config_errors_name_the_action_and_field(entry: dict[str, Any], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Allowlist.from_config([entry])
    assert caught.value.key.startswith(key) or key in caught.value.key
    assert message in caught.value.message


def test_duplicate_names_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        Allowlist.from_config([_script(), _script()])


def test_parse_template_pieces() -> None:
    assert parse_template("{unit}.service") == (("", "unit"), (".service", None))
    assert parse_template("{{literal}}") == (("{", None), ("literal}", None))
