"""``/rules``: the tenant's alert rules with the state of their alerts, the runbooks the responder
loads, and two forms that check a pasted rule (or rule file) and a pasted runbook file without
storing anything.

Why validation here answers every problem at its ``line:column``: the same reader as the API and
``infragent rules check`` (``rules/files.py``) finds every mistake of the text in one pass, so a
person fixes them all at once; nothing is written, which is why reading rules (``rules.read``) is
enough to use it. A runbook file is checked the same way, by the checks the server loads its
``runbooks_path`` with (``responder/runbook_check.py``). Why runbooks are shown read-only: they
are a file on the server (``runbooks_path``), changed by whoever deploys it, not from the browser.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Final

import anyio.to_thread
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from infragent.errors import ConfigError
from infragent.responder.runbook_check import MAX_RUNBOOK_BYTES, RunbookCheck, check_runbook_text
from infragent.responder.runbooks import Runbook, load_runbooks
from infragent.rules.errors import RuleFileError
from infragent.rules.files import parse_rule_file, parse_rule_text
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web.deps import page
from infragent.server.web.templating import is_htmx, render
from infragent.store import alerts
from infragent.store import rules as rule_store

router = APIRouter()

#: The longest text the form checks (a rule file of a few hundred rules fits).
MAX_TEXT_CHARS: Final = 256 * 1024
#: Alert instances read to count each rule's firing and pending ones.
MAX_INSTANCES: Final = 10_000
_FILE = re.compile(r"^groups\s*:", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Validation:
    """What the form answers: the rules found (when valid) or every problem with its place."""

    names: list[str]
    problems: list[str]  # "line:column: message"
    kind: str  # "rule" or "rule file"


def validate(text: str) -> Validation:
    """Check ``text`` as a rule file (it has ``groups:``) or as one rule, as the API would take it."""
    kind = "rule file" if _FILE.search(text) else "rule"
    if not text.strip():
        return Validation([], ["1:1: nothing to check: paste a rule or a rule file"], kind)
    if len(text) > MAX_TEXT_CHARS:
        return Validation([], [f"1:1: the text is over {MAX_TEXT_CHARS} characters"], kind)
    try:
        if kind == "rule file":
            names = [rule.name for group in parse_rule_file(text, "pasted") for rule in group.rules]
        else:
            names = [parse_rule_text(text, "pasted").name]
    except RuleFileError as exc:
        problems = [f"{p.line}:{p.column}: {p.message}" for p in exc.problems]
        return Validation([], problems or [str(exc)], kind)
    return Validation(names, [], kind)


def _rules(svc: AppServices, client_id: str) -> list[dict[str, Any]]:
    """The tenant's rules, each with how many of its alert instances fire and are pending."""
    with svc.store.read() as conn:
        stored = rule_store.load_rules(conn, client_id)
        active = ("firing", "pending")
        instances = alerts.list_instances(conn, client_id, statuses=active, limit=MAX_INSTANCES)
    counts = Counter((name, row.state.status.value) for row, name in instances)
    return [
        {
            "name": r.name,
            "group": r.group,
            "kind": r.rule.kind,
            "origin": r.origin,
            "enabled": r.enabled,
            "severity": r.rule.severity,
            "firing": counts[(r.name, "firing")],
            "pending": counts[(r.name, "pending")],
        }
        for r in stored
    ]


def _runbooks(svc: AppServices) -> tuple[list[Runbook], str, str]:
    """(runbooks, where they come from, the error reading them or "")."""
    path = svc.settings.runbooks_path
    source = str(path) if path is not None else "built-in defaults (no runbooks_path set)"
    try:
        return load_runbooks(path), source, ""
    except ConfigError as exc:
        return [], source, str(exc)


def _page(request: Request, who: Principal, svc: AppServices, **extra: Any) -> HTMLResponse:
    runbooks, source, error = _runbooks(svc)
    context: dict[str, Any] = {
        "result": None,
        "text": "",
        "runbooks_result": None,
        "runbooks_text": "",
    } | extra
    return render(
        request,
        "rules.html",
        who,
        rules=_rules(svc, who.client_id),
        runbooks=runbooks,
        runbooks_source=source,
        runbooks_error=error,
        max_chars=MAX_TEXT_CHARS,
        max_runbook_bytes=MAX_RUNBOOK_BYTES,
        **context,
    )


@router.get("/rules", response_class=HTMLResponse)
async def rules_page(
    request: Request,
    who: Annotated[Principal, Depends(page("rules.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> HTMLResponse:
    return await anyio.to_thread.run_sync(lambda: _page(request, who, svc))


@router.post("/rules/validate", response_class=HTMLResponse)
async def validate_form(
    request: Request,
    who: Annotated[Principal, Depends(page("rules.read"))],
    svc: Annotated[AppServices, Depends(services)],
    text: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """The check's result: the fragment for htmx, else the whole page with the result and the text."""
    result = await anyio.to_thread.run_sync(validate, text)
    if is_htmx(request):
        return render(request, "rules_validation.html", who, result=result)
    return await anyio.to_thread.run_sync(lambda: _page(request, who, svc, result=result, text=text))


@router.post("/rules/runbooks/validate", response_class=HTMLResponse)
async def validate_runbooks_form(
    request: Request,
    who: Annotated[Principal, Depends(page("rules.read"))],
    svc: Annotated[AppServices, Depends(services)],
    text: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """A pasted runbook file's problems at ``line:column``, or its runbooks' names: the fragment for
    htmx, else the whole page with the result and the text. Nothing is loaded or written."""
    result: RunbookCheck = await anyio.to_thread.run_sync(check_runbook_text, text)
    if is_htmx(request):
        return render(request, "runbooks_validation.html", who, runbooks_result=result)
    return await anyio.to_thread.run_sync(
        lambda: _page(request, who, svc, runbooks_result=result, runbooks_text=text)
    )
