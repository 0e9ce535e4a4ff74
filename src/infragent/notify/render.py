"""Render a notification for one channel kind: fill ``Message.title``, ``text`` and ``html``.

Called by the delivery worker just before ``send`` (and again for each retry: rendering is pure and
``now`` is passed in, so "for 12 min" stays true at the moment of sending). The defaults and the
template language are in ``notify/templates.py``; a route's ``template`` (``title``, ``text``,
``html``) replaces the default of each part it names.

Why a template failure never loses the message: an override is validated when saved
(``validate_template``), but a message can still carry data the sample did not (a missing detail,
a value of another type). Then the default of that part is used and one line
"(template error: …)" is appended, so the responder sees the incident and the route's owner sees
what to fix. Should the default itself fail (it never should), a plain summary built without Jinja
is sent.

Size caps: the title is one line of at most 250 characters everywhere (it becomes an e-mail
subject, a Slack header); chat bodies (Slack, Discord, Teams) are cut at 3500 characters, a length
people still read in a chat (each adapter clips further to its vendor's field limits: Discord's
``content`` holds 2000). A message lists at most 10 incidents, then "and N more".

For e-mail, a ``text`` override without an ``html`` one also gives the HTML part (the text, escaped,
in a ``<pre>``): the two parts of one mail must not tell different stories.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateSyntaxError

from infragent.notify import templates as tpl
from infragent.notify.model import (
    NOTIFICATION_KINDS,
    ChannelKind,
    IncidentSummary,
    Message,
    NotificationKind,
)

#: Incidents listed in one message; the rest are counted ("and N more").
MAX_LISTED = 10
TITLE_CAP = 250
CHAT_TEXT_CAP = 3500
CHAT_KINDS: frozenset[ChannelKind] = frozenset({"slack", "slack_bot", "discord", "teams"})
#: The longest template source accepted (a template is a layout, not a program).
MAX_TEMPLATE_CHARS = 20_000
#: The longest error shown in a "(template error: …)" line.
MAX_ERROR_CHARS = 300
PARTS = ("title", "text", "html")

_SPACE = re.compile(r"\s+")


def context(message: Message, kind: ChannelKind, now: float) -> dict[str, Any]:
    """What the templates of ``message`` see when rendered for ``kind`` (``templates`` docstring)."""
    fmt = tpl.BODY_FORMAT[kind]
    incidents = [_escaped(i, fmt) for i in message.incidents]
    group_size = message.firing_count + message.resolved_count
    total = max(len(incidents), group_size if message.kind in ("firing", "resolved") else 0)
    shown = incidents[:MAX_LISTED]
    bold, link = tpl.markup(fmt)
    return {
        "kind": message.kind,
        "channel_kind": kind,
        "incidents": incidents,
        "incident": incidents[0] if incidents else None,
        "shown": shown,
        "more": total - len(shown),
        "total": total,
        "firing_count": message.firing_count,
        "resolved_count": message.resolved_count,
        "group_labels": tpl.escape_value(dict(message.group_labels), fmt),
        "detail": tpl.escape_value(dict(message.detail), fmt, keys=False),
        "now": now,
        "bold": bold,
        "link": link,
    }


def render(message: Message, kind: ChannelKind, now: float) -> Message:
    """``message`` with ``title``, ``text`` and (for e-mail) ``html`` rendered for ``kind``."""
    try:
        return _render(message, kind, now)
    except Exception as exc:  # noqa: BLE001 - a default template failed: still send what we know
        return _plain(message, kind, now, f"default template: {_describe(exc)}")


def _render(message: Message, kind: ChannelKind, now: float) -> Message:
    ctx = context(message, kind, now)
    override = {k: v for k, v in message.template.items() if k in PARTS and v}
    errors: list[str] = []

    def part(name: str, default: str, html: bool, values: dict[str, Any]) -> str:
        source = override.get(name)
        if source is not None:
            try:
                return tpl.compile_template(source, html).render(values)
            except Exception as exc:  # noqa: BLE001 - any failure of an override falls back
                errors.append(f"{name}: {_describe(exc)}")
        return tpl.compile_template(default, html).render(values)

    default_title = _one_line(tpl.compile_template(tpl.DEFAULT_TITLE, False).render(ctx), TITLE_CAP)
    ctx["title"] = default_title  # an override may extend it: "{{ title }} [prod]"
    title = (
        _one_line(part("title", tpl.DEFAULT_TITLE, False, ctx), TITLE_CAP)
        if "title" in override
        else default_title
    )
    ctx["title"] = title
    text = part("text", tpl.DEFAULT_TEXT, False, ctx).strip("\n")
    html = ""
    if kind == "email":
        if "text" in override and "html" not in override and not any(e.startswith("text:") for e in errors):
            html = _pre(text)
        else:
            html = part("html", tpl.DEFAULT_HTML, True, ctx).strip()
    note = _error_line(errors)
    cap = CHAT_TEXT_CAP if kind in CHAT_KINDS else None
    text = _cap(text, cap, reserve=len(note) + 1 if note else 0)
    if note:
        text = f"{text}\n{note}"
        if html:
            html = f"{html}\n<p>{html_lib.escape(note)}</p>"
    return dataclasses.replace(message, title=title, text=text, html=html)


def validate_template(source: str) -> str | None:
    """Why ``source`` cannot be a route template (with its line), or None when it renders.

    Syntax first, then a trial render against a sample message of every notification kind
    (e-mail, so ``html`` is exercised too): a name that exists for one kind only must be guarded.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        return f"template is longer than {MAX_TEMPLATE_CHARS} characters"
    try:
        tpl.environment(False).parse(source)
    except TemplateSyntaxError as exc:
        return _describe(exc)
    for notification in NOTIFICATION_KINDS:
        message = _sample(notification, 1_750_000_000.0)
        ctx = {**context(message, "email", 1_750_000_000.0), "title": "sample title"}
        for html in (False, True):
            try:
                tpl.compile_template(source, html).render(ctx)
            except Exception as exc:  # noqa: BLE001 - reported to the person saving the template
                return f"{_describe(exc)} (rendering a {notification} message)"
    return None


