"""The ``steps:`` list of a step runbook read from composed YAML, every mistake at its line:column.

Why apart from ``step_file.py``: each of the seven step kinds has its own keys and shorthands, a
table-like reader per kind here; the file, the runbook's keys and its ``match`` live there. The
typed node reading is the rules' (``rules/nodes.py``); a check's metric condition is read by the
rules' threshold reader (``rules/kinds.py``), so it accepts and refuses what a threshold rule does.

A step is a mapping with exactly one kind key and the common keys ``id`` (default ``step-<n>``,
unique, letters, digits, ``_ . -``), ``timeout`` (a duration; not on wait or escalate),
``on_failure`` (``next``, ``escalate`` or ``goto <id>``, default escalate; not on wait or
escalate), ``on_success`` (``next``, ``complete`` or ``goto <id>``, default next; not on escalate)
and ``approval`` (``required`` or ``auto``; act and ask_llm only). Kinds and shorthands:

    check: web-http                     # a probe, expect up; or {probe: web-http, expect: down}
    check: {metric: 'disk.used{mount="/"}', function: last, window: 1m, op: ">", value: 0.9}
    act: restart                        # or {action, target, params, on: agent|sdk}
    wait: 30s                           # a duration > 0, at most 24 h
    verify: any                         # alert | check | any; null or {signal: …} too
    notify: "restarted {service}"       # a template
    ask_llm: "what next for {service}?" # or null, or {question: …}
    escalate: "still down"              # a template, or null
"""

from __future__ import annotations

import re
from typing import Final

from yaml.nodes import MappingNode, Node, ScalarNode

from infragent.model import PASSIVE_ACTIONS
from infragent.responder.runbook_check import is_null
from infragent.responder.steps import (
    APPROVAL_MODES,
    RECEIVERS,
    SIGNALS,
    STEP_KINDS,
    TEMPLATE_FIELDS,
    Act,
    AskLlm,
    Check,
    Escalate,
    Notify,
    OnFailure,
    OnSuccess,
    Step,
    Verify,
    Wait,
    unknown_placeholders,
)
from infragent.rules.kinds import choice, positive_duration, read_condition
from infragent.rules.model import Threshold
from infragent.rules.nodes import Reader

COMMON_KEYS: Final = ("id", "timeout", "on_failure", "on_success", "approval")
STEP_ID: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
PROBE_KEYS: Final = ("probe", "expect")
METRIC_KEYS: Final = ("metric", "function", "window", "op", "value")
ACT_KEYS: Final = ("action", "target", "params", "on")
MAX_WAIT_S: Final = 86400.0
_STR = "tag:yaml.org,2002:str"
_THEN = {"on_failure": ("next", "escalate"), "on_success": ("next", "complete")}

#: (goto target, its node, where) of every ``on_failure: goto``, resolved once all ids are known.
Gotos = list[tuple[str, Node, str]]


def read_steps(r: Reader, node: Node, where: str) -> tuple[Step, ...] | None:
    """The steps of one runbook (``where`` names it in messages); None when any is invalid."""
    nodes = r.sequence(node, f"{where}.steps")
    if nodes is None:
        return None
    if not nodes:
        r.problem(node, f"{where}.steps: a runbook needs at least one step")
        return None
    before = len(r.problems)
    ids: dict[str, int] = {}
    gotos: Gotos = []
    steps: list[Step] = []
    for i, step_node in enumerate(nodes):
        step, step_id, id_node = _read_step(r, step_node, i, f"{where}.steps[{i}]", gotos)
        if step_id in ids:
            first = ids[step_id]
            r.problem(
                id_node, f"{where}.steps[{i}].id: duplicate step id {step_id!r} (first at line {first})"
            )
        ids.setdefault(step_id, id_node.start_mark.line + 1)
        if step is not None:
            steps.append(step)
    for target, goto_node, what in gotos:
        if target not in ids:
            known = ", ".join(ids) or "none"
            r.problem(goto_node, f"{what}: goto {target!r}: no step has this id (ids: {known})")
    return tuple(steps) if len(r.problems) == before else None


