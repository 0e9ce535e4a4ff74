"""``/incidents``: the list (status, severity and title filters, keyset pages) and
``/incidents/{id}``: one incident with its whole timeline and, for those allowed
(``incidents.write``), acknowledge / resolve / add a note.

Why the buttons post to page handlers and not to the API: a page answer is the refreshed fragment
(header, buttons, timeline) htmx swaps in, and a refused move is shown in that fragment. The
handlers call the same store functions as ``server/api/incidents.py`` under the same permission
row, so the page and the API cannot disagree on who may do what or which move is allowed.

The detail also says when a silence currently holds back the incident's notifications (the same
``notify.mute.silenced_by`` over the labels ``notify.route.incident_labels`` gives the router), and
offers those allowed (``silences.write``) a "Silence" link to a silence pre-filled from those
labels (``pages/notify_silences.py``).

Live: the list's first page re-asks itself on every ``incident`` event of the stream; the detail
re-asks on ``live:this-incident``, which ``app.js`` fires when an ``incident`` event names the
incident on screen (htmx's own event filters would need ``eval``, which the CSP forbids).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse

from infragent.incidents.core import MOVES, IncidentNotFoundError, StatusChangeError
from infragent.incidents.model import ACTIVE_STATUSES, IncidentStatus
from infragent.model import Severity
from infragent.notify.mute import silenced_by
from infragent.notify.route import incident_labels
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.templating import render
from infragent.store import dashboard, incidents, notify_config
from infragent.store.incidents import CursorError

router = APIRouter()

PER_PAGE = 50
MAX_NOTE = 10_000
#: the status filter's choices: "active" is open + acknowledged + remediating
STATUS_CHOICES = ("active", *(s.value for s in IncidentStatus))
SEVERITY_CHOICES = tuple(s.value for s in Severity)


def _statuses(choice: str) -> list[IncidentStatus]:
    if choice == "active":
        return sorted(ACTIVE_STATUSES)
    return [IncidentStatus(choice)] if choice in {s.value for s in IncidentStatus} else []


@router.get("/incidents", response_class=HTMLResponse)
def incident_list(
    request: Request,
    who: Annotated[Principal, Depends(page("incidents.read"))],
    svc: Annotated[AppServices, Depends(services)],
    status: str = "",
    severity: str = "",
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """An unknown filter value shows all; a cursor this server did not give out is shown as an
    error above the first page."""
    status = status if status in STATUS_CHOICES else ""
    severity = severity if severity in SEVERITY_CHOICES else ""
    q = q.strip()
    error = ""
    with svc.store.read() as conn:
        find: dict[str, Any] = {"status": _statuses(status), "severity": severity or None, "text": q}
        try:
            found = dashboard.find_incidents(
                conn, who.client_id, **find, limit=PER_PAGE, cursor=cursor or None
            )
        except CursorError:
            error, cursor = "That page link is no longer valid: showing the newest incidents.", ""
            found = dashboard.find_incidents(conn, who.client_id, **find, limit=PER_PAGE)
    partial = request.headers.get("HX-Target") == "incidents-results"
    return render(
        request,
        "incidents/_results.html" if partial else "incidents/list.html",
        who,
        found=found,
        status=status,
        severity=severity,
        q=q,
        cursor=cursor,
        error=error,
        statuses=STATUS_CHOICES,
        severities=SEVERITY_CHOICES,
        now=svc.clock(),
        fmt=formats,
    )


def _detail(
    request: Request,
    who: Principal,
    svc: AppServices,
    incident_id: str,
    template: str,
    error: str = "",
) -> HTMLResponse:
    with svc.store.read() as conn:
        found = incidents.get_incident(conn, who.client_id, incident_id)
        if found is None:
            return render(request, "incidents/missing.html", who, status_code=404, incident_id=incident_id)
        entries = incidents.timeline(conn, who.client_id, incident_id)
        ids = [str(e.entry.detail["command_id"]) for e in entries if e.entry.detail.get("command_id")]
        commands = dashboard.commands_by_id(conn, who.client_id, ids)
        now = svc.clock()
        silence = silenced_by(
            notify_config.active_silences(conn, who.client_id, now), incident_labels(found), now
        )
    return render(
        request,
        template,
        who,
        incident=found,
        entries=entries,
        commands=commands,
        error=error,
        silence=silence,
        now=now,
        fmt=formats,
        # the buttons are the status machine's moves: an escalated incident is one for people
        can_ack=IncidentStatus.ACKNOWLEDGED in MOVES[found.status],
        can_resolve=IncidentStatus.RESOLVED in MOVES[found.status],
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_detail(
    request: Request,
    incident_id: str,
    who: Annotated[Principal, Depends(page("incidents.read"))],
    svc: Annotated[AppServices, Depends(services)],
    part: str = "",
) -> HTMLResponse:
    template = "incidents/_body.html" if part == "body" else "incidents/detail.html"
    return _detail(request, who, svc, incident_id, template)


def _move(
    request: Request, who: Principal, svc: AppServices, incident_id: str, to: IncidentStatus
) -> HTMLResponse:
    error = ""
    try:
        with svc.store.write() as conn:
            incidents.set_status(conn, who.client_id, incident_id, to, who.actor, svc.clock())
    except IncidentNotFoundError:
        pass  # rendered as the 404 page below
    except StatusChangeError as exc:
        error = str(exc)
    return _detail(request, who, svc, incident_id, "incidents/_body.html", error)


@router.post("/incidents/{incident_id}/ack", response_class=HTMLResponse)
def acknowledge(
    request: Request,
    incident_id: str,
    who: Annotated[Principal, Depends(page("incidents.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> HTMLResponse:
    return _move(request, who, svc, incident_id, IncidentStatus.ACKNOWLEDGED)


@router.post("/incidents/{incident_id}/resolve", response_class=HTMLResponse)
def resolve(
    request: Request,
    incident_id: str,
    who: Annotated[Principal, Depends(page("incidents.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> HTMLResponse:
    return _move(request, who, svc, incident_id, IncidentStatus.RESOLVED)


@router.post("/incidents/{incident_id}/note", response_class=HTMLResponse)
def add_note(
    request: Request,
    incident_id: str,
    who: Annotated[Principal, Depends(page("incidents.write"))],
    svc: Annotated[AppServices, Depends(services)],
    text: Annotated[str, Form()] = "",
) -> HTMLResponse:
    text = text.strip()
    error = ""
    if not text:
        error = "A note needs some text."
    elif len(text) > MAX_NOTE:
        error = f"A note is at most {MAX_NOTE:,} characters ({len(text):,} given)."
    else:
        try:
            with svc.store.write() as conn:
                incidents.add_note(conn, who.client_id, incident_id, who.actor, text, svc.clock())
        except IncidentNotFoundError:
            pass  # rendered as the 404 page below
    return _detail(request, who, svc, incident_id, "incidents/_body.html", error)
