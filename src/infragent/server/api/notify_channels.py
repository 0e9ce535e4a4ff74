"""Notification channels of the caller's tenant: list, create, read, change, delete, send a test.

Reading is ``notify.read``; changing is ``channels.write`` (admin); a test send is
``channels.test`` (operator). A channel is validated by ``notify/config.parse_channel`` (every
problem at once, as a 422 naming each field), then every address it will connect to is judged by
the outbound-URL policy (``outbound/policy.check_url``), so a channel aimed at a private or metadata
address is refused when it is saved, naming the field and never the secret URL itself (the delivery
worker judges it again at each connection, after DNS).

Why secrets are write-only: Slack, Discord and Teams webhook URLs, bot tokens, routing keys, SMTP
passwords and apprise URLs are credentials. No answer carries one (``secrets_set`` names the ones
stored); a PATCH replaces the secrets it names and keeps the others. The one exception is a
webhook channel's signing secret when the server generated it: it is returned once, at creation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from infragent import signing
from infragent.notify import config as notify_config
from infragent.notify import testsend
from infragent.notify.channels.apprise_channel import apprise_url_problem
from infragent.notify.channels.base import deps_from_settings
from infragent.notify.errors import NotifyConfigError
from infragent.notify.model import ChannelConfig
from infragent.notify.render import PARTS, validate_template
from infragent.outbound.policy import OutboundPolicy, Resolver, check_url
from infragent.outbound.transport import system_resolver
from infragent.server.api.deps import AppServices, services
from infragent.server.auth import Principal, require
from infragent.server.notify_schemas import (
    ChannelCreatedOut,
    ChannelIn,
    ChannelListOut,
    ChannelOut,
    ChannelPatch,
    TestIn,
    TestOut,
)
from infragent.store import notify_config as channels
from infragent.store import notify_reads

router = APIRouter(prefix="/api/v1/notify/channels", tags=["notifications"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such channel (another tenant's is the same)"}
}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "a field is invalid or its address refused: `problems` names each one"}
}
#: Where each kind keeps the http(s) URLs it connects to (a default URL is ours, not checked).
URL_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("settings.url",),
    "slack": ("secrets.url",),
    "slack_bot": ("settings.api_url",),
    "discord": ("secrets.url",),
    "teams": ("secrets.url",),
    "pagerduty": ("settings.url",),
}


def _smtp_url(host: str, port: object) -> str:
    """The SMTP server as a URL ``check_url`` can judge (it speaks http(s) URLs only)."""
    try:
        shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        shown = host
    return f"http://{shown}:{port if isinstance(port, int) else 25}/"


def address_problems(
    kind: str,
    settings: Mapping[str, Any],
    secrets: Mapping[str, Any],
    policy: OutboundPolicy,
    resolve: Resolver = system_resolver,
    only: set[str] | None = None,
) -> list[tuple[str, str]]:
    """``(field, "refused: …")`` for each address of the channel the policy refuses. ``only``: the
    fields to judge (a PATCH judges what it changes). The reason names the address and the setting
    that could allow it, never the URL (for a secret field the URL is the credential)."""
    sections = {"settings": settings, "secrets": secrets}
    found: list[tuple[str, str]] = []

    def judge(field: str, url: str) -> None:
        refusal = check_url(url, policy, resolve)
        if refusal is not None:
            found.append((field, f"refused: {refusal}"))

    for field in URL_FIELDS.get(kind, ()):
        section, name = field.split(".")
        value = sections[section].get(name)
        if isinstance(value, str) and (only is None or field in only):
            judge(field, value)
    host = settings.get("host")
    if (
        kind == "email"
        and isinstance(host, str)
        and (only is None or {"settings.host", "settings.port"} & only)
    ):
        judge("settings.host", _smtp_url(host, settings.get("port")))
    urls = secrets.get("urls")
    if kind == "apprise" and isinstance(urls, list) and (only is None or "secrets.urls" in only):
        for i, url in enumerate(urls):
            problem = apprise_url_problem(url, policy, resolve)
            if problem is not None:
                found.append((f"secrets.urls[{i}]", f"refused: {problem}"))
    return found


def _out(ch: ChannelConfig) -> ChannelOut:
    return ChannelOut(**channels.public_channel(ch))


def referenced_channels(tree: Any) -> set[str]:
    """The channel names a stored route tree names (receivers and escalation receivers), read from
    the document itself so that even a tree a later version reads differently protects them."""
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        for source in [node.get("receivers"), *(s.get("receivers") for s in _dicts(node.get("escalation")))]:
            if isinstance(source, list):
                names.update(n for n in source if isinstance(n, str))
        stack.extend(_dicts(node.get("routes")))
    return names


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


@router.get("", response_model=ChannelListOut)
def list_channels(
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ChannelListOut:
    """The tenant's channels by name: settings and the names of the secrets set, never a secret."""
    with svc.store.read() as conn:
        return ChannelListOut(channels=[_out(c) for c in channels.list_channels(conn, who.client_id)])


