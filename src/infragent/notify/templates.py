"""The template language of notifications: one sandboxed Jinja2 environment, its filters, and the
default templates every channel kind starts from (``notify/render.py`` renders them).

Why Jinja2 in a sandbox: a route's template override is written by a tenant admin and runs in the
server's delivery worker. ``ImmutableSandboxedEnvironment`` refuses attributes that lead out of the
data (``''.__class__``, ``__globals__``, ``mro``), the unsafe ``str.format`` spellings, and calls that
change a value (``list.append``). On top of it, ``*`` and ``**`` are capped (``"x" * 10**9`` would
allocate a gigabyte in the worker) and Jinja caps ``range`` at 100 000 items. What a sandbox cannot
do is bound CPU time: nested loops over ``range`` can still be slow; templates come from admins only.

Why ``StrictUndefined``: a misspelt name (``{{ incident.tilte }}``) is an error, not an empty string
sent to a pager at night. ``validate_template`` renders every override against a sample of each
notification kind when it is saved, so the mistake is a 422 at that moment; at send time a failing
override falls back to the default template with one line "(template error: …)". The price: an
optional field must be guarded: ``{% if detail.step is defined %}``, ``detail.get("step")``.

What a template sees (every part: ``title``, ``text``, ``html``):

==================  ===========================================================================
``kind``            the notification kind: firing, resolved, escalated, acknowledged,
                    escalation, approval, test
``channel_kind``    the channel kind it is rendered for (email, slack, …)
``incidents``       every ``IncidentSummary`` of the message; ``incident`` is the first (or none)
``shown``           the first 10 of them; ``more`` the number left out; ``total`` the group size
``firing_count``,   the group's counts when it was flushed
``resolved_count``
``group_labels``    the labels the group is keyed by (empty for per-incident kinds)
``detail``          approval: ``action``, ``target``, ``parameters``, ``reason``, ``expires_at``,
                    ``approve_url``; escalation: ``step``, ``after_s``; test: ``channel``
``now``             the time of rendering (Unix seconds)
``title``           the rendered title; in a ``title`` override, the default title
                    (``{{ title }} [prod]``)
``bold(s)``,        the channel's markup for bold text and a link (plain text: the URL alone)
``link(url, text)``
==================  ===========================================================================

Filters: ``ago`` ("12 min ago", "in 5 min", relative to ``now``), ``datetime`` (UTC ISO 8601,
``2025-06-15T12:00:00Z``), ``duration`` (seconds as "1 h 5 min"), ``labels`` (``a=1, b=2``),
``where`` (the labels that say where: host, service, instance…, else all of them).

Formats and escaping. The ``title`` is plain text for every kind (one line, 250 characters at most).
The body (``text``) is plain text for webhook, PagerDuty, in-app, apprise and e-mail; Slack mrkdwn
for slack and slack_bot; Discord markdown; Teams markdown text. E-mail also gets ``html``, rendered
with autoescaping on (a ``<script>`` label value arrives as text). For Slack the values a template
sees are escaped the way Slack asks (``&``, ``<``, ``>``), so a label value cannot ping
``<!channel>``; for Discord markdown characters are escaped and ``@everyone``/``@here`` are broken
with a zero-width space. Teams values are inserted as they are (its cards render no HTML and no
mentions from text). Fields ending in ``url`` are never escaped: links must stay links.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from infragent.notify.model import ChannelKind

Format = Literal["text", "slack", "discord", "teams"]

#: The body format of each channel kind (``html`` is rendered for e-mail besides).
BODY_FORMAT: dict[ChannelKind, Format] = {
    "webhook": "text",
    "slack": "slack",
    "slack_bot": "slack",
    "discord": "discord",
    "teams": "teams",
    "pagerduty": "text",
    "email": "text",
    "inapp": "text",
    "apprise": "text",
}
#: The labels that say where an incident is, in the order they are shown.
WHERE_LABELS = ("host", "instance", "service", "job", "namespace", "pod", "container", "region")
#: The largest string or list ``*`` may build, and the largest exponent ``**`` may use.
MAX_REPEAT = 100_000
MAX_EXPONENT = 64


def duration(seconds: float | None) -> str:
    """A span for people: ``45 s``, ``12 min``, ``1 h 5 min``, ``2 d 3 h``."""
    if seconds is None:
        return "unknown"
    s = int(max(0.0, round(float(seconds))))
    if s < 60:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def iso_utc(ts: float | None) -> str:
    """``2025-06-15T12:00:00Z``: UTC, whole seconds, so every reader sees the same instant."""
    if ts is None:
        return "unknown"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def relative(ts: float | None, now: float) -> str:
    """``12 min ago`` for the past, ``in 5 min`` for the future."""
    if ts is None:
        return "unknown"
    delta = now - float(ts)
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


def format_labels(labels: Mapping[str, Any] | None) -> str:
    """``host=web-1, service=nginx`` (sorted by name), or ``-`` when there is none."""
    if not labels:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def where(labels: Mapping[str, Any] | None) -> str:
    """The labels that say where (``WHERE_LABELS``, in that order), else every label."""
    if not labels:
        return "-"
    found = [f"{name}={labels[name]}" for name in WHERE_LABELS if name in labels]
    return ", ".join(found) if found else format_labels(labels)


@pass_context
def _ago(context: Context, ts: float | None) -> str:
    return relative(ts, float(context.get("now", 0.0)))


# -- escaping of the values a body template sees, per format ------------------------------------

_DISCORD_SPECIAL = re.compile(r"([\\*_~`|>\[\]<#])")
_DISCORD_MENTION = re.compile(r"@(everyone|here)")


def _escape_slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_discord(text: str) -> str:
    return _DISCORD_MENTION.sub("@\u200b\\1", _DISCORD_SPECIAL.sub(r"\\\1", text))


ESCAPE: dict[Format, Callable[[str], str] | None] = {
    "text": None,
    "slack": _escape_slack,
    "discord": _escape_discord,
    "teams": None,
}


def escape_value(value: Any, fmt: Format, key: str = "", *, keys: bool = True) -> Any:
    """``value`` with every string in it escaped for ``fmt``; values of keys ending in ``url`` are
    left alone. ``keys=False`` keeps the keys of a mapping as they are (``detail``: ours, read by
    name in templates; the keys of a nested mapping are data, and escaped)."""
    escape = ESCAPE[fmt]
    if escape is None or key.lower().endswith("url"):
        return value
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, Mapping):
        return {(escape(str(k)) if keys else k): escape_value(v, fmt, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_value(v, fmt) for v in value]
    return value


def markup(fmt: Format) -> tuple[Callable[[Any], str], Callable[..., str]]:
    """``bold`` and ``link`` for a body format (plain text: the text itself, and the URL alone)."""

    def link(url: Any, text: Any = "") -> str:
        href, shown = str(url), str(text)
        if not shown or fmt == "text":
            return href
        if fmt == "slack":
            return f"<{href}|{shown}>"
        return f"[{shown}]({href})"

    def bold(text: Any) -> str:
        if fmt == "slack":
            return f"*{text}*"
        if fmt in ("discord", "teams"):
            return f"**{text}**"
        return str(text)

    return bold, link


# -- the environment -----------------------------------------------------------------------------


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with ``*`` and ``**`` bounded (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, op: str, left: Any, right: Any) -> Any:
        if op == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if op == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_REPEAT:
                    raise SecurityError(f"'*' would build more than {MAX_REPEAT} items")
            return operator.mul(left, right)
        return operator.pow(left, right)


@lru_cache(maxsize=2)
def environment(html: bool) -> ImmutableSandboxedEnvironment:
    """The sandbox (autoescape on for HTML only); built once per flavour, then read-only."""
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(ago=_ago, datetime=iso_utc, duration=duration, labels=format_labels, where=where)
    return env


@lru_cache(maxsize=256)
def compile_template(source: str, html: bool) -> Template:
    """A compiled template (cached: the same route template is rendered for every delivery)."""
    return environment(html).from_string(source)


# -- the defaults ----------------------------------------------------------------------------------

DEFAULT_TITLE = """\
{%- set i = incident -%}
{%- set name = (i.title if i else "InfrAgent") -%}
{%- set group = (group_labels | labels) if group_labels else (name ~ (" and %d more" % (total - 1))) -%}
{%- if kind == "firing" -%}
  {%- if total > 1 %}[FIRING:{{ firing_count or total }}] {{ group }}
  {%- else %}[FIRING] {{ i.severity ~ ": " if i else "" }}{{ name }}{% endif -%}
{%- elif kind == "resolved" -%}
  {%- if total > 1 %}[RESOLVED:{{ resolved_count or total }}] {{ group }}
  {%- else %}[RESOLVED] {{ name }}{% endif -%}
{%- elif kind == "escalated" -%}
  [ESCALATED] {{ i.severity ~ ": " if i else "" }}{{ name }}
{%- elif kind == "acknowledged" -%}
  [ACKNOWLEDGED] {{ name }}{{ " (by %s)" % i.acknowledged_by if i and i.acknowledged_by else "" }}
{%- elif kind == "escalation" -%}
  [NOT ACKNOWLEDGED] {{ name }}{{ " (step %s)" % detail.get("step") if detail.get("step") else "" }}
{%- elif kind == "approval" -%}
  [APPROVAL NEEDED] {{ detail.get("action", "an action") }}
  {{- " on %s" % detail.get("target") if detail.get("target") else "" }}: {{ name }}
{%- else -%}
  [TEST] InfrAgent test notification
{%- endif -%}
"""

DEFAULT_TEXT = """\
{% set d = detail %}
{% set who = incident.acknowledged_by if incident else none %}
{% set after = d.get("after_s") %}
{% if kind == "firing" %}
{{ bold("%d firing" % (firing_count or total)) }}\
{% if resolved_count %}, {{ resolved_count }} resolved{% endif %}\
{{ " (" ~ (group_labels | labels) ~ ")" if group_labels else "" }}
{% elif kind == "resolved" %}
{{ bold("Resolved") }}{{ ": %d incidents" % total if total > 1 else "" }}\
{{ " (" ~ (group_labels | labels) ~ ")" if group_labels else "" }}
{% elif kind == "escalated" %}
{{ bold("Escalated") }}: the responder handed this incident to people; it needs a person now.
{% elif kind == "acknowledged" %}
{{ bold("Acknowledged") }}{{ " by " ~ who if who else "" }}.
{% elif kind == "escalation" %}
{{ bold("Not acknowledged") }}{{ " after " ~ (after | duration) if after is not none else "" }}\
{{ ": escalation step %s" % d.get("step") if d.get("step") else "" }}.
{% elif kind == "approval" %}
{{ bold("Approval needed") }}: the responder asks to run {{ d.get("action", "an action") }}\
{{ " on " ~ d.get("target") if d.get("target") else "" }}.
{% if d.get("parameters") %}parameters: {{ d.get("parameters") | labels }}
{% endif %}
{% if d.get("reason") %}reason: {{ d.get("reason") }}
{% endif %}
{% if d.get("expires_at") %}expires: {{ d.get("expires_at") | datetime }} ({{ d.get("expires_at") | ago }})
{% endif %}
{% if d.get("approve_url") %}approve: {{ link(d.get("approve_url"), "approve or deny") }}
{% endif %}
{% else %}
{{ bold("Test notification") }} from InfrAgent\
{{ " to channel " ~ d.get("channel") if d.get("channel") else "" }}: if you read this, the channel works.
{% endif %}
{% for i in shown %}

