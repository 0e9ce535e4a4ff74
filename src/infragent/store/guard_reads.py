"""Reading a tenant's guardrails back: its ``guard_settings`` row (or the defaults), the global kill
switch, and the budget in force, for the API, the pages, the CLI and the executor.

Why three sources in one view: what stops or holds an automatic action is the global kill switch
(``server_kv`` key ``responder.kill_switch``, or the server's ``responder_kill_switch`` setting),
the tenant's shadow mode, budget and approval settings, and its circuit breaker (the ``breaker_*``
columns the executor writes). A person asking "why did nothing happen?" needs all of them at once.

Fail closed: a stored kill switch that cannot be read counts as on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import orjson
import sqlalchemy as sa

from infragent.responder.guardrails import Budget
from infragent.store.runbook_schema import guard_settings
from infragent.store.schema import server_kv

logger = logging.getLogger(__name__)

#: The ``server_kv`` key of the global kill switch: JSON ``{"on", "by", "at", "reason"}``.
KILL_SWITCH_KEY: Final = "responder.kill_switch"


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """The global kill switch: ``on`` when the stored switch or the server setting is on."""

    on: bool
    #: the stored switch (API, CLI): who threw it, when and why
    stored_on: bool
    by: str | None
    at: float | None
    reason: str
    #: the server's ``responder_kill_switch`` setting
    setting_on: bool


@dataclass(frozen=True, slots=True)
class GuardRow:
    """A tenant's ``guard_settings`` row, or the defaults when it has none (``stored`` False).
    ``budget_limit``/``budget_window_s`` None: the server's defaults."""

    client_id: str
    stored: bool
    shadow: bool = False
    shadow_runbooks: tuple[str, ...] = ()
    budget_limit: int | None = None
    budget_window_s: float | None = None
    approval_actions: tuple[str, ...] = ()
    approval_llm: bool = True
    breaker_open: bool = False
    breaker_since: float | None = None
    breaker_calm_since: float | None = None
    breaker_reason: str = ""
    updated_at: float | None = None
    updated_by: str | None = None

    def budget(self, default: Budget | None = None) -> Budget:
        """The budget in force: the stored limit and window, each falling back to ``default``."""
        base = default or Budget()
        limit = base.limit if self.budget_limit is None else self.budget_limit
        window = base.window_s if self.budget_window_s is None else self.budget_window_s
        return Budget(limit, window)


@dataclass(frozen=True, slots=True)
class GuardrailsView:
    """Everything that stops or holds automatic actions for one tenant, as the API shows it."""

    kill_switch: KillSwitch
    guard: GuardRow
    budget: Budget


def read_kill_switch(conn: sa.Connection, setting: bool = False) -> KillSwitch:
    """The global kill switch: the stored one (``server_kv``) or the server ``setting``. A stored
    value that cannot be read counts as on: the switch fails closed."""
    raw = conn.execute(sa.select(server_kv.c.value).where(server_kv.c.key == KILL_SWITCH_KEY)).scalar()
    if raw is None:
        return KillSwitch(setting, False, None, None, "", setting)
    try:
        data = orjson.loads(raw)
        stored = bool(data["on"]) if isinstance(data, dict) and isinstance(data.get("on"), bool) else None
    except orjson.JSONDecodeError:
        data, stored = {}, None
    if stored is None:
        logger.error("the stored kill switch %r cannot be read: treated as on", raw[:200])
        return KillSwitch(True, True, None, None, "the stored kill switch cannot be read", setting)
    at = data.get("at")
    return KillSwitch(
        on=stored or setting,
        stored_on=stored,
        by=str(data["by"]) if data.get("by") is not None else None,
        at=float(at) if isinstance(at, int | float) else None,
        reason=str(data.get("reason") or ""),
        setting_on=setting,
    )


def _names(value: object) -> tuple[str, ...]:
    return tuple(sorted(str(v) for v in value)) if isinstance(value, list) else ()


def read_guard(conn: sa.Connection, client_id: str) -> GuardRow:
    """The tenant's guardrail settings and breaker state, or the defaults when none are stored."""
    g = guard_settings.c
    r = conn.execute(sa.select(guard_settings).where(g.client_id == client_id)).first()
    if r is None:
        return GuardRow(client_id, stored=False)
    return GuardRow(
        client_id=client_id,
        stored=True,
        shadow=bool(r.shadow),
        shadow_runbooks=_names(r.shadow_runbooks),
        budget_limit=r.budget_limit,
        budget_window_s=r.budget_window_s,
        approval_actions=_names(r.approval_actions),
        approval_llm=bool(r.approval_llm),
        breaker_open=bool(r.breaker_open),
        breaker_since=r.breaker_since,
        breaker_calm_since=r.breaker_calm_since,
        breaker_reason=r.breaker_reason or "",
        updated_at=r.updated_at,
        updated_by=r.updated_by,
    )


def guardrails(
    conn: sa.Connection,
    client_id: str,
    *,
    kill_switch_setting: bool = False,
    default_budget: Budget | None = None,
) -> GuardrailsView:
    """The tenant's guardrails as they stand: the kill switch, its settings, the budget in force."""
    guard = read_guard(conn, client_id)
    return GuardrailsView(read_kill_switch(conn, kill_switch_setting), guard, guard.budget(default_budget))