def sample_message(kind: ChannelKind, now: float, notification: NotificationKind = "test") -> Message:
    """A rendered sample (two incidents, every field set): a test send, or a look at the layout."""
    return render(_sample(notification, now), kind, now)


def preview(
    kind: ChannelKind,
    template: Mapping[str, str],
    now: float,
    notification: NotificationKind = "firing",
) -> Message:
    """The sample rendered with a route's template override (``notify test --preview``, the API)."""
    message = dataclasses.replace(_sample(notification, now), template=dict(template))
    return render(message, kind, now)


# -- internals ------------------------------------------------------------------------------------


def _escaped(incident: IncidentSummary, fmt: tpl.Format) -> IncidentSummary:
    if tpl.ESCAPE[fmt] is None:
        return incident
    changes = {
        f.name: tpl.escape_value(getattr(incident, f.name), fmt, f.name)
        for f in dataclasses.fields(incident)
        if f.name not in ("id", "url", "opened_at", "resolved_at")
    }
    return dataclasses.replace(incident, **changes)


def _describe(exc: BaseException) -> str:
    """``line 3: 'x' is undefined``: the template line when Jinja knows it; never a traceback."""
    line = getattr(exc, "lineno", None)
    if line is None:
        tb = exc.__traceback__
        while tb is not None:  # Jinja rewrites frames of a template to its source lines
            if tb.tb_frame.f_code.co_filename == "<template>":
                line = tb.tb_lineno
            tb = tb.tb_next
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    text = _one_line(text, MAX_ERROR_CHARS)
    return f"line {line}: {text}" if line else text


def _error_line(errors: list[str]) -> str:
    return f"(template error: {_one_line('; '.join(errors), MAX_ERROR_CHARS)})" if errors else ""


