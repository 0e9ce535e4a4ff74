"""What a tenant writes about notifications, parsed and validated: durations, label matchers,
time intervals, the route tree, channels, silences and inhibit rules. The one module the API, the
CLI and the pipeline import for it (the route tree's parser lives in ``notify/route_config.py``, time
intervals in ``notify/intervals.py``, the small languages in ``notify/syntax.py``; all re-exported).

Why every function collects problems instead of raising at the first: the API answers a 422 that
names every field at fault at once (``NotifyConfigError.problems`` as ``(path, message)``, the path in
the request body's terms: ``routes[1].group_wait``, ``settings.port``, ``matchers[2].value``), so a
person fixes a document in one round, not one field per round.

Pure: no I/O, no clock (``now`` is passed in). The outbound-URL policy (DNS, refused networks) is the
API layer's: here a URL is only checked for its syntax. Secrets: a problem about a secret field
never repeats the value given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from infragent.notify.errors import NotifyConfigError
from infragent.notify.intervals import parse_time_intervals
from infragent.notify.model import CHANNEL_FIELDS, CHANNEL_KINDS, InhibitRule, Matcher
from infragent.notify.route_config import (
    DEFAULT_TIMINGS,
    ROOT_ID,
    RootDefaults,
    add_route,
    defaults_from_settings,
    parse_route_tree,
    remove_route,
    replace_route,
    route_tree_to_doc,
    with_ids,
)
from infragent.notify.syntax import (
    Problems,
    duration,
    join,
    label_names,
    matcher_text,
    matchers,
    raise_problems,
    strings,
    timestamp,
    unknown_keys,
)

__all__ = [
    "DEFAULT_INHIBIT_RULES",
    "DEFAULT_TIMINGS",
    "MASK",
    "ROOT_ID",
    "RootDefaults",
    "add_route",
    "defaults_from_settings",
    "mask",
    "matcher_text",
    "parse_channel",
    "parse_duration",
    "parse_inhibit_rule",
    "parse_matchers",
    "parse_route_tree",
    "parse_silence",
    "parse_time_intervals",
    "remove_route",
    "replace_route",
    "route_tree_to_doc",
    "with_ids",
]

MASK = "********"

#: The inhibit rule docs/notifications.md proposes, for a tenant to store
#: (``POST /api/v1/notify/inhibit-rules``): while a host is silent (the default pack's absence rule
#: ``HostSilent``, which carries the ``host`` label), every other incident of that host is not
#: notified: they are symptoms of the one cause the HostSilent message already tells. It is not
#: applied unless stored: the pipeline applies a tenant's stored rules only.
DEFAULT_INHIBIT_RULES: tuple[InhibitRule, ...] = (
    InhibitRule(
        id="default-host-silent",
        name="host silent",
        source=(Matcher("alertname", "=", "HostSilent"),),
        target=(Matcher("alertname", "!=", "HostSilent"),),
        equal=("host",),
    ),
)


def parse_duration(value: object, path: str) -> float:
    """Seconds in ``value`` ("30s", "5m", "4h", "1d", "1h30m", or a number of seconds); raises
    ``NotifyConfigError`` (``(path, "not a duration: '5 min'")``)."""
    problems: Problems = []
    seconds = duration(value, path, problems)
    raise_problems(problems)
    assert seconds is not None
    return seconds


def parse_matchers(value: object, path: str) -> tuple[Matcher, ...]:
    """Label matchers (``notify/syntax.matchers`` says the forms); raises listing every problem."""
    problems: Problems = []
    out = matchers(value, path, problems)
    raise_problems(problems)
    return out


# -- channels -------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+")
_APPRISE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_SECURITY_PORT = {"starttls": 587, "tls": 465, "none": 25}
_ROLES = ("admin", "operator", "viewer")
_PD_SEVERITIES = ("critical", "error", "warning", "info")
#: (kind, field) → required when not ``partial``
_REQUIRED: dict[str, tuple[str, ...]] = {
    "webhook": ("settings.url",),
    "slack": ("secrets.url",),
    "slack_bot": ("settings.channel", "secrets.token"),
    "discord": ("secrets.url",),
    "teams": ("secrets.url",),
    "pagerduty": ("secrets.routing_key",),
    "email": ("settings.host", "settings.from", "settings.to"),
    "inapp": (),
    "apprise": ("secrets.urls",),
}
_URL_FIELDS = {"url", "api_url"}


def _http_url(value: object, path: str, problems: Problems, *, secret: bool) -> str | None:
    shown = "" if secret else f": {value!r}"
    if not isinstance(value, str):
        problems.append((path, f"an http(s) URL is expected{shown}"))
        return None
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or IPv6 literal
        ok = False
    if not ok or any(c.isspace() for c in value):
        problems.append((path, f"an http(s) URL is expected{shown}"))
        return None
    return value


def _text(value: object, path: str, problems: Problems, *, secret: bool) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    problems.append((path, "a non-empty string is expected" + ("" if secret else f", not {value!r}")))
    return None


def _channel_field(kind: str, section: str, name: str, value: object, problems: Problems) -> object:
    """One field's normalised value, or None after adding a problem."""
    path = f"{section}.{name}"
    secret = section == "secrets"
    if name in _URL_FIELDS:
        return _http_url(value, path, problems, secret=secret)
    if kind == "email" and name == "port":
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
            return value
        problems.append((path, f"a port number (1-65535) is expected, not {value!r}"))
        return None
    if kind == "email" and name == "security":
        if value in _SECURITY_PORT:
            return value
        problems.append((path, f"one of starttls, tls, none is expected, not {value!r}"))
        return None
    if kind == "email" and name == "from":
        if isinstance(value, str) and _EMAIL.fullmatch(value.strip()):
            return value.strip()
        problems.append((path, f"an e-mail address is expected, not {value!r}"))
        return None
    if kind == "email" and name == "to":
        addresses = strings(value, path, problems, what="e-mail address")
        bad = [i for i, a in enumerate(addresses) if not _EMAIL.fullmatch(a.strip())]
        for i in bad:
            problems.append((join(path, i), f"an e-mail address is expected, not {addresses[i]!r}"))
        if isinstance(value, list | tuple) and not value:
            problems.append((path, "at least one address is expected"))
        return [a.strip() for a in addresses] if not bad and addresses else None
    if kind == "inapp" and name == "roles":
        roles = strings(value, path, problems, what="role")
        for i, role in enumerate(roles):
            if role not in _ROLES:
                problems.append((join(path, i), f"one of {', '.join(_ROLES)} is expected, not {role!r}"))
        if isinstance(value, list | tuple) and not value:
            problems.append((path, "at least one role is expected (leave it out for every role)"))
        return sorted(set(roles)) if roles and set(roles) <= set(_ROLES) else None
    if kind == "pagerduty" and name == "severity_map":
        return _severity_map(value, path, problems)
    if kind == "apprise" and name == "urls":
        urls = [value] if isinstance(value, str) else value
        if not isinstance(urls, list | tuple) or not urls:
            problems.append((path, "one apprise URL or a non-empty list of them is expected"))
            return None
        before = len(problems)
        for i, url in enumerate(urls):
            if not isinstance(url, str) or not _APPRISE_URL.fullmatch(url.strip()):
                problems.append((join(path, i), "an apprise URL (scheme://…) is expected"))
        return [u.strip() for u in urls] if len(problems) == before else None
    return _text(value, path, problems, secret=secret)


