"""``/notify/silences``: silences in force, pending and expired; a form to create one (matchers,
a duration or an end, a comment) and an Expire button. ``/notify/silences/new?incident=<id>`` is
where the incident page's "Silence" button leads: the matchers come pre-filled with the labels the
router sees for that incident (``notify.route.incident_labels``), so by default the silence
mutes exactly that incident's notifications; the person may widen or narrow it before saving.

Why a silence is checked by ``notify.config.parse_silence``: the API's rules (matchers required,
one that does not match the empty value, an end after the start and in the future, a comment),
with every problem shown as ``field path: message``. Times are UTC (a ``datetime-local`` input has
no zone); a duration (``2h``, ``30m``) is usually simpler.

Permissions: reading ``notify.read``; creating and expiring ``silences.write`` (operator, admin).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from infragent.notify import config as notify_config
from infragent.notify.errors import NotifyConfigError, NotifyNotFoundError
from infragent.notify.model import Matcher
from infragent.notify.route import incident_labels
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.pages.notify_forms import FormData, form_data, silence_doc
from infragent.server.web.templating import is_htmx, render, render_part
from infragent.store import incident_reads
from infragent.store import notify_config as store

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("notify.read"))]
Writer = Annotated[Principal, Depends(page("silences.write"))]
Form = Annotated[FormData, Depends(form_data)]

#: expired silences listed (the newest)
EXPIRED_SHOWN: Final = 50
DEFAULT_DURATION: Final = "2h"


def remaining(end: float, now: float) -> str:
    """How long until ``end``: ``"2 h"``, ``"5 min"``."""
    return formats.ago(now, end).removesuffix(" ago")


def _lists(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    message: str = "",
    status: int = 200,
    created: str = "",
) -> HTMLResponse:
    now = svc.clock()
    with svc.store.read() as conn:
        active = store.list_silences(conn, who.client_id, state="active", now=now)
        pending = store.list_silences(conn, who.client_id, state="pending", now=now)
        expired = store.list_silences(conn, who.client_id, state="expired", now=now, limit=EXPIRED_SHOWN)
    return render_part(
        request,
        "notify/silences_section.html",
        "notify/silences.html",
        who,
        status,
        groups=(
            ("active", "In force", active),
            ("pending", "Pending", pending),
            ("expired", "Expired", expired),
        ),
        message=message,
        created=created,
        now=now,
        fmt=formats,
        matcher_text=notify_config.matcher_text,
        remaining=remaining,
    )


@router.get("/notify/silences", response_class=HTMLResponse)
def silences_page(request: Request, who: Reader, svc: Svc, created: str = "") -> HTMLResponse:
    return _lists(request, who, svc, created=created)


def _form(
    request: Request,
    who: Principal,
    values: dict[str, str],
    *,
    problems: list[tuple[str, str]] | None = None,
    status: int = 200,
    incident_title: str = "",
) -> HTMLResponse:
    return render_part(
        request,
        "notify/silence_form.html",
        "notify/silence_new.html",
        who,
        status,
        values=values,
        problems=problems or [],
        incident_title=incident_title,
    )


@router.get("/notify/silences/new", response_class=HTMLResponse)
def new_silence(request: Request, who: Writer, svc: Svc, incident: str = "") -> HTMLResponse:
    """The form, pre-filled from ``incident`` when given (its labels as equality matchers)."""
    values = {"matchers": "", "duration": DEFAULT_DURATION, "comment": "", "incident_id": ""}
    title = ""
    if incident:
        with svc.store.read() as conn:
            found = incident_reads.get_incident(conn, who.client_id, incident)
        if found is None:
            message = f"incident {incident!r} not found"
            return render(request, "notify/missing.html", who, status_code=404, message=message)
        labels = incident_labels(found)
        values["matchers"] = "\n".join(
            notify_config.matcher_text(Matcher(k, "=", v)) for k, v in sorted(labels.items())
        )
        values["comment"] = f"Silenced from the incident page: {found.title}"
        values["incident_id"] = found.id
        title = found.title
    return _form(request, who, values, incident_title=title)


@router.post("/notify/silences", response_class=HTMLResponse)
def create_silence(request: Request, who: Writer, svc: Svc, form: Form) -> Response:
    values = {
        k: (form.get(k) or [""])[0]
        for k in ("matchers", "duration", "ends_at", "starts_at", "comment", "incident_id")
    }
    now = svc.clock()
    try:
        matchers, starts_at, ends_at, comment = notify_config.parse_silence(silence_doc(form), now)
    except NotifyConfigError as exc:
        return _form(request, who, values, problems=exc.problems, status=422)
    incident_id = values["incident_id"].strip() or None
    if incident_id is not None:
        with svc.store.read() as conn:
            if incident_reads.get_incident(conn, who.client_id, incident_id) is None:
                return _form(request, who, values, problems=[("incident_id", "no such incident")], status=422)
    with svc.store.write() as conn:
        made = store.create_silence(
            conn,
            who.client_id,
            matchers=matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=who.actor,
            comment=comment,
            incident_id=incident_id,
            now=now,
        )
    target = f"/notify/silences?created={made.id}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.post("/notify/silences/{silence_id}/expire", response_class=HTMLResponse)
def expire(request: Request, silence_id: str, who: Writer, svc: Svc) -> HTMLResponse:
    """End the silence now; notifications it held back go out at their group's next flush."""
    try:
        with svc.store.write() as conn:
            store.expire_silence(conn, who.client_id, silence_id, actor=who.actor, now=svc.clock())
    except NotifyNotFoundError as exc:
        return _lists(request, who, svc, message=exc.message, status=404)
    return _lists(request, who, svc)
