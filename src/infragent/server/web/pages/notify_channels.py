"""``/notify/channels``: a tenant's notification channels: list (settings, and which secrets are
set, never a value), create per kind, edit, enable / disable, delete, and "Send test" with its
outcome shown inline.

Why the rules are the API's: a form becomes the same settings/secrets documents an API request
carries (``notify_forms.py``), checked by ``notify.config.parse_channel`` and the outbound-URL
policy, and stored by ``store/notify_config.py``; a test send is ``notify.testsend.test_send``,
the function behind ``POST /api/v1/notify/channels/{id}/test``. So the page and the API refuse the
same things with the same field paths (``settings.port: …``, ``secrets.url: refused: …``).

Why secrets are write-only here too: the page is built from ``public_channel`` (secret *names*
only); a secret input is a password input that starts blank, and blank means "keep the stored
one". A refusal never repeats a secret URL: the outbound check names the host, as the channel
adapters' errors do. A webhook channel created without a signing secret gets one generated,
shown once on the answer, like an API key's.

A test send of an ``inapp`` channel is written in the person's own inbox, as the API's is.

Permissions: reading ``notify.read``; create, edit, enable, delete ``channels.write`` (admin);
Send test ``channels.test`` (operator).
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from infragent.notify import config as notify_config
from infragent.notify import testsend
from infragent.notify.channels.base import deps_from_settings
from infragent.notify.errors import NotifyConfigError, NotifyConflictError, NotifyNotFoundError
from infragent.notify.model import CHANNEL_KINDS, ChannelKind, DeliveryResult
from infragent.server.api.deps import AppServices, services
from infragent.server.api.notify_channels import address_problems, referenced_channels
from infragent.server.auth import Principal
from infragent.server.web import formats
from infragent.server.web.deps import page
from infragent.server.web.pages.inbox import CHANGED_EVENT as INBOX_CHANGED
from infragent.server.web.pages.notify_forms import FormData, channel_kind, channel_values, fields, form_data
from infragent.server.web.templating import is_htmx, render, render_part
from infragent.signing import new_secret
from infragent.store import notify_config as store
from infragent.store import notify_reads

router = APIRouter()

Svc = Annotated[AppServices, Depends(services)]
Reader = Annotated[Principal, Depends(page("notify.read"))]
Writer = Annotated[Principal, Depends(page("channels.write"))]
Tester = Annotated[Principal, Depends(page("channels.test"))]
Form = Annotated[FormData, Depends(form_data)]

DEFAULT_KIND: ChannelKind = "slack"


def receivers_in_use(conn: sa.Connection, client_id: str) -> set[str]:
    """Every channel name the tenant's stored route tree names (a channel among them stays)."""
    routing = store.get_routing(conn, client_id)
    return referenced_channels(routing.tree) if routing is not None else set()


def run_test_send(svc: AppServices, who: Principal, channel_id: str) -> tuple[str, DeliveryResult]:
    """(the channel's kind, what one test message through it came to), sent now, no retry.
    ``NotifyNotFoundError`` for another tenant's or a missing channel."""
    now = svc.clock()
    with svc.store.read() as conn:
        channel = store.get_channel(conn, who.client_id, channel_id)
    public_url = svc.settings.public_url
    if channel.kind == "inapp":
        if who.user_id is None:
            return channel.kind, DeliveryResult("failed", error="in-app notifications belong to users")
        message = testsend.test_message(channel, now=now, public_url=public_url)
        with svc.store.write() as conn:
            notify_reads.inbox_add(
                conn,
                who.client_id,
                who.user_id,
                delivery_id=message.id,
                kind="test",
                title=message.title,
                body=message.text,
                incident_id=None,
                now=now,
            )
        return channel.kind, DeliveryResult("delivered")
    deps = deps_from_settings(svc.settings)
    try:
        return channel.kind, testsend.test_send(channel, deps, now=now, public_url=public_url)
    finally:
        deps.close()


