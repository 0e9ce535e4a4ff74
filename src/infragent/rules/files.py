"""The rule file format (Prometheus rule groups, structured instead of PromQL) and its validation.

Why structured keys rather than an expression: each field is checked on its own and a mistake is
reported at its line and column (``nodes.py``), every mistake of a file in one run. The same reader
serves a whole file (``parse_rule_file``), one rule sent to the API (``parse_rule_text``: JSON is
YAML) and a rule read back from the store (``rule_from_spec``), so all three accept and refuse the
same things. The format is described key by key in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

from infragent.rules.errors import Problem, RuleFileError
from infragent.rules.kinds import KIND_KEYS, KINDS, read_condition
from infragent.rules.model import (
    COMBINES,
    SEVERITIES,
    Absence,
    Anomaly,
    EventMatch,
    EventPattern,
    Forecast,
    Reset,
    Rule,
    RuleGroup,
    Threshold,
)
from infragent.rules.nodes import Reader
from infragent.rules.syntax import (
    LABEL_NAME,
    format_duration,
    format_selector,
    parse_duration,
    parse_selector,
)
from infragent.rules.templates import check_template

__all__ = [
    "Problem",
    "RuleFileError",
    "parse_duration",
    "parse_rule_file",
    "parse_rule_text",
    "parse_selector",
    "read_groups",
    "rule_from_spec",
    "rule_to_spec",
]

#: Keys every kind takes; ``group`` only in a rule given alone (in a file, the group says it).
COMMON_KEYS = ("alert", "kind", "by", "keep_firing_for", "severity", "labels", "annotations", "enabled")
RESERVED_LABELS = ("alertname",)
_NAME_CHARS = "letters, digits, '_', '.', ':' or '-', starting with a letter or '_'"


def _valid_name(name: str) -> bool:
    return (
        bool(name)
        and len(name) <= 200
        and (name[0].isalpha() or name[0] == "_")
        and all(c.isalnum() or c in "_.:-" for c in name)
    )


def read_rule(r: Reader, node: Node, group: str | None) -> Rule | None:
    """One rule mapping; ``group`` is the enclosing group's name, or None for a rule given alone
    (then an optional ``group`` key names it). None, with problems recorded, when it is invalid."""
    items = r.mapping(node, "a rule")
    if items is None:
        return None
    before = len(r.problems)
    name = "?"
    if "alert" in items:
        got = r.string(items["alert"][1], "alert")
        if got is not None and not _valid_name(got):
            r.problem(items["alert"][1], f"bad alert name {got!r}: use {_NAME_CHARS}")
        name = got or name
    what = f"rule {name!r}"
    kind = "threshold"
    if "kind" in items:
        got = r.string(items["kind"][1], "kind")
        if got is not None and got not in KINDS:
            r.problem(items["kind"][1], f"unknown kind {got!r}; kinds: {', '.join(KINDS)}")
            return None
        kind = got or kind
    allowed = COMMON_KEYS + KIND_KEYS[kind] + (("group",) if group is None else ())
    r.keys(items, node, what, allowed, required=("alert",))

    def get(key: str) -> Node | None:
        return items[key][1] if key in items else None

    condition = read_condition(r, kind, get, node, what)
    for_s = _opt_duration(r, get("for"), "for", 0.0)
    keep_s = _opt_duration(r, get("keep_firing_for"), "keep_firing_for", 0.0)
    if kind == "reset" and keep_s is not None and keep_s <= 0:
        r.problem(
            get("keep_firing_for") or node,
            f"{what}: a reset is an instant; keep_firing_for (> 0) says how long it stays firing",
        )
    if kind == "event" and "resolve" not in items and keep_s is not None and keep_s <= 0:
        r.problem(node, f"{what}: an event rule needs a 'resolve' pattern or keep_firing_for > 0")
    by = _label_list(r, get("by"))
    combine = _choice(r, get("combine"), "combine", COMBINES, "max")
    severity = _choice(r, get("severity"), "severity", SEVERITIES, "warning")
    labels = _labels(r, get("labels"))
    annotations = _annotations(r, get("annotations"))
    enabled = r.boolean(n, "enabled") if (n := get("enabled")) is not None else True
    group_name = group
    if group is None:
        group_name = r.string(n, "group") if (n := get("group")) is not None else "default"
    if len(r.problems) > before:
        return None
    assert condition is not None and group_name is not None and for_s is not None and keep_s is not None
    assert by is not None and labels is not None and annotations is not None and enabled is not None
    return Rule(
        name=name,
        condition=condition,
        group=group_name,
        for_s=for_s,
        keep_firing_for_s=keep_s,
        by=by,
        combine=combine,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        labels=labels,
        annotations=tuple(annotations.items()),
        enabled=enabled,
    )


def _opt_duration(r: Reader, node: Node | None, what: str, default: float) -> float | None:
    return default if node is None else r.duration(node, what)


def _choice(r: Reader, node: Node | None, what: str, choices: tuple[str, ...], default: str) -> str:
    if node is None:
        return default
    got = r.string(node, what)
    if got is not None and got not in choices:
        r.problem(node, f"unknown {what} {got!r}; one of: {', '.join(choices)}")
    return got or default


def _label_list(r: Reader, node: Node | None) -> tuple[str, ...] | None:
    if node is None:
        return ()
    items = r.sequence(node, "by")
    if items is None:
        return None
    out: list[str] = []
    for item in items:
        label = r.string(item, "a label in 'by'")
        if label is None:
            continue
        if not LABEL_NAME.fullmatch(label):
            r.problem(item, f"bad label name {label!r} in 'by'")
        elif label in out:
            r.problem(item, f"label {label!r} is twice in 'by'")
        out.append(label)
    return tuple(out)


def _labels(r: Reader, node: Node | None) -> tuple[tuple[str, str], ...] | None:
    if node is None:
        return ()
    items = r.mapping(node, "labels")
    if items is None:
        return None
    out: list[tuple[str, str]] = []
    for name, (key, value) in items.items():
        if not LABEL_NAME.fullmatch(name):
            r.problem(key, f"bad label name {name!r} in 'labels'")
        elif name in RESERVED_LABELS:
            r.problem(key, f"label {name!r} is set by InfrAgent (the rule's name)")
        got = r.text(value, f"labels.{name}")
        if got is not None:
            out.append((name, got))
    return tuple(out)


def _annotations(r: Reader, node: Node | None) -> dict[str, str] | None:
    if node is None:
        return {}
    items = r.mapping(node, "annotations")
    if items is None:
        return None
    out: dict[str, str] = {}
    for name, (_, value) in items.items():
        got = r.string(value, f"annotations.{name}", allow_empty=True)
        if got is None:
            continue
        bad = check_template(got)
        if bad is not None:
            r.problem(value, f"annotations.{name}: {bad[1]}", offset=r.offset_in(value, bad[0]))
        out[name] = got
    return out


def read_groups(r: Reader, node: Node) -> list[RuleGroup]:
    """``groups: [{name, rules: [...]}, ...]``'s list node; duplicate group or rule names in it
    are problems (a rule's name is its identity: an API path, an alert's ``alertname``)."""
    out: list[RuleGroup] = []
    groups = r.sequence(node, "groups")
    seen_groups: dict[str, int] = {}
    seen_rules: dict[str, int] = {}
    for gnode in groups or []:
        items = r.mapping(gnode, "a group")
        if items is None:
            continue
        r.keys(items, gnode, "a group", ("name", "rules"), required=("name", "rules"))
        name = r.string(items["name"][1], "name") if "name" in items else None
        if name is not None:
            if name in seen_groups:
                first = seen_groups[name]
                r.problem(items["name"][1], f"duplicate group name {name!r} (first at line {first})")
            seen_groups.setdefault(name, gnode.start_mark.line + 1)
        rules: list[Rule] = []
        rule_nodes = r.sequence(items["rules"][1], "rules") if "rules" in items else None
        for rnode in rule_nodes or []:
            rule = read_rule(r, rnode, name or "?")
            alert = _alert_node(rnode)
            if alert is not None and isinstance(alert.value, str):
                if alert.value in seen_rules:
                    first = seen_rules[alert.value]
                    r.problem(alert, f"duplicate rule name {alert.value!r} (first at line {first})")
                seen_rules.setdefault(alert.value, alert.start_mark.line + 1)
            if rule is not None:
                rules.append(rule)
        if name is not None:
            out.append(RuleGroup(name, tuple(rules)))
    return out


def _alert_node(node: Node) -> Node | None:
    if not isinstance(node, MappingNode):
        return None
    for key, value in node.value:
        if getattr(key, "value", None) == "alert" and isinstance(value.value, str):
            return value  # type: ignore[no-any-return]
    return None


def parse_rule_file(text: str, source: str) -> list[RuleGroup]:
    """Every group of a rule file; ``RuleFileError`` lists every problem of the file at once."""
    r = Reader(source)
    root = r.compose(text)
    groups: list[RuleGroup] = []
    if root is not None:
        items = r.mapping(root, "a rule file")
        if items is not None:
            r.keys(items, root, "a rule file", ("groups",), required=("groups",))
            if "groups" in items:
                groups = read_groups(r, items["groups"][1])
    r.raise_if_any()
    return groups


def parse_rule_text(text: str, source: str) -> Rule:
    """One rule given alone (YAML or JSON), as the API receives it; ``group`` is optional."""
    r = Reader(source)
    root = r.compose(text)
    rule = read_rule(r, root, None) if root is not None else None
    r.raise_if_any()
    assert rule is not None
    return rule


def rule_from_spec(spec: Mapping[str, Any], source: str) -> Rule:
    """A rule from its stored spec, validated again (a spec written by an older version may no
    longer be accepted: the caller learns why, with the key)."""
    try:
        text = yaml.safe_dump(dict(spec), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise RuleFileError([Problem(1, 1, f"not a rule spec: {exc}", source)]) from None
    return parse_rule_text(text, source)


def _pattern_spec(p: EventPattern) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.type is not None:
        out["type"] = p.type
    if p.service is not None:
        out["service"] = p.service
    if p.min_severity is not None:
        out["min_severity"] = p.min_severity
    if p.data:
        out["data"] = dict(p.data)
    return out


def rule_to_spec(rule: Rule) -> dict[str, Any]:
    """The canonical mapping of ``rule`` in the file format (every key explicit, durations as
    Prometheus strings): ``rule_from_spec(rule_to_spec(r)) == r``."""
    c = rule.condition
    spec: dict[str, Any] = {"alert": rule.name, "kind": c.kind, "group": rule.group}
    if isinstance(c, Threshold):
        spec |= {"metric": format_selector(c.selector), "function": c.function}
        spec |= {"window": format_duration(c.window_s), "op": c.op, "value": c.value}
        if c.recover is not None:
            spec["recover"] = c.recover
    elif isinstance(c, Absence):
        spec["silent"] = format_duration(c.silent_s)
        if c.selector is not None:
            spec["metric"] = format_selector(c.selector)
    elif isinstance(c, Reset):
        spec["metric"] = format_selector(c.selector)
    elif isinstance(c, EventMatch):
        spec["match"] = _pattern_spec(c.match)
        if c.resolve is not None:
            spec["resolve"] = _pattern_spec(c.resolve)
    elif isinstance(c, Forecast):
        spec |= {"metric": format_selector(c.selector), "window": format_duration(c.window_s)}
        spec |= {"horizon": format_duration(c.horizon_s), "op": c.op, "value": c.value}
    elif isinstance(c, Anomaly):
        spec |= {"metric": format_selector(c.selector), "window": format_duration(c.window_s)}
        spec |= {"baseline": format_duration(c.baseline_s), "z": c.z}
        spec |= {"warmup": format_duration(c.warmup_s), "direction": c.direction}
    if "for" in KIND_KEYS[c.kind]:
        spec["for"] = format_duration(rule.for_s)
    spec["keep_firing_for"] = format_duration(rule.keep_firing_for_s)
    if "combine" in KIND_KEYS[c.kind]:
        spec["combine"] = rule.combine
    spec |= {"by": list(rule.by), "severity": rule.severity, "labels": dict(rule.labels)}
    spec |= {"annotations": dict(rule.annotations), "enabled": rule.enabled}
    return spec
