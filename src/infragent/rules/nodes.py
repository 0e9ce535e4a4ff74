"""Typed reading of a composed YAML tree, collecting a ``Problem`` (line, column) per mistake.

Why ``yaml.compose`` and not ``safe_load``: loaded values have forgotten where they came from;
composed nodes carry marks, so "unknown key 'fuction'" can point at line 12, column 9. Every
reader returns None on a mistake after recording it, so one pass reports every problem of a file.
Shared by the rule format (``files.py``) and the rule test format (``testing.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from infragent.rules.errors import Problem, RuleFileError, RuleSyntaxError
from infragent.rules.syntax import parse_duration

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_JSON_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


def kind_of(node: Node) -> str:
    """A short name of the node's type for messages ("a mapping", "a number" …)."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "a string",
        _NULL: "null",
        _BOOL: "a boolean",
        _INT: "a number",
        _FLOAT: "a number",
    }.get(node.tag, "a value")


class Reader:
    """Problems of one source, and typed accessors over its nodes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    # -- recording ---------------------------------------------------------------------------
    def problem(self, node: Node | None, message: str, offset: int = 0) -> None:
        """Record a mistake at ``node`` (``offset`` characters into a one-line scalar)."""
        if node is None:
            self.problems.append(Problem(1, 1, message, self.source))
            return
        mark = node.start_mark
        self.problems.append(Problem(mark.line + 1, mark.column + 1 + offset, message, self.source))

    def raise_if_any(self) -> None:
        if self.problems:
            raise RuleFileError(self.problems)

    # -- the document ------------------------------------------------------------------------
    def compose(self, text: str) -> Node | None:
        """The root node of ``text``; a YAML syntax error is recorded at its mark."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            self.problems.append(Problem(line, col, f"not valid YAML: {exc.problem or exc}", self.source))
            return None
        except yaml.YAMLError as exc:
            self.problems.append(Problem(1, 1, f"not valid YAML: {exc}", self.source))
            return None
        if root is None:
            self.problems.append(Problem(1, 1, "the document is empty", self.source))
        return root

    # -- structure ---------------------------------------------------------------------------
    def mapping(self, node: Node, what: str) -> dict[str, tuple[ScalarNode, Node]] | None:
        """Key → (key node, value node); duplicate and non-string keys are problems."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping, not {kind_of(node)}")
            return None
        out: dict[str, tuple[ScalarNode, Node]] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag not in (_STR, _INT, _BOOL, _NULL, _FLOAT):
                self.problem(key, f"keys of {what} must be strings")
                continue
            name = str(key.value)
            if name in out:
                self.problem(key, f"duplicate key {name!r} in {what}")
                continue
            out[name] = (key, value)
        return out

    def keys(
        self,
        items: dict[str, tuple[ScalarNode, Node]],
        node: Node,
        what: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> None:
        """Unknown keys (naming the allowed ones) and missing required keys are problems."""
        allowed = list(allowed)
        for name, (key, _) in items.items():
            if name not in allowed:
                self.problem(key, f"unknown key {name!r} in {what}; allowed: {', '.join(allowed)}")
        for name in required:
            if name not in items:
                self.problem(node, f"{what} is missing the required key {name!r}")

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, f"{what} must be a list, not {kind_of(node)}")
            return None
        return list(node.value)

    # -- scalars -----------------------------------------------------------------------------
    def string(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            self.problem(node, f"{what} must be a string, not {kind_of(node)}")
            return None
        if not allow_empty and not node.value.strip():
            self.problem(node, f"{what} must not be empty")
            return None
        return str(node.value)

    def text(self, node: Node, what: str) -> str | None:
        """A scalar of any type as the string YAML would print (``500`` → "500", ``true`` → "true")."""
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.problem(node, f"{what} must be a string or number, not {kind_of(node)}")
            return None
        if node.tag == _BOOL:
            return "true" if SafeConstructor().construct_object(node) else "false"
        return str(node.value)

    def number(self, node: Node, what: str) -> float | None:
        """A YAML int or float, or a plain scalar in JSON's number syntax (``1e-05``: JSON is
        YAML, but YAML 1.1 reads an exponent without a dot as a string)."""
        plain = isinstance(node, ScalarNode) and node.tag == _STR and node.style is None
        if plain and _JSON_NUMBER.fullmatch(node.value):
            return float(node.value)
        if not isinstance(node, ScalarNode) or node.tag not in (_INT, _FLOAT):
            self.problem(node, f"{what} must be a number, not {kind_of(node)}")
            return None
        value = float(SafeConstructor().construct_object(node))
        if math.isnan(value):
            self.problem(node, f"{what} must not be NaN")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.problem(node, f"{what} must be true or false, not {kind_of(node)}")
            return None
        return bool(SafeConstructor().construct_object(node))

    def duration(self, node: Node, what: str) -> float | None:
        """A Prometheus duration string or a non-negative number of seconds."""
        if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT):
            value = self.number(node, what)
            if value is not None and value < 0:
                self.problem(node, f"{what} must not be negative")
                return None
            return value
        raw = self.string(node, what)
        if raw is None:
            return None
        try:
            return parse_duration(raw)
        except RuleSyntaxError as exc:
            self.problem(node, f"{what}: {exc.message}", offset=self.offset_in(node, exc.offset))
            return None

    def offset_in(self, node: Node, offset: int) -> int:
        """Columns from the node's mark to character ``offset`` of its value: the quote of a
        quoted scalar counts; a block scalar or a multi-line value is pointed at its start."""
        if not isinstance(node, ScalarNode) or "\n" in node.value or node.style in ("|", ">"):
            return 0
        return offset + (1 if node.style in ("'", '"') else 0)

    def plain(self, node: Node) -> object:
        """The node as PyYAML would load it (event data in a test file keeps its types)."""
        return SafeConstructor().construct_object(node, deep=True)

    def string_map(self, node: Node, what: str) -> dict[str, str] | None:
        """A mapping of strings to scalars (numbers and booleans are read as their text)."""
        items = self.mapping(node, what)
        if items is None:
            return None
        out: dict[str, str] = {}
        for name, (_, value) in items.items():
            got = self.text(value, f"{what}.{name}")
            if got is not None:
                out[name] = got
        return out
