"""What the notification pages' forms send, turned into the documents ``notify/config.py`` checks:
a channel's settings and secrets from one input per field, a silence from its form.

Why a form layer at all: the API takes JSON, where a list is a list and a port a number; a form
sends strings. Each channel field has a widget (``WIDGETS``) saying how its string becomes the
value the API would take (a list of addresses, a port, a severity map), so the page and the API
hand the very same document to ``parse_channel`` and get the very same problems, named by the
same paths (``settings.port``, ``secrets.url``). A blank input is "not given": on the create form
a required field then is reported missing; on the edit form a blank secret keeps the stored one
(secrets are write-only: the page never has them to show).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from fastapi import Request

from infragent.notify.model import CHANNEL_FIELDS, CHANNEL_KINDS, ChannelKind

Widget = Literal["text", "url", "secret", "number", "select", "roles", "list", "lines", "pairs"]
FormData = dict[str, list[str]]
Problems = list[tuple[str, str]]

#: how a field is entered when it is not a plain text (settings) or a password input (secrets)
WIDGETS: Final[dict[tuple[str, str], Widget]] = {
    ("webhook", "url"): "url",
    ("slack_bot", "api_url"): "url",
    ("pagerduty", "url"): "url",
    ("pagerduty", "severity_map"): "pairs",
    ("email", "port"): "number",
    ("email", "security"): "select",
    ("email", "to"): "list",
    ("inapp", "roles"): "roles",
    ("apprise", "urls"): "lines",
}
CHOICES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("email", "security"): ("starttls", "tls", "none"),
    ("inapp", "roles"): ("admin", "operator", "viewer"),
}
HINTS: Final[dict[tuple[str, str], str]] = {
    ("webhook", "url"): "receives a signed JSON POST (Standard Webhooks)",
    ("webhook", "secret"): "whsec_…; left blank, one is generated and shown once",
    ("slack", "url"): "the incoming-webhook URL (https://hooks.slack.com/services/…)",
    ("slack_bot", "token"): "bot token xoxb-…",
    ("slack_bot", "channel"): "channel id, e.g. C0123456789",
    ("slack_bot", "api_url"): "default https://slack.com/api",
    ("discord", "url"): "the channel's webhook URL",
    ("teams", "url"): "a Teams workflow URL (“when a webhook request is received”)",
    ("pagerduty", "routing_key"): "the Events API v2 integration key",
    ("pagerduty", "url"): "default https://events.pagerduty.com/v2/enqueue",
    ("pagerduty", "severity_map"): "one per line: critical=critical, warning=warning…",
    ("email", "to"): "addresses, comma or line separated",
    ("email", "port"): "default 587 (starttls), 465 (tls), 25 (none)",
    ("inapp", "roles"): "none ticked: every member",
    ("apprise", "urls"): "one apprise URL per line",
}
_SPLIT_LIST = re.compile(r"[\s,;]+")


@dataclass(frozen=True, slots=True)
class Field:
    """One input of a channel form: ``settings.<name>`` or ``secrets.<name>``."""

    section: Literal["settings", "secrets"]
    name: str
    widget: Widget
    choices: tuple[str, ...] = ()
    hint: str = ""

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    def shown(self, settings: Mapping[str, Any]) -> str:
        """The stored setting as the input shows it (a secret is never shown)."""
        value = settings.get(self.name)
        if self.section == "secrets" or value is None:
            return ""
        if self.widget in ("list", "lines") and isinstance(value, list):
            return "\n".join(str(v) for v in value)
        if self.widget == "pairs" and isinstance(value, Mapping):
            return "\n".join(f"{k}={v}" for k, v in value.items())
        return str(value)


def fields(kind: ChannelKind) -> tuple[Field, ...]:
    """The inputs of ``kind``'s form: its settings, then its secrets (``model.CHANNEL_FIELDS``)."""
    setting_names, secret_names = CHANNEL_FIELDS[kind]
    out: list[Field] = []
    for name in setting_names:
        widget = WIDGETS.get((kind, name), "text")
        out.append(
            Field("settings", name, widget, CHOICES.get((kind, name), ()), HINTS.get((kind, name), ""))
        )
    for name in secret_names:
        widget = WIDGETS.get((kind, name), "secret")
        out.append(Field("secrets", name, widget, (), HINTS.get((kind, name), "")))
    return tuple(out)


def channel_kind(text: str) -> ChannelKind | None:
    for kind in CHANNEL_KINDS:
        if kind == text:
            return kind
    return None


def _one(form: FormData, key: str) -> str:
    values = form.get(key) or [""]
    return values[0].strip()


def channel_values(kind: ChannelKind, form: FormData) -> tuple[dict[str, Any], dict[str, Any], Problems]:
    """(settings, secrets, problems of the form itself) from the inputs of ``kind``'s form; a blank
    input is left out. The documents then go to ``parse_channel`` like an API request's."""
    found: dict[str, dict[str, Any]] = {"settings": {}, "secrets": {}}
    problems: Problems = []
    for f in fields(kind):
        value = _value(f, form, problems)
        if value is not None:
            found[f.section][f.name] = value
    return found["settings"], found["secrets"], problems


def _value(f: Field, form: FormData, problems: Problems) -> Any:
    if f.widget == "roles":
        ticked = [v for v in form.get(f.key, []) if v.strip()]
        return ticked or None
    text = _one(form, f.key)
    if not text:
        return None
    if f.widget == "number":
        if not text.isdigit():
            problems.append((f.key, "a whole number is expected"))
            return None
        return int(text)
    if f.widget == "list":
        return [item for item in _SPLIT_LIST.split(text) if item]
    if f.widget == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if f.widget == "pairs":
        pairs: dict[str, str] = {}
        for n, line in enumerate(line for line in text.splitlines() if line.strip()):
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                problems.append((f"{f.key}[{n}]", "name=value is expected"))
                continue
            pairs[key.strip()] = value.strip()
        return pairs
    return text


def silence_doc(form: FormData) -> dict[str, Any]:
    """A silence form as the API's document: matchers one per line; ``ends_at`` (an ISO 8601 time,
    or a ``datetime-local`` value read as UTC) or else ``duration``; ``starts_at`` when given."""
    doc: dict[str, Any] = {
        "matchers": [line.strip() for line in _raw(form, "matchers").splitlines() if line.strip()],
        "comment": _one(form, "comment"),
    }
    for key in ("ends_at", "starts_at"):
        text = _one(form, key)
        if text:
            doc[key] = _utc(text)
    if "ends_at" not in doc and _one(form, "duration"):  # an end given overrides the duration
        doc["duration"] = _one(form, "duration")
    return doc


def _raw(form: FormData, key: str) -> str:
    values = form.get(key) or [""]
    return values[0]


def _utc(text: str) -> str:
    """``2026-01-02T03:04`` (a ``datetime-local`` input: no zone) as RFC 3339 UTC."""
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?", text):
        return text + ("Z" if text.count(":") == 2 else ":00Z")
    return text


async def form_data(request: Request) -> FormData:
    """Every value of the request's form by name (a dependency: the routes stay synchronous)."""
    form = await request.form()
    return {key: [v for v in form.getlist(key) if isinstance(v, str)] for key in form}
