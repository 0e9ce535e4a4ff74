"""Envelope parsing and construction rules of the LLM adapters, as data: no server needed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infragent.errors import LlmError
from infragent.responder.llm import DEFAULT_BASE_URLS, build_llm_client, gemini, openai


def gemini_body(parts: list[Any], finish: Any = "STOP") -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}]}


def openai_body(content: Any, finish: Any = "stop", refusal: Any = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (gemini_body([{"text": '{"a": 1}'}]), '{"a": 1}'),
        (gemini_body([{"text": '{"a": '}, {"text": "1}"}]), '{"a": 1}'),
        (gemini_body([{"text": "thinking…", "thought": True}, {"text": "{}"}]), "{}"),
    ],
    ids=["one-part", "split-parts", "thought-skipped"],
)
def test_gemini_answer_text(body: Any, text: str) -> None:
    assert gemini.answer_text(body) == text


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, "prompt blocked (PROHIBITED_CONTENT)"),
        ({"candidates": []}, "no candidates"),
        ({"candidates": ["x"]}, "not a list of objects"),
        (gemini_body([{"text": "{}"}], finish="MAX_TOKENS"), "finishReason='MAX_TOKENS'"),
        (gemini_body([{"text": "{}"}], finish="RECITATION"), "finishReason='RECITATION'"),
        (gemini_body([{"text": "{}"}], finish=None), "finishReason=None"),
        ({"candidates": [{"finishReason": "STOP"}]}, "no content.parts"),
        (gemini_body([{"inlineData": {}}]), "no answer text"),
        (gemini_body([{"text": "  \n"}]), "no answer text"),
        (gemini_body([{"text": "{}", "thought": True}]), "no answer text"),
        ([gemini_body([{"text": "{}"}])], "not a JSON object"),
    ],
)
def test_gemini_envelope_errors(body: Any, error: str) -> None:
    with pytest.raises(LlmError, match=re.escape(error)):
        gemini.answer_text(body)


def test_openai_answer_text() -> None:
    assert openai.answer_text(openai_body('{"a": 1}')) == '{"a": 1}'


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (openai_body(None, refusal="No."), "model refused: No."),
        (openai_body(None), "no text content"),
        (openai_body('{"a": ', finish="length"), "finish_reason='length'"),
        (openai_body("{}", finish="content_filter"), "finish_reason='content_filter'"),
        (openai_body("{}", finish=None), "finish_reason=None"),
        (openai_body(""), "empty"),
        ({"object": "chat.completion"}, "no choices"),
        ({"choices": []}, "no choices"),
        ({"choices": [{"finish_reason": "stop"}]}, "no message object"),
        ("{}", "not a JSON object"),
    ],
)
def test_openai_envelope_errors(body: Any, error: str) -> None:
    with pytest.raises(LlmError, match=error):
        openai.answer_text(body)


def test_unknown_provider_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"'anthropic'.*gemini, openai"):
        build_llm_client("anthropic", base_url=None, model="m", api_key=None, timeout_s=1.0)


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_default_base_url_and_key_kept_out_of_repr(provider: str) -> None:
    client = build_llm_client(provider, base_url=None, model="m", api_key="sk-secret-value", timeout_s=1.0)
    assert DEFAULT_BASE_URLS[provider] in repr(client)
    assert "sk-secret-value" not in repr(client)


@pytest.mark.parametrize("base_url", ["ftp://example.com/v1", "example.com/v1", "http://"])
def test_a_bad_base_url_is_rejected_at_construction(base_url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        build_llm_client("openai", base_url=base_url, model="m", api_key=None, timeout_s=1.0)


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("nan")])
def test_a_non_positive_timeout_is_rejected(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        build_llm_client("gemini", base_url=None, model="m", api_key=None, timeout_s=timeout_s)


def test_gemini_accepts_the_models_prefix_and_rejects_paths() -> None:
    client = build_llm_client(
        "gemini", base_url=None, model="models/gemini-2.5-pro", api_key=None, timeout_s=1
    )
    assert client.model == "gemini-2.5-pro"
    with pytest.raises(ValueError, match="model"):
        build_llm_client("gemini", base_url=None, model="../admin", api_key=None, timeout_s=1.0)
