"""The two small languages inside a rule: durations (``1h30m``) and selectors
(``system.cpu.utilization{cpu.mode!="idle"}``), parsed with the offset of any mistake.

Why hand-written rather than a regex per string: a regex says "does not match"; this says where,
which the file parser turns into the exact column of the line (``files.py``).

Names: metric names follow OpenTelemetry instrument names (letters, digits, ``_ . - /``, and ``:``
as in Prometheus recording rules); label names are the same without ``:``, because our series'
labels are OpenTelemetry attribute names (``cpu.mode``, ``k8s.pod.name``).
"""

from __future__ import annotations

import re

from infragent.rules.errors import RuleSyntaxError
from infragent.rules.model import Matcher, MatchOp, Selector

METRIC_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_.:/-]*")
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")

_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86400.0),
    ("w", 7 * 86400.0),
    ("d", 86400.0),
    ("h", 3600.0),
    ("ms", 0.001),  # before "m": "5ms" is five milliseconds, not five minutes and an "s"
    ("m", 60.0),
    ("s", 1.0),
)
_ORDER = {"y": 0, "w": 1, "d": 2, "h": 3, "m": 4, "s": 5, "ms": 6}
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: Prometheus units (``90s``, ``5m``, ``1h30m``, ``2d``, ``1w``, ``250ms``;
    integers, largest unit first, each once) or a plain non-negative number of seconds."""
    s = text.strip()
    lead = len(text) - len(text.lstrip())
    if not s:
        raise RuleSyntaxError(text, 0, "empty duration")
    if _NUMBER.fullmatch(s):
        value = float(s)
        if value < 0:
            raise RuleSyntaxError(text, lead, f"negative duration {s!r}")
        return value
    if s.startswith("-"):
        raise RuleSyntaxError(text, lead, f"negative duration {s!r}")
    total = 0.0
    pos = 0
    last_rank = -1
    while pos < len(s):
        m = re.match(r"\d+", s[pos:])
        if m is None:
            raise RuleSyntaxError(text, lead + pos, f"bad duration {s!r}: a number is expected here")
        number = int(m.group())
        pos += m.end()
        unit = next((u for u, _ in _UNITS if s.startswith(u, pos)), None)
        if unit is None:
            raise RuleSyntaxError(
                text, lead + pos, f"bad duration {s!r}: a unit (ms, s, m, h, d, w, y) is expected here"
            )
        if _ORDER[unit] <= last_rank:
            raise RuleSyntaxError(
                text, lead + pos, f"bad duration {s!r}: units go largest first, each at most once"
            )
        last_rank = _ORDER[unit]
        total += number * dict(_UNITS)[unit]
        pos += len(unit)
    return total


def format_duration(seconds: float) -> str:
    """The shortest Prometheus form of ``seconds`` (``90`` → ``1m30s``, ``0`` → ``0s``); a
    fraction finer than a millisecond is written as a plain number of seconds."""
    ms = round(seconds * 1000)
    if seconds < 0 or abs(ms - seconds * 1000) > 1e-6:
        return repr(float(seconds))
    if ms == 0:
        return "0s"
    out: list[str] = []
    for unit, size in (("w", 604800000), ("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)


class _Scanner:
    """A cursor over a selector string that raises with the offset of the mistake."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> RuleSyntaxError:
        return RuleSyntaxError(self.text, self.pos if at is None else at, message)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self, pattern: re.Pattern[str], what: str) -> str:
        m = pattern.match(self.text, self.pos)
        if m is None:
            got = self.peek() or "the end"
            raise self.fail(f"a {what} is expected here, not {got!r}")
        self.pos = m.end()
        return m.group()

    def op(self) -> MatchOp:
        for op in ("=~", "!~", "!=", "="):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        got = self.peek() or "the end"
        raise self.fail(f"a matcher operator (=, !=, =~, !~) is expected here, not {got!r}")

    def string(self) -> tuple[str, int]:
        """A quoted string and the offset of its first character (after the quote)."""
        quote = self.peek()
        if quote not in ('"', "'"):
            raise self.fail("a quoted value is expected here")
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(out), start + 1
            if ch == "\\" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))  # unknown escapes stay: "\d" is a regex's \d
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1
        raise self.fail("unterminated quoted value", at=start)


def parse_selector(text: str) -> Selector:
    """``metric{label op "value", …}`` (ops ``= != =~ !~``; regexes anchored, checked here)."""
    sc = _Scanner(text)
    sc.skip_ws()
    if sc.peek() == "{":
        raise sc.fail("a selector starts with a metric name")
    metric = sc.name(METRIC_NAME, "metric name")
    matchers: list[Matcher] = []
    sc.skip_ws()
    if sc.peek() == "{":
        sc.pos += 1
        sc.skip_ws()
        while sc.peek() != "}":
            label_at = sc.pos
            label = sc.name(LABEL_NAME, "label name")
            if label == "__name__":
                raise sc.fail("__name__ is the metric name: write it before the braces", at=label_at)
            sc.skip_ws()
            op = sc.op()
            sc.skip_ws()
            value, value_at = sc.string()
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    at = value_at + (exc.pos or 0)
                    raise sc.fail(f"bad regular expression {value!r}: {exc.msg}", at=at) from None
            matchers.append(Matcher(label, op, value))
            sc.skip_ws()
            if sc.peek() == ",":
                sc.pos += 1
                sc.skip_ws()
            elif sc.peek() != "}":
                raise sc.fail(f"',' or '}}' is expected here, not {sc.peek() or 'the end'!r}")
        sc.pos += 1
        sc.skip_ws()
    if sc.pos < len(text):
        raise sc.fail(f"unexpected {text[sc.pos :]!r} after the selector")
    return Selector(metric, tuple(matchers))


def quote(value: str) -> str:
    """``value`` as a double-quoted selector string that ``parse_selector`` reads back unchanged."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_selector(selector: Selector) -> str:
    """The canonical text of ``selector``: ``parse_selector(format_selector(s)) == s``."""
    if not selector.matchers:
        return selector.metric
    inner = ", ".join(f"{m.label}{m.op}{quote(m.value)}" for m in selector.matchers)
    return f"{selector.metric}{{{inner}}}"
