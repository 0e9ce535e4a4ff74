"""Annotation templates: ``{{ $labels.host }}`` and ``{{ $value }}``, as in Prometheus rule files.

Why only these two forms and no template engine: they are what alert summaries use; anything else
between braces is left as written, so a typo shows in the incident title instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_FIELD = re.compile(r"\{\{\s*\$(labels\.([A-Za-z_][\w.]*)|value)\s*\}\}")


def format_value(value: float | None) -> str:
    if value is None:
        return "no data"
    return f"{value:.4g}"


def render(text: str, labels: Mapping[str, str], value: float | None) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) == "value":
            return format_value(value)
        return labels.get(m.group(2), "")

    return _FIELD.sub(one, text) if "{{" in text else text


def render_annotations(
    annotations: tuple[tuple[str, str], ...], labels: Mapping[str, str], value: float | None
) -> dict[str, str]:
    return {k: render(v, labels, value) for k, v in annotations}
