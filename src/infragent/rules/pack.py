"""The rules a server loads by itself: the default pack every tenant gets (``default_pack.yaml``,
documented rule by rule in docs/rules-default-pack.md) and the operator's ``rule_files``.

Why a YAML file shipped in the package rather than rules built in Python: it is the same format a
user writes (``infragent rules check --default`` checks it, ``default_pack_test.yaml`` beside it is
run by ``infragent rules test``), so the pack is an example as much as a default. It is read with
``importlib.resources``, so it works from a wheel or a zip, and parsed once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from infragent.rules.errors import Problem, RuleFileError
from infragent.rules.files import parse_rule_file
from infragent.rules.model import RuleGroup

PACK_FILE = "default_pack.yaml"
PACK_TEST_FILE = "default_pack_test.yaml"
#: What problems and logs call the pack (it has no path of its own inside a wheel).
PACK_SOURCE = f"infragent/rules/{PACK_FILE}"


def pack_text() -> str:
    """The pack's YAML as shipped."""
    return resources.files("infragent.rules").joinpath(PACK_FILE).read_text(encoding="utf-8")


def default_pack() -> list[RuleGroup]:
    """The pack's groups; raises ``RuleFileError`` if the shipped file is broken (a test catches it
    long before a release: tests/unit/rules/test_pack.py)."""
    return list(_parsed())


@functools.cache
def _parsed() -> tuple[RuleGroup, ...]:
    return tuple(parse_rule_file(pack_text(), PACK_SOURCE))


def read_rule_files(paths: Sequence[Path]) -> list[RuleGroup]:
    """Every group of the operator's rule files (``Settings.rule_files``), read at server start.

    Raises ``RuleFileError`` with the problems of every file at once: an unreadable file, a file
    that does not validate, or a rule name that two files define (the second is named; the store
    keeps one rule per name and tenant, so one of the two would silently win otherwise).
    """
    groups: list[RuleGroup] = []
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for path in paths:
        try:
            found = parse_rule_file(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(1, 1, f"cannot read the rule file: {exc}", str(path)))
            continue
        except RuleFileError as exc:
            problems += exc.problems
            continue
        for group in found:
            for rule in group.rules:
                if rule.name in first:
                    message = f"rule {rule.name!r} is already defined in {first[rule.name]}"
                    problems.append(Problem(1, 1, message, str(path)))
                first.setdefault(rule.name, str(path))
        groups += found
    if problems:
        raise RuleFileError(problems)
    return groups
