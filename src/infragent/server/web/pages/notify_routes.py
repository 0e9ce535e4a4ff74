"""``/notify/routes``: the tenant's route tree shown readably (each node's matchers, receivers,
grouping, timings, ``continue``, mute and active times, escalation), and an editor: the whole
tree as YAML (JSON is YAML too) with "Validate" and "Save".

Why the whole document in one textarea: the tree is one document (``store/notify_config``
keeps it whole, versioned), and ``notify.config.parse_route_tree`` reports every problem of it at
once as ``field path: message`` (``routes[1].group_wait: not a duration``), the API's 422. The
editor answers them the way the rules page answers a rule file. Saving names the version the
page was loaded with: when someone saved in between, the save is refused (409) and nothing is
lost from the textarea.

Why a tenant without a stored tree sees one anyway: the pipeline routes with a default root whose
receivers are all the tenant's enabled channels; the page shows that tree, marked as the default.

Permissions: reading and validating ``notify.read`` (nothing is written); saving ``routes.write``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from infragent.notify import config as notify_config
from infragent.notify.errors import NotifyConfigError, NotifyConflictError
from infragent.notify.model import Route, TimeInterval
from infragent.notify.render import validate_template
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render_part
from infragent.store import notify_config as store

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("notify.read"))]
Writer = Annotated[Principal, Depends(page("routes.write"))]

#: the longest document the editor takes
MAX_TEXT_CHARS: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Checked:
    """What the editor's text came to: the tree (valid) or every problem."""

    doc: dict[str, Any] | None
    tree: Route | None
    problems: list[tuple[str, str]]


WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def duration(seconds: float) -> str:
    """``90`` → ``"1m30s"``, ``14400`` → ``"4h"``: the tree's timings as people write them."""
    left = round(seconds)
    if left == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out


def interval(i: TimeInterval) -> str:
    """A time interval in one line: ``Mon,Tue 09:00-17:00 (Europe/Paris)``; empty parts mean any."""
    parts = []
    if i.weekdays:
        parts.append(",".join(WEEKDAYS[d] for d in i.weekdays))
    if i.times:
        parts.append(",".join(f"{_clock(t.start_minute)}-{_clock(t.end_minute)}" for t in i.times))
    if i.days_of_month:
        parts.append("days " + ",".join(str(d) for d in i.days_of_month))
    if i.months:
        parts.append(",".join(MONTHS[m - 1] for m in i.months))
    return (" ".join(parts) or "always") + f" ({i.time_zone})"


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def dump(doc: Mapping[str, Any]) -> str:
    """A route document as the editor shows it (YAML, keys in the document's order)."""
    text: str = yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, default_flow_style=False)
    return text


def check(text: str, svc: AppServices, channel_names: list[str]) -> Checked:
    """Parse ``text`` (YAML or JSON) and validate it as the API validates a PUT of the tree."""
    if not text.strip():
        return Checked(None, None, [("", "nothing to check: paste a route tree")])
    if len(text) > MAX_TEXT_CHARS:
        return Checked(None, None, [("", f"the text is over {MAX_TEXT_CHARS} characters")])
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return Checked(None, None, [("", f"{where}not YAML: {getattr(exc, 'problem', None) or exc}")])
    if not isinstance(doc, dict):
        return Checked(None, None, [("", "the route tree is a mapping (receivers:, routes:, …)")])
    defaults = notify_config.defaults_from_settings(svc.settings)
    try:
        tree = notify_config.parse_route_tree(doc, defaults, channel_names, validate_template)
    except NotifyConfigError as exc:
        return Checked(doc, None, exc.problems)
    return Checked(doc, tree, [])


def _view(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    part: str = "notify/routes_section.html",
    text: str | None = None,
    checked: Checked | None = None,
    saved: int | None = None,
    conflict: str = "",
    status: int = 200,
) -> HTMLResponse:
    with svc.store.read() as conn:
        routing = store.get_routing(conn, who.client_id)
        channels = store.list_channels(conn, who.client_id)
    if routing is not None:
        doc, version = routing.tree, routing.version
    else:  # what the pipeline routes with: every enabled channel at the root
        doc, version = {"receivers": [c.name for c in channels if c.enabled]}, 0
    defaults = notify_config.defaults_from_settings(svc.settings)
    try:
        tree: Route | None = notify_config.parse_route_tree(doc, defaults)
        stored_problems: list[tuple[str, str]] = []
    except NotifyConfigError as exc:  # stored before a rule tightened: shown, not hidden
        tree, stored_problems = None, exc.problems
    return render_part(
        request,
        part,
        "notify/routes.html",
        who,
        status,
        tree=tree,
        routing=routing,
        version=version,
        stored_problems=stored_problems,
        channel_names=sorted(c.name for c in channels),
        text=dump(doc) if text is None else text,
        checked=checked,
        saved=saved,
        conflict=conflict,
        fmt=formats,
        duration=duration,
        interval=interval,
        matcher_text=notify_config.matcher_text,
    )


@router.get("/notify/routes", response_class=HTMLResponse)
def routes_page(request: Request, who: Reader, svc: Svc) -> HTMLResponse:
    return _view(request, who, svc)


def _channel_names(svc: AppServices, client_id: str) -> list[str]:
    with svc.store.read() as conn:
        return [c.name for c in store.list_channels(conn, client_id)]


@router.post("/notify/routes/validate", response_class=HTMLResponse)
def validate(
    request: Request, who: Reader, svc: Svc, text: Annotated[str, Form(max_length=MAX_TEXT_CHARS)] = ""
) -> HTMLResponse:
    """Check the editor's text; nothing is written."""
    checked = check(text, svc, _channel_names(svc, who.client_id))
    status = 422 if checked.problems else 200
    return render_part(
        request,
        "notify/routes_check.html",
        "notify/routes_check.html",
        who,
        status,
        checked=checked,
        fmt=formats,
        duration=duration,
        interval=interval,
        matcher_text=notify_config.matcher_text,
    )


@router.post("/notify/routes", response_class=HTMLResponse)
def save(
    request: Request,
    who: Writer,
    svc: Svc,
    text: Annotated[str, Form(max_length=MAX_TEXT_CHARS)] = "",
    version: Annotated[int, Form(ge=0)] = 0,
) -> HTMLResponse:
    """Store the tree if it is valid and nobody saved since ``version`` was read."""
    checked = check(text, svc, _channel_names(svc, who.client_id))
    if checked.problems or checked.doc is None:
        return _view(request, who, svc, text=text, checked=checked, status=422)
    try:
        with svc.store.write() as conn:
            doc = store.put_routing(
                conn,
                who.client_id,
                notify_config.with_ids(checked.doc),
                expected_version=version,
                actor=who.actor,
                now=svc.clock(),
            )
    except NotifyConflictError as exc:
        return _view(request, who, svc, text=text, conflict=exc.message, status=409)
    return _view(request, who, svc, saved=doc.version)