def _section(
    request: Request,
    who: Principal,
    svc: AppServices,
    *,
    kind: ChannelKind = DEFAULT_KIND,
    problems: list[tuple[str, str]] | None = None,
    status: int = 200,
    values: FormData | None = None,
    created: dict[str, Any] | None = None,
    signing_secret: str = "",
) -> HTMLResponse:
    with svc.store.read() as conn:
        channels = [store.public_channel(c) for c in store.list_channels(conn, who.client_id)]
    return render_part(
        request,
        "notify/channels_section.html",
        "notify/channels.html",
        who,
        status,
        channels=channels,
        kinds=CHANNEL_KINDS,
        kind=kind,
        fields=fields(kind),
        values=values or {},
        problems=problems or [],
        created=created,
        signing_secret=signing_secret,
        fmt=formats,
        now=svc.clock(),
    )


@router.get("/notify/channels", response_class=HTMLResponse)
def channels_page(request: Request, who: Reader, svc: Svc, kind: str = DEFAULT_KIND) -> HTMLResponse:
    return _section(request, who, svc, kind=channel_kind(kind) or DEFAULT_KIND)


@router.get("/notify/channels/fields", response_class=HTMLResponse)
def kind_fields(request: Request, who: Writer, kind: str = DEFAULT_KIND) -> HTMLResponse:
    """The inputs of one kind (the create form's kind select swaps them in)."""
    chosen = channel_kind(kind) or DEFAULT_KIND
    return render(request, "notify/channel_fields.html", who, fields=fields(chosen), values={}, editing=False)


@router.post("/notify/channels", response_class=HTMLResponse)
def create_channel(request: Request, who: Writer, svc: Svc, form: Form) -> HTMLResponse:
    """Validate as the API does and store; every problem is shown with its field path."""
    name = (form.get("name") or [""])[0].strip()
    kind = channel_kind((form.get("kind") or [""])[0])
    if kind is None:
        return _section(request, who, svc, problems=[("kind", "choose a channel kind")], status=422)
    settings, secrets, problems = channel_values(kind, form)
    if not name:
        problems.append(("name", "required"))
    elif len(name) > 100:
        problems.append(("name", "at most 100 characters"))
    generated = ""
    try:
        settings, secrets = notify_config.parse_channel(kind, settings, secrets)
    except NotifyConfigError as exc:
        problems += exc.problems
    if not problems:
        problems += address_problems(kind, settings, secrets, svc.outbound)
    if not problems and kind == "webhook" and "secret" not in secrets:
        generated = secrets["secret"] = new_secret()
    if problems:
        return _section(request, who, svc, kind=kind, problems=problems, status=422, values=form)
    try:
        with svc.store.write() as conn:
            made = store.create_channel(
                conn,
                who.client_id,
                name=name,
                kind=kind,
                settings=settings,
                secrets=secrets,
                actor=who.actor,
                now=svc.clock(),
            )
    except NotifyConflictError as exc:
        return _section(
            request, who, svc, kind=kind, problems=[("name", exc.message)], status=409, values=form
        )
    created = store.public_channel(made)
    return _section(request, who, svc, kind=kind, created=created, signing_secret=generated, status=201)


def _edit(
    request: Request,
    who: Principal,
    svc: AppServices,
    channel_id: str,
    *,
    problems: list[tuple[str, str]] | None = None,
    status: int = 200,
    values: FormData | None = None,
) -> HTMLResponse:
    try:
        with svc.store.read() as conn:
            channel = store.public_channel(store.get_channel(conn, who.client_id, channel_id))
    except NotifyNotFoundError as exc:
        return render(request, "notify/missing.html", who, status_code=404, message=exc.message)
    return render_part(
        request,
        "notify/channel_edit_form.html",
        "notify/channel_edit.html",
        who,
        status,
        channel=channel,
        fields=fields(channel["kind"]),
        values=values,
        problems=problems or [],
    )


@router.get("/notify/channels/{channel_id}", response_class=HTMLResponse)
def edit_page(request: Request, channel_id: str, who: Writer, svc: Svc) -> HTMLResponse:
    return _edit(request, who, svc, channel_id)