@router.post(
    "",
    response_model=ChannelCreatedOut,
    status_code=201,
    responses=INVALID | {409: {"description": "the tenant has a channel of that name"}},
)
def create_channel(
    body: ChannelIn,
    who: Annotated[Principal, Depends(require("channels.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ChannelCreatedOut:
    """A new channel. A webhook channel without ``secrets.secret`` gets a generated signing secret,
    returned once here as ``signing_secret``."""
    settings, secrets = notify_config.parse_channel(body.kind, body.settings, body.secrets)
    generated = None
    if body.kind == "webhook" and "secret" not in secrets:
        generated = secrets["secret"] = signing.new_secret()
    refused = address_problems(body.kind, settings, secrets, svc.outbound)
    if refused:
        raise NotifyConfigError(refused)
    with svc.store.write() as conn:
        created = channels.create_channel(
            conn,
            who.client_id,
            name=body.name,
            kind=body.kind,
            settings=settings,
            secrets=secrets,
            enabled=body.enabled,
            actor=who.actor,
            now=svc.clock(),
        )
    return ChannelCreatedOut(**channels.public_channel(created), signing_secret=generated)


@router.get("/{channel_id}", response_model=ChannelOut, responses=NOT_FOUND)
def get_channel(
    channel_id: str,
    who: Annotated[Principal, Depends(require("notify.read"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ChannelOut:
    with svc.store.read() as conn:
        return _out(channels.get_channel(conn, who.client_id, channel_id))


def _merged(current: Mapping[str, Any], change: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(current)
    for key, value in (change or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@router.patch(
    "/{channel_id}",
    response_model=ChannelOut,
    responses=NOT_FOUND | INVALID | {409: {"description": "the new name is taken"}},
)
def change_channel(
    channel_id: str,
    body: ChannelPatch,
    who: Annotated[Principal, Depends(require("channels.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> ChannelOut:
    """Change any of ``name``, ``settings`` (merged; null removes a field), ``secrets`` (the ones
    named are replaced, null removes one, the others are kept) and ``enabled``. The channel as it
    would be is validated whole; only the addresses changed are judged again."""
    with svc.store.write() as conn:
        current = channels.get_channel(conn, who.client_id, channel_id)
        settings, secrets = notify_config.parse_channel(
            current.kind, _merged(current.settings, body.settings), _merged(current.secrets, body.secrets)
        )
        changed = {f"settings.{k}" for k in body.settings or {}} | {
            f"secrets.{k}" for k in body.secrets or {}
        }
        refused = address_problems(current.kind, settings, secrets, svc.outbound, only=changed)
        if refused:
            raise NotifyConfigError(refused)
        updated = channels.update_channel(
            conn,
            who.client_id,
            channel_id,
            name=body.name,
            settings=settings if body.settings is not None else None,
            secrets={k: secrets.get(k) for k in body.secrets} if body.secrets is not None else None,
            enabled=body.enabled,
            actor=who.actor,
            now=svc.clock(),
        )
    return _out(updated)


@router.delete(
    "/{channel_id}",
    status_code=204,
    responses=NOT_FOUND | {409: {"description": "a route of the stored route tree names the channel"}},
)
def delete_channel(
    channel_id: str,
    who: Annotated[Principal, Depends(require("channels.write"))],
    svc: Annotated[AppServices, Depends(services)],
) -> Response:
    """Delete a channel no route names (409 names the fix); its past deliveries stay listed."""
    with svc.store.write() as conn:
        routing = channels.get_routing(conn, who.client_id)
        in_use = referenced_channels(routing.tree) if routing is not None else set()
        channels.delete_channel(
            conn, who.client_id, channel_id, actor=who.actor, now=svc.clock(), in_use=in_use
        )
    return Response(status_code=204)


@router.post("/{channel_id}/test", response_model=TestOut, responses=NOT_FOUND | INVALID)
def test_channel(
    channel_id: str,
    who: Annotated[Principal, Depends(require("channels.test"))],
    svc: Annotated[AppServices, Depends(services)],
    body: TestIn | None = None,
) -> TestOut:
    """Send one ``test`` message now, once, and answer what the receiver said: 200 whatever the
    outcome (a refusal is the answer, with its status code and error). An ``inapp`` channel writes
    the test in the caller's own inbox (a signed-in user; a key has none)."""
    now = svc.clock()
    template = body.template if body is not None else None
    if template:
        _check_template(template)
    with svc.store.read() as conn:
        channel = channels.get_channel(conn, who.client_id, channel_id)
    public_url = svc.settings.public_url
    if channel.kind == "inapp":
        if who.user_id is None:
            return TestOut(
                outcome="failed", status_code=None, error="in-app notifications belong to users; sign in"
            )
        message = testsend.test_message(channel, now=now, public_url=public_url, template=template)
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
        return TestOut(outcome="delivered", status_code=None, error=None)
    deps = deps_from_settings(svc.settings)
    try:
        result = testsend.test_send(channel, deps, now=now, public_url=public_url, template=template)
    finally:
        deps.close()
    return TestOut(outcome=result.outcome, status_code=result.status_code, error=result.error)


def _check_template(template: Mapping[str, str]) -> None:
    """A template to try is checked as a route's would be: every part named at fault (422)."""
    problems = [
        (f"template.{k}", f"one of {', '.join(PARTS)} is expected") for k in template if k not in PARTS
    ]
    for key, source in template.items():
        error = validate_template(source) if key in PARTS else None
        if error is not None:
            problems.append((f"template.{key}", error))
    if problems:
        raise NotifyConfigError(problems)