def _one_line(text: str, cap: int) -> str:
    flat = _SPACE.sub(" ", text).strip()
    return flat if len(flat) <= cap else flat[: cap - 1].rstrip() + "…"


def _cap(text: str, cap: int | None, reserve: int = 0) -> str:
    if cap is None or len(text) + reserve <= cap:
        return text
    limit = max(0, cap - reserve - len("\n…"))
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "\n…"


def _pre(text: str) -> str:
    return f'<pre style="white-space:pre-wrap;font-family:sans-serif">{html_lib.escape(text)}</pre>'


def _plain(message: Message, kind: ChannelKind, now: float, error: str) -> Message:
    """The last resort: a summary built without Jinja, with the error line."""
    lines = [f"InfrAgent {message.kind} notification"]
    for i in message.incidents[:MAX_LISTED]:
        lines.append(
            f"- {i.title} ({i.severity}, {i.status}) {tpl.where(i.labels)}, "
            f"since {tpl.iso_utc(i.opened_at)} ({tpl.relative(i.opened_at, now)}) {i.url}".rstrip()
        )
    lines.append(_error_line([error]))
    text = _cap("\n".join(lines), CHAT_TEXT_CAP if kind in CHAT_KINDS else None)
    title = _one_line(
        f"[{message.kind.upper()}] {message.incidents[0].title if message.incidents else 'InfrAgent'}",
        TITLE_CAP,
    )
    html = _pre(text) if kind == "email" else ""
    return dataclasses.replace(message, title=title, text=text, html=html)


def _sample(notification: NotificationKind, now: float) -> Message:
    """Two incidents with every field set, and the detail each notification kind carries."""
    first = IncidentSummary(
        id="inc-sample-1",
        title="Disk almost full",
        severity="critical",
        status="acknowledged" if notification == "acknowledged" else "open",
        fingerprint="sample-fingerprint-1",
        labels={"host": "web-1", "service": "nginx", "mount": "/var"},
        opened_at=now - 720.0,
        rule_name="disk_almost_full",
        acknowledged_by="alice@example.com" if notification == "acknowledged" else None,
        value="97.5 %",
        responder="clean_tmp on web-1: running",
        url="https://infragent.example.com/incidents/inc-sample-1",
    )
    second = dataclasses.replace(
        first,
        id="inc-sample-2",
        title="HTTP 5xx above 5 %",
        severity="warning",
        fingerprint="sample-fingerprint-2",
        labels={"host": "web-1", "service": "api"},
        opened_at=now - 300.0,
        rule_name="http_errors",
        value="7.2 %",
        responder="restart_service on web-1: ok",
        url="https://infragent.example.com/incidents/inc-sample-2",
    )
    if notification == "resolved":
        first = dataclasses.replace(first, status="resolved", resolved_at=now - 60.0)
        second = dataclasses.replace(second, status="resolved", resolved_at=now - 30.0)
    incidents = (first, second) if notification in ("firing", "resolved", "test") else (first,)
    details: dict[str, dict[str, Any]] = {
        "escalation": {"step": 2, "after_s": 900.0},
        "approval": {
            "action": "restart_service",
            "target": "web-1",
            "parameters": {"service": "nginx"},
            "reason": "nginx answers 502 since the last deploy",
            "expires_at": now + 600.0,
            "approve_url": "https://infragent.example.com/incidents/inc-sample-1#approval",
        },
        "test": {"channel": "sample"},
    }
    detail = details.get(notification, {})
    grouped = notification in ("firing", "resolved")
    return Message(
        id=f"sample-{notification}",
        client_id="sample",
        kind=notification,
        incidents=incidents,
        created_at=now,
        group_labels={"host": "web-1"} if grouped else {},
        firing_count=2 if notification == "firing" else 0,
        resolved_count=2 if notification == "resolved" else 0,
        detail=detail,
    )
