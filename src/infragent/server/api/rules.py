"""A tenant's alert rules: list, read, create, replace, switch on/off, delete, validate.

Why the body is read as text and parsed by ``rules.files.parse_rule_text`` (JSON or YAML by
``Content-Type``): a refused rule answers 422 with every mistake's line and column in the body as
sent, the same problems ``infragent rules check`` prints for a file. Why only ``api`` rules can be
replaced or deleted: pack and file rules are re-applied at every start (``store/rules.py``); the
tenant switches them off with ``PATCH {"enabled": false}`` (409 tells so).

The per-tenant cap (``max_alert_instances_per_tenant``) is checked on create, replace and switch
on, over the tenant's current series (``MetricReader.list_series``) and its other rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from infragent.rules.errors import RuleFileError
from infragent.rules.files import parse_rule_text, rule_to_spec
from infragent.rules.model import Rule
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.rule_schemas import (
    EnabledIn,
    ProblemOut,
    ProblemsOut,
    RuleOut,
    ValidationOut,
    rule_request_body,
)
from infragent.store import rule_budget
from infragent.store import rules as rule_store
from infragent.store.rule_budget import InstanceBudget
from infragent.store.rules import Origin, RuleConflictError, StoredRule

router = APIRouter(prefix="/api/v1/rules", tags=["rules"])

#: The longest group name the store keeps (``alert_rules.group_name``).
MAX_GROUP_CHARS = 200

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
Responses = dict[int | str, dict[str, Any]]
_REFUSED: Responses = {
    422: {
        "model": ProblemsOut,
        "description": "the rule is invalid (each problem with its line and column), or it would pass "
        "the instance cap",
    }
}
_CONFLICT: Responses = {409: {"description": "the name is taken, or the rule comes from the pack or a file"}}
_MISSING: Responses = {404: {"description": "no rule of that name in the caller's tenant"}}
_NOT_RULE_TEXT: Responses = {415: {"description": "the body is neither JSON nor YAML"}}


@dataclass(frozen=True, slots=True)
class RuleText:
    """A request body as text, and what it was sent as (for the problems' wording)."""

    text: str
    syntax: Literal["json", "yaml"]


async def rule_text(request: Request) -> RuleText:
    """The body as text: JSON (``application/json``, the default) or YAML; anything else is 415."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in JSON_TYPES + YAML_TYPES:
        raise HTTPException(
            status_code=415,
            detail=f"Content-Type {kind!r} is not accepted: send application/json or application/yaml",
        )
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(status_code=422, detail=f"the body is not UTF-8 (byte {exc.start})") from None
    return RuleText(text, "json" if kind in JSON_TYPES else "yaml")


def _refused(detail: str, problems: list[ProblemOut]) -> JSONResponse:
    return JSONResponse(ProblemsOut(detail=detail, problems=problems).model_dump(), status_code=422)


def _parse(body: RuleText) -> Rule | ProblemsOut:
    """The rule in ``body``, or every problem with its place in the text as sent."""
    if body.syntax == "json":
        try:
            json.loads(body.text)
        except json.JSONDecodeError as exc:  # JSON's own mistakes, at JSON's own positions
            message = f"invalid JSON: {exc.msg}"
            problem = ProblemOut(line=exc.lineno, column=exc.colno, message=message)
            return ProblemsOut(detail=f"{exc.lineno}:{exc.colno}: {message}", problems=[problem])
    try:
        return parse_rule_text(body.text, "body")
    except RuleFileError as exc:
        found = [ProblemOut(line=p.line, column=p.column, message=p.message) for p in exc.problems]
        summary = "; ".join(f"{p.line}:{p.column}: {p.message}" for p in found)
        return ProblemsOut(detail=summary or str(exc), problems=found)


def _budget(svc: AppServices, client_id: str, rule: Rule) -> InstanceBudget:
    series = svc.metric_store.list_series(client_id)
    with svc.store.read() as conn:
        return rule_budget.instance_budget(
            conn, client_id, rule, series, svc.settings.max_alert_instances_per_tenant
        )


def _admitted(
    svc: AppServices, client_id: str, body: RuleText, name: str | None = None
) -> Rule | JSONResponse:
    """The rule of ``body`` if it parses, is named ``name`` (when given) and fits the cap; else the 422."""
    rule = _parse(body)
    if isinstance(rule, ProblemsOut):
        return JSONResponse(rule.model_dump(), status_code=422)
    if name is not None and rule.name != name:
        return _refused(
            f"the body's alert {rule.name!r} is not the rule {name!r} of the URL; to rename a rule, "
            "create the new one and delete the old",
            [],
        )
    if len(rule.group) > MAX_GROUP_CHARS:
        return _refused(f"group: a group name is at most {MAX_GROUP_CHARS} characters", [])
    budget = _budget(svc, client_id, rule)
    if budget.exceeded:
        return _refused(budget.refusal(rule.name), [])
    return rule


def _out(stored: StoredRule) -> RuleOut:
    spec = dict(rule_to_spec(stored.rule))
    spec.pop("enabled", None)
    return RuleOut(
        name=stored.name,
        group=stored.group,
        kind=stored.rule.kind,
        origin=stored.origin,
        enabled=stored.enabled,
        spec=spec,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def _conflict(exc: RuleConflictError) -> HTTPException:
    return HTTPException(status_code=409, detail=str(exc))


@router.get("", response_model=list[RuleOut])
def list_rules(
    who: Annotated[Principal, Depends(require("rules.read"))],
    svc: Annotated[AppServices, Depends(services)],
    origin: Origin | None = None,
    enabled: bool | None = None,
) -> list[RuleOut]:
    """Every rule of the caller's tenant (the default pack's, files', its own), by group and name."""
    with svc.store.read() as conn:
        found = rule_store.load_rules(conn, who.client_id)
    return [
        _out(r)
        for r in found
        if (origin is None or r.origin == origin) and (enabled is None or r.enabled == enabled)
    ]


@router.get("/{name}", response_model=RuleOut, responses=_MISSING)
def get_rule(
    name: str,
    who: Annotated[Principal, Depends(require("rules.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RuleOut:
    with svc.store.read() as conn:
        found = rule_store.get_rule(conn, who.client_id, name)
    if found is None:
        raise HTTPException(status_code=404, detail=f"rule {name!r} not found")
    return _out(found)


@router.post(
    "",
    response_model=RuleOut,
    status_code=201,
    responses=_REFUSED | _CONFLICT | _NOT_RULE_TEXT,
    openapi_extra=rule_request_body(),
)
def create_rule(
    who: Annotated[Principal, Depends(require("rules.write"))],
    svc: Annotated[AppServices, Depends(services)],
    body: Annotated[RuleText, Depends(rule_text)],
) -> RuleOut | JSONResponse:
    """Create one rule (JSON, or YAML with ``Content-Type: application/yaml``); 409 if its name is taken."""
    rule = _admitted(svc, who.client_id, body)
    if isinstance(rule, JSONResponse):
        return rule
    try:
        with svc.store.write() as conn:
            stored = rule_store.create_rule(
                conn, who.client_id, rule, origin="api", now=svc.clock(), actor=who.actor
            )
    except RuleConflictError as exc:
        raise _conflict(exc) from None
    return _out(stored)


@router.post(
    "/validate",
    response_model=ValidationOut,
    responses=_NOT_RULE_TEXT,
    openapi_extra=rule_request_body(),
)
def validate_rule(
    who: Annotated[Principal, Depends(require("rules.read"))],
    svc: Annotated[AppServices, Depends(services)],
    body: Annotated[RuleText, Depends(rule_text)],
) -> ValidationOut:
    """Check a rule as POST would (its text, then the instance cap) without storing anything."""
    cap = svc.settings.max_alert_instances_per_tenant
    rule = _parse(body)
    if isinstance(rule, ProblemsOut):
        return ValidationOut(valid=False, detail=rule.detail, problems=rule.problems, max_instances=cap)
    budget = _budget(svc, who.client_id, rule)
    spec = dict(rule_to_spec(rule))
    return ValidationOut(
        valid=not budget.exceeded,
        detail=budget.refusal(rule.name) if budget.exceeded else "",
        problems=[],
        rule=spec,
        instances=budget.instances,
        max_instances=cap,
    )


@router.put(
    "/{name}",
    response_model=RuleOut,
    responses=_REFUSED | _CONFLICT | _MISSING | _NOT_RULE_TEXT,
    openapi_extra=rule_request_body(),
)
def replace_rule(
    name: str,
    who: Annotated[Principal, Depends(require("rules.write"))],
    svc: Annotated[AppServices, Depends(services)],
    body: Annotated[RuleText, Depends(rule_text)],
) -> RuleOut | JSONResponse:
    """Replace the tenant's own rule ``name`` (its ``alert`` must be ``name``); 409 for a pack or
    file rule."""
    rule = _admitted(svc, who.client_id, body, name)
    if isinstance(rule, JSONResponse):
        return rule
    try:
        with svc.store.write() as conn:
            stored = rule_store.update_rule(conn, who.client_id, name, rule, now=svc.clock(), actor=who.actor)
    except RuleConflictError as exc:
        raise _conflict(exc) from None
    if stored is None:
        raise HTTPException(status_code=404, detail=f"rule {name!r} not found")
    return _out(stored)


@router.patch("/{name}", response_model=RuleOut, responses=_REFUSED | _MISSING)
def switch_rule(
    name: str,
    body: EnabledIn,
    who: Annotated[Principal, Depends(require("rules.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> RuleOut | JSONResponse:
    """Switch any rule on or off, the default pack's and files' included (kept across restarts)."""
    with svc.store.read() as conn:
        current = rule_store.get_rule(conn, who.client_id, name)
    if current is None:
        raise HTTPException(status_code=404, detail=f"rule {name!r} not found")
    if body.enabled and not current.enabled:
        budget = _budget(svc, who.client_id, replace(current.rule, enabled=True))
        if budget.exceeded:
            return _refused(budget.refusal(name), [])
    with svc.store.write() as conn:
        stored = rule_store.set_enabled(
            conn, who.client_id, name, body.enabled, now=svc.clock(), actor=who.actor
        )
    if stored is None:
        raise HTTPException(status_code=404, detail=f"rule {name!r} not found")
    return _out(stored)


@router.delete("/{name}", status_code=204, responses=_CONFLICT | _MISSING)
def delete_rule(
    name: str,
    who: Annotated[Principal, Depends(require("rules.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> Response:
    """Delete the tenant's own rule and its alert instances; 409 for a pack or file rule."""
    try:
        with svc.store.write() as conn:
            deleted = rule_store.delete_rule(conn, who.client_id, name, now=svc.clock(), actor=who.actor)
    except RuleConflictError as exc:
        raise _conflict(exc) from None
    if not deleted:
        raise HTTPException(status_code=404, detail=f"rule {name!r} not found")
    return Response(status_code=204)