def _severity_map(value: object, path: str, problems: Problems) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        problems.append((path, "a mapping of our severity to a PagerDuty severity is expected"))
        return None
    before = len(problems)
    for ours, theirs in value.items():
        if theirs not in _PD_SEVERITIES:
            problems.append((join(path, str(ours)), f"one of {', '.join(_PD_SEVERITIES)} is expected"))
    return {str(k): str(v) for k, v in value.items()} if len(problems) == before else None


def parse_channel(
    kind: str, settings: object, secrets: object, *, partial: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A channel's settings and secrets, validated per ``model.CHANNEL_FIELDS``, normalised (an
    e-mail channel gets its ``security`` and ``port`` defaults). ``partial`` (a PATCH) lets
    required fields be missing and fills no default. Raises ``NotifyConfigError`` with every problem."""
    problems: Problems = []
    if kind not in CHANNEL_KINDS:
        raise NotifyConfigError(
            [("kind", f"unknown channel kind {kind!r} (known: {', '.join(CHANNEL_KINDS)})")]
        )
    setting_names, secret_names = CHANNEL_FIELDS[cast(Any, kind)]
    out: dict[str, dict[str, Any]] = {"settings": {}, "secrets": {}}
    for section, given, names, other in (
        ("settings", settings, setting_names, secret_names),
        ("secrets", secrets, secret_names, setting_names),
    ):
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            problems.append((section, "an object is expected"))
            continue
        for name, value in given.items():
            if name in names:
                got = _channel_field(kind, section, str(name), value, problems)
                if got is not None:
                    out[section][str(name)] = got
            elif name in other:
                where = "secrets" if section == "settings" else "settings"
                problems.append((f"{section}.{name}", f"{name} belongs in {where}"))
            else:
                known = ", ".join(names) or "none"
                problems.append((f"{section}.{name}", f"unknown field for the {kind} kind (known: {known})"))
    if not partial:
        for required in _REQUIRED[kind]:
            section, name = required.split(".")
            given_section = settings if section == "settings" else secrets
            if not isinstance(given_section, Mapping) or name not in given_section:
                problems.append((required, "required"))
        if kind == "email":
            security = out["settings"].setdefault("security", "starttls")
            if security in _SECURITY_PORT:
                out["settings"].setdefault("port", _SECURITY_PORT[security])
    raise_problems(problems)
    return out["settings"], out["secrets"]


def mask(secrets: Mapping[str, object]) -> dict[str, str]:
    """Secrets as the audit log records them: which ones were set, never their values."""
    return dict.fromkeys(secrets, MASK)


# -- silences and inhibit rules -------------------------------------------------------------------


def _matches_empty(m: Matcher) -> bool:
    if m.op == "=":
        return m.value == ""
    if m.op == "!=":
        return m.value != ""
    hit = re.fullmatch(m.value, "") is not None
    return hit if m.op == "=~" else not hit


def parse_silence(doc: object, now: float) -> tuple[tuple[Matcher, ...], float, float, str]:
    """``(matchers, starts_at, ends_at, comment)`` of a silence. ``matchers`` are required, and one
    must not match an empty value (else the silence would mute every incident, as Alertmanager
    refuses too); ``starts_at`` defaults to ``now``; exactly one of ``ends_at``/``duration``; the end
    after the start and after ``now``; a ``comment`` is required (why it was silenced). The key
    ``incident_id`` is allowed and left to the caller."""
    if not isinstance(doc, Mapping):
        raise NotifyConfigError([("", "an object is expected")])
    problems: Problems = []
    unknown_keys(
        doc, ("matchers", "starts_at", "ends_at", "duration", "comment", "incident_id"), "", problems
    )
    found: tuple[Matcher, ...] = ()
    if "matchers" not in doc:
        problems.append(("matchers", "required"))
    else:
        before = len(problems)
        found = matchers(doc["matchers"], "matchers", problems)
        if len(problems) == before and not found:
            problems.append(("matchers", "at least one matcher is required"))
        elif found and all(_matches_empty(m) for m in found):
            problems.append(("matchers", "at least one matcher must not match an empty value"))
    starts = timestamp(doc["starts_at"], "starts_at", problems) if "starts_at" in doc else now
    ends: float | None = None
    if "ends_at" in doc and "duration" in doc:
        problems.append(("duration", "give ends_at or duration, not both"))
    elif "ends_at" in doc:
        ends = timestamp(doc["ends_at"], "ends_at", problems)
    elif "duration" in doc:
        length = duration(doc["duration"], "duration", problems)
        ends = None if length is None or starts is None else starts + length
    else:
        problems.append(("ends_at", "ends_at or duration is required"))
    if starts is not None and ends is not None:
        where = "ends_at" if "ends_at" in doc else "duration"
        if ends <= starts:
            problems.append((where, "the silence must end after it starts"))
        elif ends <= now:
            problems.append((where, "the silence would end in the past"))
    comment = doc.get("comment")
    if not isinstance(comment, str) or not comment.strip():
        problems.append(("comment", "a comment is required (why the silence is needed)"))
    raise_problems(problems)
    assert starts is not None and ends is not None and isinstance(comment, str)
    return found, starts, ends, comment.strip()


def parse_inhibit_rule(doc: object) -> tuple[str, tuple[Matcher, ...], tuple[Matcher, ...], tuple[str, ...]]:
    """``(name, source, target, equal)``: while an incident matching ``source`` fires, incidents
    matching ``target`` (empty: every incident) with the same values of the ``equal`` labels are not
    notified. ``source`` must not be empty (it would inhibit on anything)."""
    if not isinstance(doc, Mapping):
        raise NotifyConfigError([("", "an object is expected")])
    problems: Problems = []
    unknown_keys(doc, ("name", "source", "target", "equal"), "", problems)
    name = doc.get("name", "")
    if not isinstance(name, str) or len(name) > 100:
        problems.append(("name", "a string of at most 100 characters is expected"))
    source: tuple[Matcher, ...] = ()
    if "source" not in doc:
        problems.append(("source", "required"))
    else:
        before = len(problems)
        source = matchers(doc["source"], "source", problems)
        if len(problems) == before and not source:
            problems.append(("source", "at least one matcher is required"))
    target = matchers(doc.get("target", []), "target", problems)
    equal = label_names(doc.get("equal", []), "equal", problems)
    raise_problems(problems)
    return cast(str, name).strip(), source, target, equal
