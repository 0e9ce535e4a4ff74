"""Every mistake of a runbook file, each at its line and column, or the runbooks it holds.

Why one pass over composed YAML nodes rather than ``safe_load`` and a first-error exception: a
person pasting a file into the dashboard (``/rules``) wants every mistake at once, placed where an
editor jumps to it; loaded values have forgotten their place, composed nodes have not. The typed
node reading is the rule files' (``rules/nodes.py``), so both formats say "must be a string, not a
number" the same way. This is the only definition of a valid runbook file: ``runbooks.py`` loads
the configured file through ``check_runbook_text`` and refuses start-up with the same problems.

A file is a mapping with a ``runbooks`` list (other top-level keys are ignored, so a file can keep
YAML anchors there); each runbook a mapping of ``name`` (default ``runbook-<index>``, unique),
``match`` (``type``, ``service``, ``severity``: a glob or a list of globs; severities info, warning,
critical or ``*``), ``action`` (required, a non-empty string), ``target`` (a string or null) and
``params`` (names to strings). ``target`` and ``params`` may name ``{service}``, ``{type}`` and
``{node_id}`` only: any other placeholder would fail when the runbook decides, not when it loads.

The step runbook file (``step_file.py``) reads its single-action entries with ``read_runbook``, so
both formats accept and refuse the same single-action runbooks.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Final

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from infragent.model import Severity
from infragent.responder.runbook_model import TEMPLATE_FIELDS, Runbook
from infragent.rules.errors import Problem, ProblemReport
from infragent.rules.nodes import Reader, kind_of

#: The largest file checked (UTF-8 bytes); a runbook file is a few hundred lines at most.
MAX_RUNBOOK_BYTES: Final = 256 * 1024
RUNBOOK_KEYS: Final = ("name", "match", "action", "target", "params")
MATCH_KEYS: Final = ("type", "service", "severity")
SEVERITY_NAMES: Final = tuple(s.value for s in Severity)
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_EXPECTED = "expected a mapping with a 'runbooks' list"

Entry = tuple[ScalarNode, Node]


@dataclass(frozen=True, slots=True)
class RunbookCheck(ProblemReport):
    """The problems of a text in order of place (1-based line and column), and its runbooks when
    there are none (empty otherwise: a file with a mistake loads nothing)."""

    problems: list[Problem] = field(default_factory=list)
    runbooks: list[Runbook] = field(default_factory=list)


def check_runbook_text(text: str, source: str = "runbooks") -> RunbookCheck:
    """Check ``text`` as a runbook file; ``source`` names it in each ``Problem``."""
    r = Reader(source)
    runbooks: list[Runbook] = []
    if not text.strip():
        r.problem(None, f"the text is empty: {_EXPECTED}")
    elif len(text.encode()) > MAX_RUNBOOK_BYTES:
        r.problem(None, f"the text is over {MAX_RUNBOOK_BYTES // 1024} KB ({MAX_RUNBOOK_BYTES} bytes)")
    else:
        root = r.compose(text)
        if root is not None and merge_keys(r, root):
            runbooks = _read_file(r, root)
    problems = sorted(r.problems, key=lambda p: (p.line, p.column))
    return RunbookCheck(problems, [] if problems else runbooks)


def merge_keys(r: Reader, root: Node) -> bool:
    """Apply YAML merge keys (``<<: *defaults``) in place, as ``safe_load`` does, so a file that
    loads also checks; False, with the problem recorded, when a merge is malformed."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            try:
                SafeConstructor().flatten_mapping(node)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark or node.start_mark
                r.problems.append(
                    Problem(mark.line + 1, mark.column + 1, f"not valid YAML: {exc.problem}", r.source)
                )
                return False
            except RecursionError:
                r.problem(node, "not valid YAML: a merge key (<<) includes its own mapping")
                return False
            todo.extend(child for pair in node.value for child in pair)
        elif isinstance(node, SequenceNode):
            todo.extend(node.value)
    return True


def _read_file(r: Reader, root: Node) -> list[Runbook]:
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
    read = [read_runbook(r, node, i, names) for i, node in enumerate(listing.value)]
    return [rb for rb in read if rb is not None]


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL_TAG)