def _read_step(r: Reader, node: Node, i: int, what: str, gotos: Gotos) -> tuple[Step | None, str, Node]:
    """The step (None when invalid), its id and the node of its id (the step's when implicit)."""
    items = r.mapping(node, what)
    step_id, id_node = f"step-{i + 1}", node
    if items is None:
        return None, step_id, node
    kinds = [k for k in items if k in STEP_KINDS]
    for name, (key, _) in items.items():
        if name not in STEP_KINDS and name not in COMMON_KEYS:
            r.problem(key, f"{what}: unknown key {name!r}; a step has one of {', '.join(STEP_KINDS)} "
                      f"and {', '.join(COMMON_KEYS)}")  # fmt: skip
    if not kinds:
        r.problem(node, f"{what}: a step needs one kind key: {', '.join(STEP_KINDS)}")
        return None, step_id, node
    for extra in kinds[1:]:
        r.problem(items[extra][0], f"{what}: one kind per step, not both {kinds[0]} and {extra}")
    kind = kinds[0]
    before = len(r.problems)

    def get(key: str) -> Node | None:
        return items[key][1] if key in items else None

    if (n := get("id")) is not None:
        got = r.text(n, f"{what}.id")
        if got is not None and not STEP_ID.fullmatch(got):
            r.problem(n, f"{what}.id: {got!r}: use letters, digits, '_', '.' or '-' (at most 64)")
        step_id, id_node = got or step_id, n
    timeless = kind in ("wait", "escalate")
    timeout = None
    if (n := get("timeout")) is not None:
        if timeless:
            r.problem(items["timeout"][0], f"{what}: a {kind} step takes no timeout")
        else:
            timeout = positive_duration(r, n, f"{what}.timeout")
    on_failure, on_success = OnFailure(), OnSuccess()
    if (n := get("on_failure")) is not None:
        if timeless:
            r.problem(items["on_failure"][0], f"{what}: a {kind} step cannot fail; it takes no on_failure")
        elif (got_then := _then(r, n, what, "on_failure", gotos)) is not None:
            on_failure = OnFailure(*got_then)  # type: ignore[arg-type]
    if (n := get("on_success")) is not None:
        if kind == "escalate":
            r.problem(
                items["on_success"][0], f"{what}: an escalate step ends the run; it takes no on_success"
            )
        elif (got_then := _then(r, n, what, "on_success", gotos)) is not None:
            on_success = OnSuccess(*got_then)  # type: ignore[arg-type]
    approval = None
    if (n := get("approval")) is not None:
        if kind not in ("act", "ask_llm"):
            r.problem(items["approval"][0], f"{what}: approval is for act and ask_llm steps, not {kind}")
        else:
            approval = choice(r, n, f"{what}.approval", APPROVAL_MODES)
    body = _BODIES[kind](r, items[kind][1], f"{what}.{kind}")
    if isinstance(body, Act) and approval is not None:
        body = Act(body.action, body.target, body.params, body.on, approval)  # type: ignore[arg-type]
    elif isinstance(body, AskLlm) and approval is not None:
        body = AskLlm(body.question, approval)  # type: ignore[arg-type]
    if body is None or len(r.problems) > before:
        return None, step_id, id_node
    return Step(step_id, body, on_failure, timeout, on_success), step_id, id_node


def _then(r: Reader, node: Node, what: str, key: str, gotos: Gotos) -> tuple[str, str | None] | None:
    """``on_failure`` (next, escalate) or ``on_success`` (next, complete), or ``goto <id>``."""
    text = r.string(node, f"{what}.{key}")
    if text is None:
        return None
    words = text.split()
    if len(words) == 1 and words[0] in _THEN[key]:
        return words[0], None
    if len(words) == 2 and words[0] == "goto":
        gotos.append((words[1], node, f"{what}.{key}"))
        return "goto", words[1]
    first, second = _THEN[key]
    r.problem(node, f"{what}.{key}: must be {first}, {second} or 'goto <step id>', not {text!r}")
    return None


def _template(r: Reader, node: Node, value: str, what: str) -> None:
    """``{placeholders}`` must be incident fields, filled in when the step runs."""
    try:
        unknown = unknown_placeholders(value)
    except ValueError as exc:
        r.problem(node, f"{what}: {exc} (write {{{{ or }}}} for a literal brace)")
        return
    allowed = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
    for name in unknown:
        r.problem(node, f"{what}: unknown placeholder {{{name}}}; use {allowed} or {{labels[NAME]}}")


def _text_or_map(r: Reader, node: Node, what: str, key: str) -> tuple[str | None, bool]:
    """A kind's value given as a string, null, or a mapping of the single ``key``: (text, ok)."""
    if is_null(node):
        return None, True
    if isinstance(node, MappingNode):
        items = r.mapping(node, what) or {}
        r.keys(items, node, what, (key,))
        if key not in items or is_null(items[key][1]):
            return None, True
        got = r.string(items[key][1], f"{what}.{key}", allow_empty=True)
        return got, got is not None
    got = r.string(node, what, allow_empty=True)
    return got, got is not None


