"""A runbook: which events it matches and the decision it answers with.

Why a module of its own: the runbook file's checks (``runbook_check.py``) build these values and
``runbooks.py`` loads the file through those checks, so the value sits below both and neither
imports the other's caller. ``runbooks.py`` re-exports ``Runbook``; import it from there.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Final

from infragent.model import Decision, Event, Severity

#: The event fields a runbook's ``target`` and ``params`` may name in ``{braces}``.
TEMPLATE_FIELDS: Final = ("service", "type", "node_id")


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
