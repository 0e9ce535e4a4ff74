"""The default rule pack every tenant gets (``default_pack.yaml``, documented rule by rule in
docs/rules-default-pack.md).

Why a YAML file shipped in the package rather than rules built in Python: it is the same format a
user writes (``infragent rules check --default`` checks it, ``default_pack_test.yaml`` beside it is
run by ``infragent rules test``), so the pack is an example as much as a default. It is read with
``importlib.resources``, so it works from a wheel or a zip, and parsed once per process.
"""

from __future__ import annotations

import functools
from importlib import resources

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
