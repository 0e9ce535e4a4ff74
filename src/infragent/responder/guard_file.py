"""A tenant's guardrail settings as YAML (or JSON), every mistake at its line and column.

Why a file format for settings: the budget, the breaker's shares, which actions need approval and
which runbooks run in shadow mode are a tenant's policy, reviewed like code; a mistake there must
point at its place, not surface later as a refusal nobody can explain. Every key is optional; an
absent one keeps the default of ``guardrails.GuardSettings``:

    budget:
      max_actions: 3          # automatic actions per host and action in the window (0: none)
      window: 30m             # a duration (30m, 1h) or seconds
    breaker:
      open_above: 40%         # opens when more than this share of hosts is unhealthy at once
      close_at: 20%           # closes after close_after at or below this share
      min_unhealthy: 3        # and never for fewer unhealthy hosts than this
      close_after: 5m
    approval:
      actions: [reboot]       # always need an operator's yes
      llm: true               # every LLM-proposed action needs one (the default)
      expires_after: 15m      # then it is rejected and escalated
      roles: [operator, admin]
    shadow: false             # the whole tenant decides and records, sends nothing
    shadow_runbooks: [restart-web]

A share is a number from 0 to 1 or a percentage string (``40%``). The kill switch is not here: it
is global (a setting and an API call), not a tenant's policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from yaml.nodes import Node, ScalarNode

from infragent.auth.scopes import ALL_ROLES
from infragent.responder.approval import ApprovalPolicy
from infragent.responder.breaker import BreakerConfig
from infragent.responder.guardrails import Budget, GuardSettings
from infragent.rules.errors import Problem, ProblemReport
from infragent.rules.nodes import Reader

SECTIONS: Final = {
    "budget": ("max_actions", "window"),
    "breaker": ("open_above", "close_at", "min_unhealthy", "close_after"),
    "approval": ("actions", "llm", "expires_after", "roles"),
}
TOP_KEYS: Final = (*SECTIONS, "shadow", "shadow_runbooks")
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")

Items = dict[str, tuple[ScalarNode, Node]]


@dataclass(frozen=True, slots=True)
class GuardCheck(ProblemReport):
    """The problems of a text in order of place, and its settings when there are none."""

    problems: list[Problem] = field(default_factory=list)
    settings: GuardSettings | None = None


def check_guard_text(text: str, source: str = "guardrails") -> GuardCheck:
    """Check ``text`` as a guardrail settings mapping; an empty text is the defaults."""
    r = Reader(source)
    if not text.strip():
        return GuardCheck([], GuardSettings())
    root = r.compose(text)
    settings = read_guard_settings(r, root, "guardrails") if root is not None else None
    problems = sorted(r.problems, key=lambda p: (p.line, p.column))
    return GuardCheck(problems, None if problems else settings)


def read_guard_settings(r: Reader, node: Node, where: str) -> GuardSettings | None:
    """The settings of mapping ``node``; None, with every problem recorded in ``r``, when invalid."""
    items = r.mapping(node, where)
    if items is None:
        return None
    before = len(r.problems)
    r.keys(items, node, where, TOP_KEYS)
    sections = {name: _section(r, items, name, f"{where}.{name}") for name in SECTIONS}
    budget = _budget(r, sections["budget"], f"{where}.budget")
    breaker = _breaker(r, sections["breaker"], f"{where}.breaker")
    approval = _approval(r, sections["approval"], f"{where}.approval")
    shadow = r.boolean(items["shadow"][1], f"{where}.shadow") if "shadow" in items else False
    runbooks = _names(r, items, "shadow_runbooks", f"{where}.shadow_runbooks")
    if len(r.problems) > before:
        return None
    assert budget is not None and breaker is not None and approval is not None and shadow is not None
    return GuardSettings(budget, breaker, approval, shadow, frozenset(runbooks or ()))


def _section(r: Reader, items: Items, name: str, what: str) -> Items:
    if name not in items:
        return {}
    node = items[name][1]
    got = r.mapping(node, what)
    if got is not None:
        r.keys(got, node, what, SECTIONS[name])
    return got or {}


def _whole(r: Reader, items: Items, key: str, what: str, least: int) -> int | None:
    node = items[key][1]
    value = r.number(node, what)
    if value is not None and (not value.is_integer() or value < least):
        r.problem(node, f"{what}: must be a whole number, {least} or more")
        return None
    return None if value is None else int(value)


def _share(r: Reader, items: Items, key: str, what: str) -> float | None:
    node = items[key][1]
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str" and "%" in node.value:
        m = _PERCENT.fullmatch(node.value)
        value = float(m.group(1)) / 100 if m else None
    else:
        value = r.number(node, what)
        if value is None:
            return None
    if value is None or not 0 <= value <= 1:
        r.problem(node, f"{what}: must be a share from 0 to 1 or a percentage such as 40%")
        return None
    return value


def _positive_duration(r: Reader, items: Items, key: str, what: str) -> float | None:
    node = items[key][1]
    value = r.duration(node, what)
    if value is not None and value <= 0:
        r.problem(node, f"{what}: must be longer than 0")
        return None
    return value


def _budget(r: Reader, items: Items, what: str) -> Budget | None:
    default = Budget()
    limit = (
        _whole(r, items, "max_actions", f"{what}.max_actions", 0) if "max_actions" in items else default.limit
    )
    window = (
        _positive_duration(r, items, "window", f"{what}.window") if "window" in items else default.window_s
    )
    if limit is None or window is None:
        return None
    return Budget(limit, window)


def _breaker(r: Reader, items: Items, what: str) -> BreakerConfig | None:
    default = BreakerConfig()
    above = (
        _share(r, items, "open_above", f"{what}.open_above") if "open_above" in items else default.open_above
    )
    close = _share(r, items, "close_at", f"{what}.close_at") if "close_at" in items else default.close_at
    least = (
        _whole(r, items, "min_unhealthy", f"{what}.min_unhealthy", 1)
        if "min_unhealthy" in items
        else default.min_unhealthy
    )
    after = (
        r.duration(items["close_after"][1], f"{what}.close_after")
        if "close_after" in items
        else default.close_after_s
    )
    if above is None or close is None or least is None or after is None:
        return None
    if above >= 1:
        r.problem(items["open_above"][1], f"{what}.open_above: must be below 100% (it opens above it)")
        return None
    if close > above:
        where = items["close_at"][1] if "close_at" in items else items["open_above"][1]
        r.problem(where, f"{what}.close_at ({close:.0%}) must not be above open_above ({above:.0%})")
        return None
    return BreakerConfig(above, close, least, after)


def _approval(r: Reader, items: Items, what: str) -> ApprovalPolicy | None:
    default = ApprovalPolicy()
    actions = _names(r, items, "actions", f"{what}.actions")
    llm = r.boolean(items["llm"][1], f"{what}.llm") if "llm" in items else default.llm
    expires = (
        _positive_duration(r, items, "expires_after", f"{what}.expires_after")
        if "expires_after" in items
        else default.expires_after_s
    )
    roles = _names(r, items, "roles", f"{what}.roles")
    if roles is not None and "roles" in items:
        for role, node in roles.items():
            if role not in ALL_ROLES or role == "viewer":
                r.problem(node, f"{what}.roles: {role!r} cannot approve; choose from operator, admin")
                return None
        if not roles:
            r.problem(items["roles"][1], f"{what}.roles: at least one role must be able to approve")
            return None
    if actions is None or llm is None or expires is None:
        return None
    chosen = frozenset(roles) if roles and "roles" in items else default.roles
    return ApprovalPolicy(frozenset(actions), llm, expires, chosen)


def _names(r: Reader, items: Items, key: str, what: str) -> dict[str, Node] | None:
    """A list of distinct non-empty strings, each with its node; {} when absent."""
    if key not in items:
        return {}
    nodes = r.sequence(items[key][1], what)
    if nodes is None:
        return None
    out: dict[str, Node] = {}
    for item in nodes:
        name = r.string(item, what)
        if name is None:
            return None
        if name in out:
            r.problem(item, f"{what}: {name!r} is listed twice")
            return None
        out[name] = item
    return out
