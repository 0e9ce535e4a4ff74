"""Which alert instance a series or an event belongs to, and which events a pattern matches.

Why a stable hash as the instance key: the store, the lease of an instance between server
processes and the incident fingerprint all need one short, order-independent key for a label set;
sha256 over the sorted JSON is the same in every process and every release.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

from infragent.rules.model import SEVERITIES, EventPattern, Rule
from infragent.rules.window import EventSample

_SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}


def group_labels(rule: Rule, series_labels: Mapping[str, str]) -> dict[str, str]:
    """The instance's labels: every series label when ``rule.by`` is empty (each series its own
    instance, as in Prometheus), else the ``by`` labels, a missing one as ``""``."""
    if not rule.by:
        return dict(series_labels)
    return {name: series_labels.get(name, "") for name in rule.by}


def group_key(labels: Mapping[str, str]) -> str:
    """sha256 hex of the labels as sorted, compact JSON."""
    raw = json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def alert_labels(rule: Rule, group: Mapping[str, str]) -> dict[str, str]:
    """What an alert is known by: its group's labels, the rule's ``labels`` over them, and
    ``alertname`` (the rule's name) over everything."""
    return {**group, **dict(rule.labels), "alertname": rule.name}


def event_group_labels(rule: Rule, event: EventSample) -> dict[str, str]:
    """An event's labels (``host`` = its node id, ``service``, ``type``) grouped by ``rule.by``."""
    return group_labels(rule, {"host": event.node_id, "service": event.service, "type": event.type})


def data_text(value: object) -> str:
    """An event data value as a pattern compares it: booleans ``true``/``false``, null ``null``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _same(have: object, want: str) -> bool:
    text = data_text(have)
    if text == want:
        return True
    try:  # 500, 500.0 and "500" are the same status code
        a, b = float(text), float(want)
    except ValueError:
        return False
    return math.isfinite(a) and a == b


def event_matches(pattern: EventPattern, event: EventSample) -> bool:
    """Exact ``type`` and ``service`` when given, severity at least ``min_severity`` (info <
    warning < critical; an unknown severity never passes a minimum), and every ``data`` field
    present and equal as text (numbers also numerically: ``500`` matches ``500.0``)."""
    if pattern.type is not None and event.type != pattern.type:
        return False
    if pattern.service is not None and event.service != pattern.service:
        return False
    if pattern.min_severity is not None:
        rank = _SEVERITY_RANK.get(event.severity, -1)
        if rank < _SEVERITY_RANK[pattern.min_severity]:
            return False
    return all(key in event.data and _same(event.data[key], want) for key, want in pattern.data)
