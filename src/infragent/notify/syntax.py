"""The small languages of notification configuration: durations, label matchers, label names,
times; each parser appends ``(path, message)`` problems instead of raising, so ``notify/config.py``
and ``notify/route_config.py`` can report every fault of a document at once.

Why matchers are Alertmanager's text (``severity="critical"``, ``host=~"web-.*"``, ``env!=dev``):
people paste them from Alertmanager configurations and from our own rule selectors; the object form
``{"name", "op", "value"}`` is what forms and the stored JSON use. Label names are the rule language's
(``rules/syntax.LABEL_NAME``: OpenTelemetry attribute names such as ``system.filesystem.mountpoint``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from infragent.notify.errors import NotifyConfigError
from infragent.notify.model import Matcher, MatchOp
from infragent.rules.errors import RuleSyntaxError
from infragent.rules.syntax import LABEL_NAME, format_duration
from infragent.rules.syntax import parse_duration as _rule_duration

Problems = list[tuple[str, str]]

__all__ = [
    "LABEL_NAME",
    "Problems",
    "duration",
    "format_duration",
    "join",
    "label_names",
    "matcher_text",
    "matchers",
    "raise_problems",
    "strings",
    "timestamp",
    "unknown_keys",
]

_OPS: tuple[MatchOp, ...] = ("=~", "!~", "!=", "=")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}
_MATCHER = re.compile(r"\s*([^\s=!~\"]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)


def join(path: str, key: str | int) -> str:
    """``routes[0]`` + ``receivers`` → ``routes[0].receivers``; an int key is an index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def raise_problems(problems: Problems) -> None:
    if problems:
        raise NotifyConfigError(problems)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def unknown_keys(doc: Mapping[str, Any], known: Sequence[str], path: str, problems: Problems) -> None:
    for key in doc:
        if key not in known:
            problems.append((join(path, str(key)), f"unknown field (known: {', '.join(known)})"))


def duration(value: object, path: str, problems: Problems) -> float | None:
    """Seconds in ``value`` ("30s", "5m", "1h30m", "1d", or a number of seconds); None + a problem."""
    if is_number(value):
        seconds = float(cast(float, value))
        if seconds < 0:
            problems.append((path, f"a duration cannot be negative: {value!r}"))
            return None
        return seconds
    if isinstance(value, str):
        try:
            return _rule_duration(value)
        except RuleSyntaxError:
            pass
    problems.append((path, f"not a duration: {value!r}"))
    return None


def timestamp(value: object, path: str, problems: Problems) -> float | None:
    """Unix seconds, or an RFC 3339 time with its zone (``2025-03-30T02:30:00+02:00``, ``…Z``)."""
    if is_number(value):
        return float(cast(float, value))
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
        if parsed is not None:
            problems.append((path, f"a time needs its zone (Z or +hh:mm): {value!r}"))
            return None
    problems.append((path, f"unix seconds or an RFC 3339 time is expected, not {value!r}"))
    return None


def strings(value: object, path: str, problems: Problems, *, what: str = "string") -> tuple[str, ...]:
    """A list of non-empty strings (a bad item is a problem at its index)."""
    if not isinstance(value, list | tuple):
        problems.append((path, f"a list is expected (each a {what})"))
        return ()
    out: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item.strip():
            out.append(item)
        else:
            problems.append((join(path, i), f"a non-empty {what} is expected, not {item!r}"))
    return tuple(out)


def label_names(value: object, path: str, problems: Problems) -> tuple[str, ...]:
    """A list of label names (``group_by``, ``equal``), duplicates dropped, order kept."""
    if not isinstance(value, list | tuple):
        problems.append((path, "a list of label names is expected"))
        return ()
    out: list[str] = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
            problems.append((join(path, i), f"not a label name: {name!r}"))
        elif name not in out:
            out.append(name)
    return tuple(out)


# -- matchers -------------------------------------------------------------------------------------


def _unquote(text: str) -> str | None:
    """A double-quoted string's content (``\\"``, ``\\\\``, ``\\n``, ``\\t`` unescaped), or None."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return None
    out: list[str] = []
    i, end = 1, len(text) - 1
    while i < end:
        ch = text[i]
        if ch == '"':
            return None  # an unescaped quote inside: not one string
        if ch == "\\" and i + 1 < end:
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))  # "\d" stays a regex's \d
            i += 2
            continue
        if ch == "\\":
            return None  # the closing quote was escaped
        out.append(ch)
        i += 1
    return "".join(out)


def matcher_text(m: Matcher) -> str:
    """Alertmanager's text of a matcher, ``name op "value"``, which ``matchers`` reads back unchanged."""
    escaped = m.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'{m.name}{m.op}"{escaped}"'


def _one_matcher(name: object, op: object, value: object, path: str, problems: Problems) -> Matcher | None:
    before = len(problems)
    if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
        problems.append((join(path, "name"), f"not a label name: {name!r}"))
    if op not in _OPS:
        problems.append((join(path, "op"), f"not an operator (=, !=, =~, !~): {op!r}"))
    if is_number(value):
        value = str(value)
    if not isinstance(value, str):
        problems.append((join(path, "value"), f"a string is expected, not {value!r}"))
    elif op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            problems.append((join(path, "value"), f"bad regular expression {value!r}: {exc.msg}"))
    if len(problems) > before:
        return None
    return Matcher(cast(str, name), cast(MatchOp, op), cast(str, value))


def _matcher_string(text: str, path: str, problems: Problems) -> Matcher | None:
    m = _MATCHER.fullmatch(text)
    if m is None:
        problems.append(
            (path, f'not a matcher (name="value", name!="value", name=~"re", name!~"re"): {text!r}')
        )
        return None
    name, op, raw = m.groups()
    value = _unquote(raw) if raw.startswith('"') else raw
    if value is None:
        problems.append((join(path, "value"), f"malformed quoted value: {raw!r}"))
        return None
    return _one_matcher(name, op, value, path, problems)


def matchers(value: object, path: str, problems: Problems) -> tuple[Matcher, ...]:
    """Label matchers from a list of Alertmanager strings (``severity="critical"``, ``host=~web-.*``),
    a list of ``{"name", "op", "value"}`` objects (mixable), or a mapping ``{label: value}`` (equality).
    Regexes are compiled here (anchored when used), so a bad one is a problem at its ``.value`` path."""
    out: list[Matcher] = []
    if isinstance(value, Mapping):
        for label, wanted in value.items():
            got = _one_matcher(label, "=", wanted, join(path, str(label)), problems)
            if got is not None:
                out.append(got)
        return tuple(out)
    if not isinstance(value, list | tuple):
        problems.append((path, "a list of matchers or a mapping of label to value is expected"))
        return ()
    for i, item in enumerate(value):
        here = join(path, i)
        got = None
        if isinstance(item, str):
            got = _matcher_string(item, here, problems)
        elif isinstance(item, Mapping):
            for key in item:
                if key not in ("name", "op", "value"):
                    problems.append((join(here, str(key)), "unknown field (known: name, op, value)"))
            got = _one_matcher(item.get("name"), item.get("op", "="), item.get("value"), here, problems)
        else:
            problems.append((here, f"a matcher string or object is expected, not {item!r}"))
        if got is not None:
            out.append(got)
    return tuple(out)
