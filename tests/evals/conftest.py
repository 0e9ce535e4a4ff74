"""One LLM stand-in per module (not per case), its "model" the rule-based brain, and the two clients.

Why per module: the suites run hundreds of round trips; a server per case would cost more than they do.
Each suite resets what it reads (the brain's temperament, the recorded requests) per case.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.responder.llm.gemini import GeminiClient
from infragent.responder.llm.openai import OpenAIClient
from support.llm_brain import Brain
from support.llm_standin import LlmStandIn

API_KEY = "eval-key"


@pytest.fixture(scope="module")
def brain() -> Brain:
    return Brain()


@pytest.fixture(scope="module")
def llm(brain: Brain) -> Iterator[LlmStandIn]:
    with LlmStandIn(api_key=API_KEY, rules=brain) as standin:
        yield standin


@pytest.fixture(scope="module")
def clients(llm: LlmStandIn) -> dict[str, OpenAIClient | GeminiClient]:
    """The real adapters, pointed at the stand-in."""
    return {
        "openai": OpenAIClient(
            base_url=llm.openai_base_url, model="eval-model", api_key=API_KEY, timeout_s=10
        ),
        "gemini": GeminiClient(
            base_url=llm.gemini_base_url, model="eval-model", api_key=API_KEY, timeout_s=10
        ),
    }
