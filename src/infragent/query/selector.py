"""Label selectors: which series of a host and metric a query means.

Why a subset match: a graph usually wants "all modes of CPU" or "the used state of every mount";
naming every label of a series (device, type, mode …) to get it would be tedious. A series matches
when it has every given ``key=value``; give all its labels to get just that one.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from infragent.query.errors import LabelSyntaxError


def parse_labels(raw: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` or a JSON object of strings (for values holding ``,`` or ``=``); empty: ``{}``."""
    if raw is None or not raw.strip():
        return {}
    if raw.lstrip().startswith("{"):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise LabelSyntaxError("not valid JSON") from None
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            raise LabelSyntaxError("a JSON object of string values is expected")
        return dict(obj)
    labels: dict[str, str] = {}
    for part in raw.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise LabelSyntaxError(f"{part!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def matches(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """True when ``labels`` has every ``key=value`` of ``wanted``."""
    return all(labels.get(k) == v for k, v in wanted.items())
