"""Guardrails: a tenant's shadow mode, budget and approval settings with its breaker's state, and the
global kill switch (``runs.read`` to read; ``guardrails.write``, an admin's, to change).

Thin: one store call per route (``store/guard_reads.py``, ``store/run_admin.py``). A PUT changes
only the fields its body holds; the store validates them with the responder's own types and a
refusal is a 422 naming every field at fault (``problems``).

Why the kill switch is its own resource and global: it stops every automatic action of every
tenant at once (issue #14). Throwing it is audited in the chain of the admin's tenant and logged.
Releasing it does not release the server's ``responder_kill_switch`` setting: ``on`` stays true
while the setting is, and ``setting_on`` says why.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from infragent.responder.guardrails import Budget
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.run_schemas import GuardrailsIn, GuardrailsOut, KillSwitchIn, KillSwitchOut
from infragent.store import guard_reads, run_admin

router = APIRouter(prefix="/api/v1", tags=["runs"])

INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "a field is invalid: `problems` names each"}}


def _default_budget(svc: AppServices) -> Budget:
    return Budget(svc.settings.budget_max_actions, svc.settings.budget_window_s)


def _view(svc: AppServices, client_id: str) -> GuardrailsOut:
    with svc.store.read() as conn:
        view = guard_reads.guardrails(
            conn,
            client_id,
            kill_switch_setting=svc.settings.responder_kill_switch,
            default_budget=_default_budget(svc),
        )
    return GuardrailsOut.of(view)


@router.get("/guardrails", response_model=GuardrailsOut)
def get_guardrails(
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> GuardrailsOut:
    """The kill switch, shadow mode, the budget in force, approval settings and the breaker."""
    return _view(svc, who.client_id)


@router.put("/guardrails", response_model=GuardrailsOut, responses=INVALID)
def put_guardrails(
    body: GuardrailsIn,
    who: Annotated[Principal, Depends(require("guardrails.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> GuardrailsOut:
    """Change the fields given (a budget field set to null returns to the server's default)."""
    changes = body.changes()
    with svc.store.write() as conn:
        run_admin.set_guardrails(conn, who.client_id, by=who.actor, now=svc.clock(), **changes)
    return _view(svc, who.client_id)


@router.get("/kill-switch", response_model=KillSwitchOut)
def get_kill_switch(
    who: Annotated[Principal, Depends(require("runs.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> KillSwitchOut:
    """Whether automatic actions are stopped for every tenant, by whom and why."""
    with svc.store.read() as conn:
        return KillSwitchOut.of(guard_reads.read_kill_switch(conn, svc.settings.responder_kill_switch))


@router.put("/kill-switch", response_model=KillSwitchOut)
def put_kill_switch(
    body: KillSwitchIn,
    who: Annotated[Principal, Depends(require("guardrails.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> KillSwitchOut:
    """Throw (``on: true``) or release the global kill switch, with a reason."""
    setting = svc.settings.responder_kill_switch
    with svc.store.write() as conn:
        switch = run_admin.set_kill_switch(
            conn, who.client_id, body.on, who.actor, body.reason, svc.clock(), setting=setting
        )
    return KillSwitchOut.of(switch)