@router.post("/notify/channels/{channel_id}", response_class=HTMLResponse)
def update_channel(request: Request, channel_id: str, who: Writer, svc: Svc, form: Form) -> Response:
    """Settings are replaced by the form's; a secret input left blank keeps the stored secret. The
    channel as it would be is validated whole, so an edit cannot leave it without a required field."""
    try:
        with svc.store.read() as conn:
            current = store.get_channel(conn, who.client_id, channel_id)
    except NotifyNotFoundError as exc:
        return render(request, "notify/missing.html", who, status_code=404, message=exc.message)
    name = (form.get("name") or [""])[0].strip()
    settings, given, problems = channel_values(current.kind, form)
    if not name:
        problems.append(("name", "required"))
    try:
        settings, secrets = notify_config.parse_channel(current.kind, settings, {**current.secrets, **given})
    except NotifyConfigError as exc:
        problems += exc.problems
        secrets = {}
    if not problems:  # the addresses changed are judged again, as a PATCH's are
        changed = {f"settings.{k}" for k in settings} | {f"secrets.{k}" for k in given}
        problems += address_problems(current.kind, settings, secrets, svc.outbound, only=changed)
    if not problems:
        try:
            with svc.store.write() as conn:
                store.update_channel(
                    conn,
                    who.client_id,
                    channel_id,
                    name=name,
                    settings=settings,
                    secrets={k: secrets[k] for k in given if k in secrets},
                    actor=who.actor,
                    now=svc.clock(),
                )
        except NotifyConflictError as exc:
            problems.append(("name", exc.message))
    if problems:
        return _edit(request, who, svc, channel_id, problems=problems, status=422, values=form)
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/notify/channels"})
    return RedirectResponse("/notify/channels", status_code=303)


@router.post("/notify/channels/{channel_id}/enable", response_class=HTMLResponse)
def enable(request: Request, channel_id: str, who: Writer, svc: Svc) -> HTMLResponse:
    return _set_enabled(request, who, svc, channel_id, True)


@router.post("/notify/channels/{channel_id}/disable", response_class=HTMLResponse)
def disable(request: Request, channel_id: str, who: Writer, svc: Svc) -> HTMLResponse:
    return _set_enabled(request, who, svc, channel_id, False)


def _set_enabled(
    request: Request, who: Principal, svc: AppServices, channel_id: str, enabled: bool
) -> HTMLResponse:
    try:
        with svc.store.write() as conn:
            store.update_channel(
                conn, who.client_id, channel_id, enabled=enabled, actor=who.actor, now=svc.clock()
            )
    except NotifyNotFoundError as exc:
        return _section(request, who, svc, problems=[("", exc.message)], status=404)
    return _section(request, who, svc)


@router.post("/notify/channels/{channel_id}/delete", response_class=HTMLResponse)
def delete(request: Request, channel_id: str, who: Writer, svc: Svc) -> HTMLResponse:
    """Refused (409, shown) while a route names the channel, as the API's DELETE is."""
    try:
        with svc.store.write() as conn:
            in_use = receivers_in_use(conn, who.client_id)
            store.delete_channel(
                conn, who.client_id, channel_id, actor=who.actor, now=svc.clock(), in_use=in_use
            )
    except (NotifyNotFoundError, NotifyConflictError) as exc:
        return _section(request, who, svc, problems=[("", exc.message)], status=exc.status)
    return _section(request, who, svc)


@router.post("/notify/channels/{channel_id}/test", response_class=HTMLResponse)
def send_test(request: Request, channel_id: str, who: Tester, svc: Svc) -> HTMLResponse:
    """One immediate send of a test message, no retry; the outcome is the answer (200 even when the
    receiver refused it: the test did its job). An in-app test lands in the person's own inbox,
    whose count in the menu then refreshes."""
    try:
        kind, result = run_test_send(svc, who, channel_id)
    except NotifyNotFoundError as exc:
        return render(
            request,
            "notify/test_result.html",
            who,
            status_code=404,
            outcome="failed",
            error=exc.message,
            status_code_seen=None,
        )
    answer = render(
        request,
        "notify/test_result.html",
        who,
        outcome=result.outcome,
        error=result.error,
        status_code_seen=result.status_code,
    )
    if kind == "inapp":
        answer.headers["HX-Trigger"] = INBOX_CHANGED
    return answer
