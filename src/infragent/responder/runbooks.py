"""Deterministic runbooks: match an event by type/service/severity, answer with an action and target.

Why runbooks come before the LLM: a known failure should get the same, reviewable answer every time,
at no cost and with no model in the path. The file is YAML:

    runbooks:
      - name: restart-on-down
        match: {type: app_down, service: "web*", severity: [critical, warning]}
        action: restart
        target: "{service}"
        params: {}
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infragent.errors import ConfigError
from infragent.model import NO_ACTION, Decision, Event, Severity


@dataclass(frozen=True, slots=True)
class Runbook:
    name: str
    action: str
    types: tuple[str, ...] = ("*",)
    services: tuple[str, ...] = ("*",)
    severities: tuple[Severity, ...] = tuple(Severity)
    target: str | None = "{service}"
    params: dict[str, str] = field(default_factory=dict)

    def matches(self, event: Event) -> bool:
        return (
            any(fnmatch.fnmatchcase(event.type, t) for t in self.types)
            and any(fnmatch.fnmatchcase(event.service, s) for s in self.services)
            and event.severity in self.severities
        )

    def decide(self, event: Event) -> Decision:
        fields = {"service": event.service, "type": event.type, "node_id": event.node_id}
        target = self.target.format_map(fields) if self.target else None
        params = {k: v.format_map(fields) for k, v in self.params.items()}
        return Decision(
            source="runbook",
            action=self.action,
            target=target,
            params=params,
            rationale=f"runbook {self.name!r} matched event type={event.type} service={event.service}",
        )


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


def _as_tuple(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ("*",)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where}.match.{key}", "must be a string or a list of strings")
    return tuple(items)


def parse_runbooks(data: Any, source: str = "runbooks") -> list[Runbook]:
    if not isinstance(data, dict) or not isinstance(data.get("runbooks"), list):
        raise ConfigError(source, "expected a mapping with a 'runbooks' list")
    result = []
    for i, item in enumerate(data["runbooks"]):
        where = f"{source}: runbooks[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, "each runbook must be a mapping")
        unknown = set(item) - {"name", "match", "action", "target", "params"}
        if unknown:
            raise ConfigError(where, f"unknown keys {sorted(unknown)}")
        if not isinstance(item.get("action"), str) or not item["action"]:
            raise ConfigError(f"{where}.action", "required, a string")
        match = item.get("match") or {}
        if not isinstance(match, dict) or set(match) - {"type", "service", "severity"}:
            raise ConfigError(f"{where}.match", "may only hold type, service and severity")
        try:
            severities = tuple(
                Severity(s) for s in _as_tuple(match.get("severity"), "severity", where) if s != "*"
            )
        except ValueError as exc:
            raise ConfigError(f"{where}.match.severity", "must be info, warning or critical") from exc
        params = item.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise ConfigError(f"{where}.params", "must map names to strings")
        result.append(
            Runbook(
                name=str(item.get("name") or f"runbook-{i}"),
                action=item["action"],
                types=_as_tuple(match.get("type"), "type", where),
                services=_as_tuple(match.get("service"), "service", where),
                severities=severities or tuple(Severity),
                target=item.get("target", "{service}"),
                params={str(k): v for k, v in params.items()},
            )
        )
    return result


def load_runbooks(path: Path | None) -> list[Runbook]:
    if path is None:
        return list(DEFAULT_RUNBOOKS)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read runbooks: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from exc
    return parse_runbooks(data, str(path))
