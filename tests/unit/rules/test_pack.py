"""The default rule pack: it parses, its tests pass, every rule is documented, and every rule reads
series the agent really sends (a real collection on this host, not a list written by hand)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infragent import wire
from infragent.agent.runtime import Agent
from infragent.agent.settings import load_settings
from infragent.agent.spool import Spool
from infragent.rules import pack
from infragent.rules.errors import RuleFileError
from infragent.rules.files import parse_rule_file
from infragent.rules.model import Rule
from infragent.rules.testing import run_test_file

ROOT = Path(__file__).resolve().parents[3]
PACK_DIR = ROOT / "src" / "infragent" / "rules"
EXPECTED = {
    "HostSilent",
    "HighCpu",
    "HighMemory",
    "FilesystemAlmostFull",
    "FilesystemFullIn4h",
    "HighLoadPerCore",
    "AgentSpoolFull",
    "AgentCannotReachServer",
    "UptimeReset",
}


def _rules() -> list[Rule]:
    return [r for g in pack.default_pack() for r in g.rules]


def test_the_pack_has_the_rules_the_docs_promise() -> None:
    rules = _rules()
    assert {r.name for r in rules} == EXPECTED and len(rules) == len(EXPECTED)
    doc = (ROOT / "docs" / "rules-default-pack.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### (\w+) \(", doc, flags=re.MULTILINE))
    assert documented == EXPECTED
    by_kind = {r.name: r.kind for r in rules}
    assert (by_kind["HostSilent"], by_kind["UptimeReset"], by_kind["FilesystemFullIn4h"]) == (
        "absence",
        "reset",
        "forecast",
    )
    assert next(r for r in rules if r.name == "UptimeReset").keep_firing_for_s == 600


def test_default_pack_is_read_through_importlib_resources_and_cached() -> None:
    assert pack.pack_text() == (PACK_DIR / pack.PACK_FILE).read_text(encoding="utf-8")
    assert pack.default_pack() == parse_rule_file(pack.pack_text(), pack.PACK_SOURCE)
    first = pack.default_pack()
    first.clear()  # a caller's list is its own: the cache is not changed
    assert len(pack.default_pack()) == 3


def test_the_pack_tests_pass() -> None:
    report = run_test_file(PACK_DIR / "default_pack_test.yaml")
    failed = [f"{r.name}\n{r.diff}" for r in report.results if not r.passed]
    assert failed == [] and len(report.results) >= len(EXPECTED)
    tested = {name for r in report.results for name in EXPECTED if name in r.name}
    assert tested == EXPECTED  # each rule has at least one test named after it


@pytest.fixture
def collected(tmp_path: Path) -> Iterator[dict[str, list[dict[str, str]]]]:
    """One real tick of the agent on this host, after one send: series name → label sets."""
    settings = load_settings(
        {
            "INFRAGENT_SERVER_URL": "http://127.0.0.1:9",
            "INFRAGENT_API_KEY": "ia_test",
            "INFRAGENT_AGENT_DATA_DIR": str(tmp_path / "agent"),
            "NODE_ID": "pack-host",
        }
    )
    agent = Agent(settings)
    agent.spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 16)
    agent.link.failed("not started")  # what the gauge reports after a failed send
    try:
        agent.host.prime()
        deadline = time.monotonic() + 10
        while True:  # CPU utilization needs CPU time to have passed since the prime
            assert agent.tick(time.time()) > 0
            record = agent.spool.peek(1000)[-1]
            batch = wire.decode_batch(record.payload, content_encoding="gzip", max_decompressed=1 << 24)
            if any(s.name == "system.cpu.utilization" for s in batch.series):
                break
            assert time.monotonic() < deadline, "no CPU utilization collected"
            time.sleep(0.05)
    finally:
        agent.spool.close()
    found: dict[str, list[dict[str, str]]] = {}
    for s in batch.series:
        found.setdefault(s.name, []).append({**s.attributes, "host": batch.node_id})
    yield found


def test_every_pack_rule_reads_series_the_agent_sends(collected: dict[str, list[dict[str, str]]]) -> None:
    unmatched = []
    for rule in _rules():
        selector = rule.selector
        if selector is None:  # HostSilent: anything from the host
            continue
        assert selector.metric in collected, (rule.name, selector.metric)
        labels = {m.label for m in selector.matchers} | set(rule.by)
        assert all(label in series for series in collected[selector.metric] for label in labels), (
            rule.name,
            labels,
        )
        if not any(selector.matches(selector.metric, s) for s in collected[selector.metric]):
            unmatched.append(rule.name)
    # a host without a writable filesystem the agent reports (a read-only container) is possible
    assert set(unmatched) <= {"FilesystemAlmostFull", "FilesystemFullIn4h"}, unmatched


ONE = """\
groups:
  - name: g
    rules:
      - alert: {name}
        kind: absence
        silent: 5m
"""


def test_read_rule_files_gathers_every_files_problems(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ONE.format(name="Quiet"))
    (tmp_path / "b.yaml").write_text(ONE.format(name="Loud"))
    groups = pack.read_rule_files([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert [r.name for g in groups for r in g.rules] == ["Quiet", "Loud"]

    (tmp_path / "dup.yaml").write_text(ONE.format(name="Quiet"))
    (tmp_path / "bad.yaml").write_text(ONE.format(name="Bad").replace("5m", "-5m"))
    paths = [tmp_path / n for n in ("a.yaml", "dup.yaml", "bad.yaml", "gone.yaml")]
    with pytest.raises(RuleFileError) as refused:
        pack.read_rule_files(paths)
    found = {(Path(p.source).name, p.line, p.column) for p in refused.value.problems}
    assert found == {("dup.yaml", 1, 1), ("bad.yaml", 6, 17), ("gone.yaml", 1, 1)}
    text = str(refused.value)
    assert f"already defined in {tmp_path / 'a.yaml'}" in text and "cannot read" in text
