from __future__ import annotations

from pathlib import Path

import pytest

from infragent.errors import ConfigError
from infragent.model import Event, Severity
from infragent.responder.runbooks import DEFAULT_RUNBOOKS, first_match, load_runbooks


def _event(type_: str = "app_down", service: str = "web-1", severity: Severity = Severity.CRITICAL) -> Event:
    return Event("e1", "c1", "a1", "host/web-1", type_, service, severity, {}, 0.0)


def test_defaults_restart_on_down_and_nothing_on_recovery() -> None:
    down = first_match(DEFAULT_RUNBOOKS, _event())
    assert down is not None
    assert down.decide(_event()).action == "restart"
    assert down.decide(_event()).target == "web-1"
    up = first_match(DEFAULT_RUNBOOKS, _event("app_recovered", severity=Severity.INFO))
    assert up is not None and up.decide(_event()).action == "none"
    assert first_match(DEFAULT_RUNBOOKS, _event("disk_full")) is None
    assert first_match(DEFAULT_RUNBOOKS, _event(severity=Severity.INFO)) is None


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(
        "runbooks:\n"
        "  - name: web\n"
        "    match: {type: app_down, service: 'web*', severity: critical}\n"
        "    action: restart\n"
        "    params: {name: '{service}'}\n"
    )
    [rb] = load_runbooks(path)
    assert rb.matches(_event()) and not rb.matches(_event(service="db"))
    assert not rb.matches(_event(severity=Severity.WARNING))
    assert rb.decide(_event()).params == {"name": "web-1"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("runbooks: 3\n", "'runbooks' list"),
        ("runbooks:\n  - match: {}\n", "runbooks[0].action"),
        ("runbooks:\n  - action: x\n    when: y\n", "unknown keys"),
        ("runbooks:\n  - action: x\n    match: {severity: fatal}\n", "match.severity"),
        ("runbooks:\n  - action: x\n    match: {host: a}\n", "runbooks[0].match"),
    ],
)
def test_bad_runbooks_name_the_place(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "rb.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where.replace("[", r"\[").replace("]", r"\]")):
        load_runbooks(path)