def read_runbook(r: Reader, node: Node, i: int, names: dict[str, str]) -> Runbook | None:
    """Runbook ``i``; ``names`` maps each name seen so far to where, to refuse a second one."""
    where = f"runbooks[{i}]"
    items = r.mapping(node, where)
    if items is None:
        return None
    before = len(r.problems)
    for key_name, (key, _) in items.items():
        if key_name not in RUNBOOK_KEYS:
            r.problem(
                key,
                f"{where}: unknown keys are refused: {key_name!r} is not one of {', '.join(RUNBOOK_KEYS)}",
            )

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

    action = None
    if (n := get("action")) is None:
        r.problem(node, f"{where}.action: required, a string")
    else:
        action = r.string(n, f"{where}.action")

    types, services, severities = _read_match(r, get("match"), where)

    target: str | None = "{service}"
    if (n := get("target")) is not None:
        target = None if is_null(n) else r.string(n, f"{where}.target", allow_empty=True)
        if target is not None:
            _check_template(r, n, target, f"{where}.target")

    params: dict[str, str] = {}
    if not is_null(n := get("params")):
        assert n is not None
        for param, (_, value) in (r.mapping(n, f"{where}.params") or {}).items():
            got = r.string(value, f"{where}.params.{param}", allow_empty=True)
            if got is not None:
                _check_template(r, value, got, f"{where}.params.{param}")
                params[param] = got

    if len(r.problems) > before or action is None:
        return None
    return Runbook(name, action, types, services, severities, target, params)


def _read_match(
    r: Reader, node: Node | None, where: str
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[Severity, ...]]:
    """(types, services, severities); each absent or null one matches everything."""
    if is_null(node):
        return ("*",), ("*",), tuple(Severity)
    assert node is not None
    items = r.mapping(node, f"{where}.match") or {}
    for key_name, (key, _) in items.items():
        if key_name not in MATCH_KEYS:
            r.problem(key, f"{where}.match: may only hold type, service and severity, not {key_name!r}")
    types = _globs(r, items.get("type"), f"{where}.match.type")
    services = _globs(r, items.get("service"), f"{where}.match.service")
    severities: list[Severity] = []
    for value, value_node in glob_nodes(r, items.get("severity"), f"{where}.match.severity"):
        if value in SEVERITY_NAMES:
            severities.append(Severity(value))
        elif value != "*":
            r.problem(value_node, f"{where}.match.severity: must be info, warning or critical, not {value!r}")
    return types, services, tuple(severities) or tuple(Severity)


def _globs(r: Reader, entry: Entry | None, what: str) -> tuple[str, ...]:
    return tuple(value for value, _ in glob_nodes(r, entry, what)) or ("*",)


def glob_nodes(r: Reader, entry: Entry | None, what: str) -> list[tuple[str, Node]]:
    """A string or a list of strings, each with its node; [] when absent or null (match all)."""
    node = entry[1] if entry is not None else None
    if node is None or is_null(node):
        return []
    if isinstance(node, ScalarNode) and node.tag == _STR_TAG:
        return [(str(node.value), node)]
    if not isinstance(node, SequenceNode):
        r.problem(node, f"{what}: must be a string or a list of strings, not {kind_of(node)}")
        return []
    if not node.value:
        r.problem(node, f"{what}: an empty list would match nothing; leave the key out to match all")
    out: list[tuple[str, Node]] = []
    for item in node.value:
        if isinstance(item, ScalarNode) and item.tag == _STR_TAG:
            out.append((str(item.value), item))
        else:
            r.problem(
                item, f"{what}: must be a string or a list of strings, not a list holding {kind_of(item)}"
            )
    return out


def _check_template(r: Reader, node: Node, value: str, what: str) -> None:
    """``{placeholders}`` of ``value`` must be event fields the runbook fills in when it decides."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        r.problem(node, f"{what}: {exc} (write {{{{ or }}}} for a literal brace)")
        return
    allowed = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
    for name in fields:
        if name not in TEMPLATE_FIELDS:
            r.problem(node, f"{what}: unknown placeholder {{{name}}}; use {allowed}")
