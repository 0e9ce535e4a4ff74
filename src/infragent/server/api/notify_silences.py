"""Silences (mute what matches, for a while) and inhibit rules (mute what a bigger problem explains).

Silences: reading is ``notify.read``; creating and expiring ``silences.write`` (an operator's: the
person on call silences a known problem without an admin). Inhibit rules change what the whole
tenant is told, so writing them is ``routes.write`` (admin). Both are validated by
``notify/config.py`` (every problem at once) and stored by ``store/notify_config.py``, audited.

A silence created from an incident (``incident_id`` without ``matchers``) takes the incident's
labels as its matchers (``notify/route.incident_labels``: the labels routing sees), each an exact
match, so the silence mutes that incident and anything with the very same labels.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from infragent.notify import config as notify_config
from infragent.notify.errors import NotifyConfigError
from infragent.notify.route import incident_labels
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.notify_schemas import (
    InhibitIn,
    InhibitListOut,
    InhibitOut,
    SilenceIn,
    SilenceListOut,
    SilenceOut,
)
from infragent.store import incidents
from infragent.store import notify_config as store

router = APIRouter(prefix="/api/v1/notify", tags=["notifications"])

SILENCE_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such silence (another tenant's is the same)"}
}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "the document is invalid: `problems` names every fault"}
}


def _matchers_of_incident(svc: AppServices, client_id: str, incident_id: str) -> list[str]:
    with svc.store.read() as conn:
        found = incidents.get_incident(conn, client_id, incident_id)
    if found is None:
        raise NotifyConfigError([("incident_id", f"no incident {incident_id!r} in this tenant")])
    # every label routing sees, but the tenant's own id: a silence is the tenant's anyway
    labels = {k: v for k, v in incident_labels(found).items() if k != "tenant"}
    if not labels:
        raise NotifyConfigError([("incident_id", "the incident has no labels to match: give matchers")])
    return [f'{name}="{_quoted(value)}"' for name, value in sorted(labels.items())]


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@router.get("/silences", response_model=SilenceListOut)
def list_silences(
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
    state: Literal["active", "pending", "expired"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> SilenceListOut:
    """The tenant's silences (in ``state``, or all): active and pending ones by their end, expired
    ones latest first; each with its ``state`` now."""
    now = svc.clock()
    with svc.store.read() as conn:
        found = store.list_silences(conn, who.client_id, state=state, now=now, limit=limit)
    return SilenceListOut(silences=[SilenceOut.of(s, now) for s in found])


@router.post("/silences", response_model=SilenceOut, status_code=201, responses=INVALID)
def create_silence(
    body: SilenceIn,
    who: Annotated[Principal, Depends(require("silences.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> SilenceOut:
    """A silence: ``matchers`` (or ``incident_id`` alone: the incident's labels), ``comment``,
    ``starts_at`` (default now), and ``ends_at`` or ``duration``."""
    doc = body.model_dump(exclude_unset=True)
    doc = {k: v for k, v in doc.items() if v is not None or k == "matchers"}
    if body.incident_id is not None and body.matchers is None:
        doc["matchers"] = _matchers_of_incident(svc, who.client_id, body.incident_id)
    now = svc.clock()
    matchers, starts_at, ends_at, comment = notify_config.parse_silence(doc, now)
    with svc.store.write() as conn:
        silence = store.create_silence(
            conn,
            who.client_id,
            matchers=matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=who.actor,
            comment=comment,
            incident_id=body.incident_id,
            now=now,
        )
    return SilenceOut.of(silence, now)


@router.get("/silences/{silence_id}", response_model=SilenceOut, responses=SILENCE_NOT_FOUND)
def get_silence(
    silence_id: str,
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> SilenceOut:
    with svc.store.read() as conn:
        return SilenceOut.of(store.get_silence(conn, who.client_id, silence_id), svc.clock())


@router.delete("/silences/{silence_id}", response_model=SilenceOut, responses=SILENCE_NOT_FOUND)
def expire_silence(
    silence_id: str,
    who: Annotated[Principal, Depends(require("silences.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> SilenceOut:
    """Expire a silence now (it stays listed, expired); one already over is answered as it is."""
    now = svc.clock()
    with svc.store.write() as conn:
        return SilenceOut.of(
            store.expire_silence(conn, who.client_id, silence_id, actor=who.actor, now=now), now
        )


@router.get("/inhibit-rules", response_model=InhibitListOut)
def list_inhibit_rules(
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> InhibitListOut:
    """The tenant's inhibit rules, oldest first."""
    with svc.store.read() as conn:
        return InhibitListOut(rules=[InhibitOut.of(r) for r in store.list_inhibit_rules(conn, who.client_id)])


@router.post(
    "/inhibit-rules",
    response_model=InhibitOut,
    status_code=201,
    responses=INVALID | {409: {"description": "the tenant has a rule of that name"}},
)
def create_inhibit_rule(
    body: InhibitIn,
    who: Annotated[Principal, Depends(require("routes.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> InhibitOut:
    """While an incident matching ``source`` fires, incidents matching ``target`` with the same
    values of the ``equal`` labels are not notified."""
    doc = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    name, source, target, equal = notify_config.parse_inhibit_rule(doc)
    with svc.store.write() as conn:
        rule = store.create_inhibit_rule(
            conn,
            who.client_id,
            name=name,
            source=source,
            target=target,
            equal=equal,
            actor=who.actor,
            now=svc.clock(),
        )
    return InhibitOut.of(rule)


@router.delete(
    "/inhibit-rules/{rule_id}",
    status_code=204,
    responses={404: {"description": "no such rule (another tenant's is the same)"}},
)
def delete_inhibit_rule(
    rule_id: str,
    who: Annotated[Principal, Depends(require("routes.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> Response:
    with svc.store.write() as conn:
        store.delete_inhibit_rule(conn, who.client_id, rule_id, actor=who.actor, now=svc.clock())
    return Response(status_code=204)
