"""Annotation templates: ``{{ $labels.host }}`` and ``{{ $value }}``, nothing more.

Why not Go templates or Jinja: an annotation says which host and what value; a template language
would be a second programming language in rule files, and an error in it would surface only when
the alert fires. Here a template is checked when the rule is loaded (``check_template``) and
rendering cannot fail. Label names may hold dots (``{{ $labels.cpu.mode }}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VALID = re.compile(r"\s*(\$value|\$labels\.([A-Za-z_][A-Za-z0-9_./-]*))\s*")


def check_template(text: str) -> tuple[int, str] | None:
    """``(offset, message)`` of the first expression that is not ``$value`` or ``$labels.NAME``,
    or of a ``{{`` that is never closed; None when the template is good."""
    pos = 0
    for m in _EXPR.finditer(text):
        if "{{" in text[pos : m.start()]:
            break
        if _VALID.fullmatch(m.group(1)) is None:
            hint = "use {{ $value }} or {{ $labels.NAME }}"
            return m.start(), f"unknown template expression {m.group()!r}: {hint}"
        pos = m.end()
    if "{{" in text[pos:]:
        return text.index("{{", pos), "'{{' without a matching '}}'"
    return None


def format_value(value: float | None) -> str:
    """A value as people read it: ``0.93``, ``1.2e+06``; ``-`` for no value."""
    return "-" if value is None else f"{value:.4g}"


def render(text: str, labels: Mapping[str, str], value: float | None) -> str:
    """``text`` with its expressions replaced; a label the alert lacks renders as ``""``."""

    def one(m: re.Match[str]) -> str:
        got = _VALID.fullmatch(m.group(1))
        if got is None:
            return m.group()
        return format_value(value) if got.group(1) == "$value" else labels.get(got.group(2), "")

    return _EXPR.sub(one, text)