def _check(r: Reader, node: Node, what: str) -> Check | None:
    if isinstance(node, ScalarNode) and node.tag == _STR:
        probe = r.string(node, what)
        return Check(probe=probe) if probe is not None else None
    items = r.mapping(node, what)
    if items is None:
        return None
    r.keys(items, node, what, PROBE_KEYS + METRIC_KEYS)
    if ("probe" in items) == ("metric" in items):
        r.problem(node, f"{what}: give either probe (an agent check) or metric (a condition), one of them")
        return None
    if "probe" in items:
        for key in METRIC_KEYS:
            if key in items:
                r.problem(items[key][0], f"{what}: {key} belongs to a metric condition, not a probe")
        probe = r.string(items["probe"][1], f"{what}.probe")
        expect = (
            choice(r, items["expect"][1], f"{what}.expect", ("up", "down")) if "expect" in items else "up"
        )
        if probe is None or expect is None:
            return None
        return Check(probe=probe, expect=expect)  # type: ignore[arg-type]
    if "expect" in items:
        r.problem(items["expect"][0], f"{what}: expect belongs to a probe; a condition is ok when it holds")
    condition = read_condition(r, "threshold", lambda k: items[k][1] if k in items else None, node, what)
    return Check(condition=condition) if isinstance(condition, Threshold) else None


def _act(r: Reader, node: Node, what: str) -> Act | None:
    items: dict[str, tuple[ScalarNode, Node]]
    if isinstance(node, ScalarNode) and node.tag == _STR:
        items = {"action": (node, node)}
    else:
        got = r.mapping(node, what)
        if got is None:
            return None
        items = got
        r.keys(got, node, what, ACT_KEYS, required=("action",))
    action = r.string(items["action"][1], f"{what}.action") if "action" in items else None
    if action is not None and action in PASSIVE_ACTIONS:
        r.problem(
            items["action"][1], f"{what}.action: {action!r} is not an action: use an escalate step, or none"
        )
        action = None
    target: str | None = "{service}"
    if "target" in items:
        n = items["target"][1]
        target = None if is_null(n) else r.string(n, f"{what}.target")
        if target is not None:
            _template(r, n, target, f"{what}.target")
    params: dict[str, str] = {}
    if "params" in items and not is_null(items["params"][1]):
        for name, (_, value) in (r.mapping(items["params"][1], f"{what}.params") or {}).items():
            got_value = r.string(value, f"{what}.params.{name}", allow_empty=True)
            if got_value is not None:
                _template(r, value, got_value, f"{what}.params.{name}")
                params[name] = got_value
    on = choice(r, items["on"][1], f"{what}.on", RECEIVERS) if "on" in items else None
    if action is None:
        return None
    return Act(action, target, params, on)  # type: ignore[arg-type]


def _wait(r: Reader, node: Node, what: str) -> Wait | None:
    seconds = positive_duration(r, node, what)
    if seconds is not None and seconds > MAX_WAIT_S:
        r.problem(node, f"{what}: at most 24h; a longer pause is a schedule, not a step")
        return None
    return Wait(seconds) if seconds is not None else None


def _verify(r: Reader, node: Node, what: str) -> Verify | None:
    text, ok = _text_or_map(r, node, what, "signal")
    if not ok:
        return None
    if text is None:
        return Verify()
    if text not in SIGNALS:
        r.problem(node, f"{what}: the signal is alert, check or any, not {text!r}")
        return None
    return Verify(text)


def _notify(r: Reader, node: Node, what: str) -> Notify | None:
    message = r.string(node, what)
    if message is None:
        return None
    _template(r, node, message, what)
    return Notify(message)


def _ask_llm(r: Reader, node: Node, what: str) -> AskLlm | None:
    question, ok = _text_or_map(r, node, what, "question")
    if question:
        _template(r, node, question, what)
    return AskLlm(question or "") if ok else None


def _escalate(r: Reader, node: Node, what: str) -> Escalate | None:
    if is_null(node):
        return Escalate()
    summary = r.string(node, what, allow_empty=True)
    if summary is None:
        return None
    _template(r, node, summary, what)
    return Escalate(summary)


_BODIES: Final = {
    "check": _check,
    "act": _act,
    "wait": _wait,
    "verify": _verify,
    "notify": _notify,
    "ask_llm": _ask_llm,
    "escalate": _escalate,
}
