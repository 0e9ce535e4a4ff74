"""The eval suite: every case of tests/evals/cases through the real path, against the rule-based brain.

Run: ``pytest tests/evals`` (``-s`` shows the score). A case fails with what was decided and why;
the score line counts the cases passed and the decisions by kind.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from infragent.responder.llm.gemini import GeminiClient
from infragent.responder.llm.openai import OpenAIClient
from support.llm_evals import Case, Outcome, load_cases, run_case
from support.llm_standin import LlmStandIn

pytestmark = pytest.mark.evals

CASES = load_cases(Path(__file__).parent / "cases")
RESULTS: dict[str, Outcome] = {}


def test_the_suite_has_enough_cases_with_unique_names() -> None:
    names = [c.name for c in CASES]
    assert len(names) >= 30 and len(set(names)) == len(names)
    assert {c.vendor for c in CASES} == {"openai", "gemini"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, llm: LlmStandIn, clients: dict[str, OpenAIClient | GeminiClient]) -> None:
    before = len(llm.requests)
    outcome = run_case(case, clients[case.vendor])
    RESULTS[case.name] = outcome
    [request] = llm.requests[before:]
    assert request.vendor == case.vendor
    assert request.user == outcome.context.user and request.system == outcome.context.system
    leaked = [s for s in case.secrets if s.encode() in request.raw]
    assert not leaked, f"{case.name}: the vendor received {leaked}"
    assert outcome.context.size <= 16_000
    assert outcome.passed, f"{case.name} ({case.why}): " + "; ".join(outcome.problems)


def test_score(capsys: pytest.CaptureFixture[str]) -> None:
    """Printed last: the share of cases passed, decisions and verdicts by kind."""
    if len(RESULTS) < len(CASES):
        pytest.skip("the score needs every case run (run the whole module)")
    passed = sum(o.passed for o in RESULTS.values())
    actions = Counter(o.decision.action for o in RESULTS.values())
    verdicts = Counter(o.verdict.kind for o in RESULTS.values())
    with capsys.disabled():
        print(
            f"\nLLM evals: {passed}/{len(RESULTS)} cases acceptable ({100 * passed / len(RESULTS):.0f}%); "
            f"decisions {dict(sorted(actions.items()))}; verdicts {dict(sorted(verdicts.items()))}"
        )
    assert passed == len(RESULTS)


def test_a_wrong_answer_fails_its_case(
    llm: LlmStandIn, clients: dict[str, OpenAIClient | GeminiClient]
) -> None:
    """The harness is not vacuous: a restart where the case wants an escalation is reported."""
    case = next(c for c in CASES if c.name == "restart-failed-twice-escalates")
    llm.script('{"action": "restart", "target": "web", "params": {"service": "web"}, "rationale": "again"}')
    outcome = run_case(case, clients["openai"])
    assert not outcome.passed and "not acceptable" in outcome.problems[0]
