"""The runbook file with step runbooks: every mistake at its line and column, or the runbooks.

Why composed YAML nodes and one pass, as for rule files and today's runbook file: an operator
running ``infragent runbooks check`` in an editor hook or CI wants every mistake at once, at a
place an editor jumps to. Loaded values forget their place; nodes keep it (``rules/nodes.py``).

The file is today's: a mapping with a ``runbooks`` list (other top-level keys are ignored, so
YAML anchors can live there; merge keys work). An entry with ``steps`` is a step runbook:

    runbooks:
      - name: restart-web                 # unique in the file; default runbook-<index>
        match:                            # every key optional; all given ones must match
          rule: [HostDown, "App*"]        # the alert rule's name (globs); absent on an event's incident
          event_type: app_down            # the event's type (globs); absent on an alert's incident
          service: "web*"                 # globs
          severity: [warning, critical]   # info, warning, critical or *
          labels: {env: prod}             # each label present and matching its glob
        approval: auto                    # act steps that do not say: auto (default) | required
        approval_expiry: 15m              # an approval request unanswered this long is rejected
        dry_run: false                    # record what would be sent, send nothing
        max_executions: 20                # the loop guard: step executions per run (1-100)
        steps: [...]                      # step_read.py

An entry with ``action`` (and no ``steps``) is a single-action runbook of today's format, read by
``runbook_check.read_runbook`` with every check it had, and run as a step runbook of one ``act``
step (``from_single_action``; an action ``none`` has no step, ``escalate`` one escalate step).
It does not get a ``verify`` step: today a successful command does not resolve the incident (its
alert resolving or a person does), and a verify that times out would escalate incidents that are
left remediating today. A failed command now escalates (``on_failure`` escalate): that one change
is deliberate, a failed fix should reach a person. Names are unique across both kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from infragent.errors import ConfigError
from infragent.model import ESCALATE, NO_ACTION, Severity
from infragent.responder.runbook_check import MAX_RUNBOOK_BYTES, glob_nodes, is_null, merge_keys, read_runbook
from infragent.responder.runbook_model import Runbook
from infragent.responder.step_read import read_steps
from infragent.responder.steps import (
    APPROVAL_MODES,
    DEFAULT_APPROVAL_EXPIRY_S,
    DEFAULT_MAX_EXECUTIONS,
    MAX_EXECUTIONS_CAP,
    Act,
    Escalate,
    IncidentMatch,
    Step,
    StepRunbook,
)
from infragent.rules.errors import Problem, ProblemReport
from infragent.rules.kinds import choice, positive_duration
from infragent.rules.nodes import Reader, kind_of

RUNBOOK_KEYS: Final = ("name", "match", "approval", "approval_expiry", "dry_run", "max_executions", "steps")
MATCH_KEYS: Final = ("rule", "event_type", "service", "severity", "labels")
SEVERITY_NAMES: Final = tuple(s.value for s in Severity)
MAX_APPROVAL_EXPIRY_S: Final = 86400.0
_EXPECTED = "expected a mapping with a 'runbooks' list"


@dataclass(frozen=True, slots=True)
class StepCheck(ProblemReport):
    """The problems of a text in order of place (1-based line and column), and its runbooks when
    there are none (a file with a mistake loads nothing)."""

    problems: list[Problem] = field(default_factory=list)
    runbooks: list[StepRunbook] = field(default_factory=list)


def check_step_text(text: str, source: str = "runbooks") -> StepCheck:
    """Check ``text`` as a runbook file of step and single-action runbooks."""
    r = Reader(source)
    runbooks: list[StepRunbook] = []
    if not text.strip():
        r.problem(None, f"the text is empty: {_EXPECTED}")
    elif len(text.encode()) > MAX_RUNBOOK_BYTES:
        r.problem(None, f"the text is over {MAX_RUNBOOK_BYTES // 1024} KB ({MAX_RUNBOOK_BYTES} bytes)")
    else:
        root = r.compose(text)
        if root is not None and merge_keys(r, root):
            runbooks = _read_file(r, root)
    problems = sorted(r.problems, key=lambda p: (p.line, p.column))
    return StepCheck(problems, [] if problems else runbooks)


def parse_step_runbooks(text: str, source: str = "runbooks") -> list[StepRunbook]:
    """The runbooks of ``text``, or ConfigError naming every problem at its ``line:column``."""
    checked = check_step_text(text, source)
    if checked.problems:
        raise ConfigError(source, "; ".join(checked.lines))
    return checked.runbooks


def load_step_runbooks(path: Path) -> list[StepRunbook]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read runbooks: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    return parse_step_runbooks(text, str(path))


def from_single_action(runbook: Runbook) -> StepRunbook:
    """Today's single-action runbook as a step runbook (the module docstring says why no verify).
    It matches what it matched: incidents opened by events of its types, services and severities."""
    every = set(runbook.severities) == set(Severity)
    match = IncidentMatch(
        event_types=runbook.types,
        services=runbook.services,
        severities=None if every else tuple(s.value for s in runbook.severities),
    )
    steps: tuple[Step, ...] = ()
    if runbook.action == ESCALATE:
        steps = (Step("escalate", Escalate(f"runbook {runbook.name!r} escalates {{type}} of {{service}}")),)
    elif runbook.action != NO_ACTION:
        steps = (Step("act", Act(runbook.action, runbook.target, dict(runbook.params))),)
    return StepRunbook(runbook.name, steps, match)


def _read_file(r: Reader, root: Node) -> list[StepRunbook]:
    if not isinstance(root, MappingNode):
        r.problem(root, f"{_EXPECTED}, not {kind_of(root)}")
        return []
    items = r.mapping(root, "the file") or {}
    if "runbooks" not in items:
        r.problem(root, f"{_EXPECTED}; there is no 'runbooks' key")
        return []
    listing = items["runbooks"][1]
    if not isinstance(listing, SequenceNode):
        r.problem(listing, f"{_EXPECTED}; 'runbooks' is {kind_of(listing)}")
        return []
    names: dict[str, str] = {}
    out: list[StepRunbook] = []
    for i, node in enumerate(listing.value):
        keys = _keys_of(node)
        if "steps" in keys and "action" in keys:
            r.problem(
                node, f"runbooks[{i}]: either steps (a step runbook) or action (a single action), not both"
            )
        elif "steps" in keys or "action" not in keys:
            if (runbook := _read_step_runbook(r, node, i, names)) is not None:
                out.append(runbook)
        elif (single := read_runbook(r, node, i, names)) is not None:
            out.append(from_single_action(single))
    return out


def _keys_of(node: Node) -> set[str]:
    if not isinstance(node, MappingNode):
        return set()
    return {str(k.value) for k, _ in node.value if isinstance(k, ScalarNode)}


def _read_step_runbook(r: Reader, node: Node, i: int, names: dict[str, str]) -> StepRunbook | None:
    where = f"runbooks[{i}]"
    items = r.mapping(node, where)
    if items is None:
        return None
    before = len(r.problems)
    for key_name, (key, _) in items.items():
        if key_name not in RUNBOOK_KEYS:
            r.problem(key, f"{where}: unknown key {key_name!r}; a step runbook has {', '.join(RUNBOOK_KEYS)}")

    def get(key: str) -> Node | None:
        return items[key][1] if key in items else None

    name, name_node = f"runbook-{i}", node
    if not is_null(n := get("name")):
        assert n is not None
        got = r.text(n, f"{where}.name")
        if got:
            name, name_node = got, n
    if name in names:
        r.problem(name_node, f"{where}.name: duplicate runbook name {name!r} (first at {names[name]})")
    else:
        names[name] = f"{where}, line {name_node.start_mark.line + 1}"
    match = _read_match(r, get("match"), where)
    approval = (
        choice(r, n, f"{where}.approval", APPROVAL_MODES) if (n := get("approval")) is not None else "auto"
    )
    expiry: float | None = DEFAULT_APPROVAL_EXPIRY_S
    if (n := get("approval_expiry")) is not None:
        expiry = positive_duration(r, n, f"{where}.approval_expiry")
        if expiry is not None and expiry > MAX_APPROVAL_EXPIRY_S:
            r.problem(n, f"{where}.approval_expiry: at most 24h")
    dry_run = r.boolean(n, f"{where}.dry_run") if (n := get("dry_run")) is not None else False
    limit = _max_executions(r, get("max_executions"), where)
    steps = None
    if (n := get("steps")) is None:
        r.problem(node, f"{where}: a step runbook needs 'steps' (or 'action', the single-action form)")
    else:
        steps = read_steps(r, n, where)
    if steps is not None and limit is not None and limit < len(steps):
        r.problem(
            get("max_executions"), f"{where}.max_executions: {limit} is fewer than its {len(steps)} steps"
        )
    if len(r.problems) > before or steps is None or match is None:
        return None
    assert approval is not None and expiry is not None and dry_run is not None and limit is not None
    return StepRunbook(name, steps, match, approval, expiry, dry_run, limit)  # type: ignore[arg-type]


def _max_executions(r: Reader, node: Node | None, where: str) -> int | None:
    if node is None:
        return DEFAULT_MAX_EXECUTIONS
    got = r.number(node, f"{where}.max_executions")
    if got is None:
        return None
    if got != int(got) or not 1 <= got <= MAX_EXECUTIONS_CAP:
        r.problem(node, f"{where}.max_executions: a whole number from 1 to {MAX_EXECUTIONS_CAP}, not {got:g}")
        return None
    return int(got)


def _read_match(r: Reader, node: Node | None, where: str) -> IncidentMatch | None:
    """Each key absent or null matches anything; None when the mapping is invalid."""
    if node is None or is_null(node):
        return IncidentMatch()
    what = f"{where}.match"
    items = r.mapping(node, what)
    if items is None:
        return None
    before = len(r.problems)
    for key_name, (key, _) in items.items():
        if key_name == "type":
            r.problem(key, f"{what}: a step runbook matches the event's type as 'event_type', not 'type'")
        elif key_name not in MATCH_KEYS:
            r.problem(key, f"{what}: unknown key {key_name!r}; match has {', '.join(MATCH_KEYS)}")

    def globs(key: str) -> tuple[str, ...] | None:
        found = glob_nodes(r, items.get(key), f"{what}.{key}")
        return tuple(value for value, _ in found) or None

    rules, event_types, services = globs("rule"), globs("event_type"), globs("service")
    severities: list[str] = []
    star = False
    for value, value_node in glob_nodes(r, items.get("severity"), f"{what}.severity"):
        if value in SEVERITY_NAMES:
            severities.append(value)
        elif value == "*":
            star = True
        else:
            r.problem(value_node, f"{what}.severity: must be info, warning, critical or *, not {value!r}")
    labels: list[tuple[str, str]] = []
    if "labels" in items and not is_null(items["labels"][1]):
        for label, (_, label_node) in (r.mapping(items["labels"][1], f"{what}.labels") or {}).items():
            got = r.text(label_node, f"{what}.labels.{label}")
            if got is not None:
                labels.append((label, got))
    if len(r.problems) > before:
        return None
    return IncidentMatch(
        rules=rules,
        event_types=event_types,
        services=services,
        severities=None if star or not severities else tuple(severities),
        labels=tuple(labels),
    )