{{ bold(i.title) }} ({{ i.severity }}, {{ i.status }})
where: {{ i.labels | where }}
{% if i.resolved_at is not none %}
since: {{ i.opened_at | datetime }}, resolved {{ i.resolved_at | datetime }} \
(lasted {{ (i.resolved_at - i.opened_at) | duration }})
{% else %}
since: {{ i.opened_at | datetime }} (for {{ (now - i.opened_at) | duration }})
{% endif %}
{% if i.value is not none %}value: {{ i.value }}
{% endif %}
{% if i.acknowledged_by %}acknowledged by: {{ i.acknowledged_by }}
{% endif %}
{% if i.responder %}responder: {{ i.responder }}
{% endif %}
{% if i.url %}link: {{ link(i.url, "open the incident") }}
{% endif %}
{% endfor %}
{% if more %}

and {{ more }} more
{% endif %}
"""

_TD = 'style="padding:2px 12px 2px 0;color:#555;vertical-align:top"'
DEFAULT_HTML = (
    """\
{% set d = detail %}
<div style="font-family:sans-serif;font-size:14px">
<p style="font-size:16px"><strong>{{ title }}</strong></p>
{% if kind == "firing" %}
<p>{{ firing_count or total }} firing{{ ", %d resolved" % resolved_count if resolved_count else "" }}\
{{ " (" ~ (group_labels | labels) ~ ")" if group_labels else "" }}</p>
{% elif kind == "resolved" %}
<p>Resolved{{ ": %d incidents" % total if total > 1 else "" }}\
{{ " (" ~ (group_labels | labels) ~ ")" if group_labels else "" }}</p>
{% elif kind == "escalated" %}
<p>The responder handed this incident to people: it needs a person now.</p>
{% elif kind == "acknowledged" %}
<p>Acknowledged{{ " by " ~ incident.acknowledged_by if incident and incident.acknowledged_by else "" }}.</p>
{% elif kind == "escalation" %}
<p>Not acknowledged{{ " after " ~ (d.get("after_s") | duration) if d.get("after_s") is not none else "" }}\
{{ ": escalation step %s" % d.get("step") if d.get("step") else "" }}.</p>
{% elif kind == "approval" %}
<p>The responder asks to run <strong>{{ d.get("action", "an action") }}</strong>\
{{ " on " ~ d.get("target") if d.get("target") else "" }}.</p>
<table>
{% if d.get("parameters") %}
<tr><td TD>parameters</td><td>{{ d.get("parameters") | labels }}</td></tr>
{% endif %}
{% if d.get("reason") %}<tr><td TD>reason</td><td>{{ d.get("reason") }}</td></tr>{% endif %}
{% if d.get("expires_at") %}<tr><td TD>expires</td>\
<td>{{ d.get("expires_at") | datetime }} ({{ d.get("expires_at") | ago }})</td></tr>{% endif %}
</table>
{% if d.get("approve_url") %}<p><a href="{{ d.get("approve_url") }}">Approve or deny</a></p>{% endif %}
{% else %}
<p>A test notification from InfrAgent{{ " to channel " ~ d.get("channel") if d.get("channel") else "" }}: \
if you read this, the channel works.</p>
{% endif %}
{% for i in shown %}
<hr>
<p><strong>{{ i.title }}</strong> ({{ i.severity }}, {{ i.status }})</p>
<table>
<tr><td TD>where</td><td>{{ i.labels | where }}</td></tr>
{% if i.resolved_at is not none %}
<tr><td TD>since</td><td>{{ i.opened_at | datetime }}, resolved {{ i.resolved_at | datetime }} \
(lasted {{ (i.resolved_at - i.opened_at) | duration }})</td></tr>
{% else %}
<tr><td TD>since</td><td>{{ i.opened_at | datetime }} (for {{ (now - i.opened_at) | duration }})</td></tr>
{% endif %}
{% if i.value is not none %}<tr><td TD>value</td><td>{{ i.value }}</td></tr>{% endif %}
{% if i.acknowledged_by %}<tr><td TD>acknowledged by</td><td>{{ i.acknowledged_by }}</td></tr>{% endif %}
{% if i.responder %}<tr><td TD>responder</td><td>{{ i.responder }}</td></tr>{% endif %}
<tr><td TD>labels</td><td>{{ i.labels | labels }}</td></tr>
</table>
{% if i.url %}<p><a href="{{ i.url }}">Open the incident</a></p>{% endif %}
{% endfor %}
{% if more %}<p>and {{ more }} more</p>{% endif %}
</div>
"""
).replace("TD", _TD)
