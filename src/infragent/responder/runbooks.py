"""Deterministic runbooks: match an event by type/service/severity, answer with an action and target.

Why runbooks come before the LLM: a known failure should get the same, reviewable answer every time,
at no cost and with no model in the path. The file is YAML:

    runbooks:
      - name: restart-on-down
        match: {type: app_down, service: "web*", severity: [critical, warning]}
        action: restart
        target: "{service}"
        params: {}

This module is what the responder imports: the built-in runbooks, first-match-wins, and loading the
configured file. What a valid file is (every check, each mistake at its ``line:column``) lives in
``runbook_check.py``, used both here and by the dashboard's check form, so a file the form accepts
is one the server starts with; the ``Runbook`` value itself is in ``runbook_model.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from infragent.errors import ConfigError
from infragent.model import NO_ACTION, Event, Severity
from infragent.responder.runbook_check import check_runbook_text
from infragent.responder.runbook_model import Runbook

__all__ = ["DEFAULT_RUNBOOKS", "Runbook", "first_match", "load_runbooks", "parse_runbooks"]


#: Used when no runbooks file is configured: restart what is down, do nothing once it is back.
DEFAULT_RUNBOOKS: tuple[Runbook, ...] = (
    Runbook(name="recovered-needs-nothing", action=NO_ACTION, types=("app_recovered",), target=None),
    Runbook(
        name="restart-on-down",
        action="restart",
        types=("app_down",),
        severities=(Severity.WARNING, Severity.CRITICAL),
    ),
)


def first_match(runbooks: Sequence[Runbook], event: Event) -> Runbook | None:
    return next((rb for rb in runbooks if rb.matches(event)), None)


def parse_runbooks(text: str, source: str = "runbooks") -> list[Runbook]:
    """The runbooks of a file's ``text``, or ConfigError naming every problem at its
    ``line:column`` (the checks are ``runbook_check.py``'s, the same the dashboard's form runs)."""
    checked = check_runbook_text(text, source)
    if checked.problems:
        raise ConfigError(source, "; ".join(checked.lines))
    return checked.runbooks


def load_runbooks(path: Path | None) -> list[Runbook]:
    if path is None:
        return list(DEFAULT_RUNBOOKS)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read runbooks: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    return parse_runbooks(text, str(path))
