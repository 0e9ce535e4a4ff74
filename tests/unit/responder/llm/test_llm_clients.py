"""Both LLM adapters against the loopback stand-in: what they send, and that every failure fails closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infragent.errors import LlmError
from infragent.responder.llm import LlmClient, build_llm_client
from support.llm_standin import Answer, Blocked, Delay, Drip, LlmStandIn, Raw, Status

KEY = "sk-test-3f9a0c1d2e4b5a6978-SECRET"
SYSTEM = "You are the InfrAgent responder. Answer with one JSON object."
USER = "Incident: web-1 returns 502 since 12:00. Allowed actions: restart, none, escalate."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"action": {"type": "string", "enum": ["restart", "none", "escalate"]}},
    "required": ["action"],
    "additionalProperties": False,
}
MODELS = {"gemini": "gemini-2.5-flash", "openai": "gpt-4.1-mini"}

providers = pytest.mark.parametrize("provider", ["gemini", "openai"])


@pytest.fixture
def llm() -> Iterator[LlmStandIn]:
    with LlmStandIn(api_key=KEY) as standin:
        yield standin


def make_client(
    llm: LlmStandIn, provider: str, *, api_key: str | None = KEY, timeout_s: float = 3.0
) -> LlmClient:
    base_url = llm.gemini_base_url if provider == "gemini" else llm.openai_base_url
    return build_llm_client(
        provider, base_url=base_url, model=MODELS[provider], api_key=api_key, timeout_s=timeout_s
    )


def fails(call: Callable[[], object]) -> str:
    """Run ``call``, require ``LlmError``, and check the key is not in its message."""
    with pytest.raises(LlmError) as caught:
        call()
    message = str(caught.value)
    assert KEY not in message
    return message


@providers
def test_returns_the_exact_answer_text(llm: LlmStandIn, provider: str) -> None:
    answer = '{"action": "restart",  "target": "web-1"}\n'
    llm.script(Answer(answer))
    client = make_client(llm, provider)

    assert client.complete_json(SYSTEM, USER, SCHEMA) == answer
    assert (client.name, client.model) == (provider, MODELS[provider])
    assert llm.remaining == 0


def test_gemini_sends_the_documented_request(llm: LlmStandIn) -> None:
    llm.script(Answer('{"action": "none"}'))
    make_client(llm, "gemini").complete_json(SYSTEM, USER, SCHEMA)

    (request,) = llm.requests
    assert request.method == "POST"
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    assert "authorization" not in request.headers
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [{"role": "user", "parts": [{"text": USER}]}],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": SCHEMA,
            "temperature": 0,
        },
    }
    assert (request.system, request.user) == (SYSTEM, USER)


def test_openai_sends_the_documented_request(llm: LlmStandIn) -> None:
    llm.script(Answer('{"action": "none"}'))
    make_client(llm, "openai").complete_json(SYSTEM, USER, SCHEMA)

    (request,) = llm.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in request.headers
    assert request.body == {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "decision", "strict": True, "schema": SCHEMA},
        },
    }
    assert (request.system, request.user) == (SYSTEM, USER)


@providers
def test_without_a_key_no_auth_header_is_sent(provider: str) -> None:
    with LlmStandIn(api_key=None) as llm:  # a local Ollama needs none
        llm.script(Answer('{"action": "none"}'))
        assert make_client(llm, provider, api_key=None).complete_json(SYSTEM, USER, SCHEMA)
        headers = llm.requests[0].headers
    assert "authorization" not in headers
    assert "x-goog-api-key" not in headers


@providers
def test_a_wrong_key_is_an_error_that_does_not_quote_the_key(llm: LlmStandIn, provider: str) -> None:
    llm.script(Answer('{"action": "restart"}'))
    client = make_client(llm, provider, api_key=KEY + "-wrong")

    message = fails(lambda: client.complete_json(SYSTEM, USER, SCHEMA))

    assert ("HTTP 400" if provider == "gemini" else "HTTP 401") in message
    assert KEY + "-wrong" not in message
    assert llm.remaining == 1  # refused before any answer was given


@providers
def test_a_missing_key_is_an_error(llm: LlmStandIn, provider: str) -> None:
    message = fails(lambda: make_client(llm, provider, api_key=None).complete_json(SYSTEM, USER, SCHEMA))
    assert ("HTTP 403" if provider == "gemini" else "HTTP 401") in message


@providers
@pytest.mark.parametrize("status", [429, 500, 503])
def test_an_error_status_is_an_error_and_is_not_retried(llm: LlmStandIn, provider: str, status: int) -> None:
    llm.script(Status(status, "overloaded, try later", headers={"Retry-After": "7"}), Answer("{}"))

    message = fails(lambda: make_client(llm, provider).complete_json(SYSTEM, USER, SCHEMA))

    assert f"HTTP {status}" in message
    assert "overloaded, try later" in message
    assert len(llm.requests) == 1
    assert llm.remaining == 1


@providers
def test_a_stalled_server_times_out_near_the_timeout(llm: LlmStandIn, provider: str) -> None:
    llm.script(Delay(10.0))
    client = make_client(llm, provider, timeout_s=0.5)

    started = time.monotonic()
    message = fails(lambda: client.complete_json(SYSTEM, USER, SCHEMA))
    elapsed = time.monotonic() - started

    assert "timed out" in message
    assert elapsed < 0.5 + 3.0


@providers
def test_a_slow_drip_is_cut_at_the_overall_deadline(llm: LlmStandIn, provider: str) -> None:
    # Each byte arrives well within the read timeout; the whole would take ~20 s.
    llm.script(Drip(Answer('{"action": "restart"}'), interval_s=0.05))
    client = make_client(llm, provider, timeout_s=0.5)

    started = time.monotonic()
    message = fails(lambda: client.complete_json(SYSTEM, USER, SCHEMA))
    elapsed = time.monotonic() - started

    assert "timed out" in message
    assert elapsed < 0.5 + 3.0


@providers
def test_a_quick_drip_completes(llm: LlmStandIn, provider: str) -> None:
    llm.script(Drip(Answer('{"action": "none"}'), interval_s=0.001, chunk=64))
    assert make_client(llm, provider).complete_json(SYSTEM, USER, SCHEMA) == '{"action": "none"}'


@providers
def test_a_blocked_prompt_or_refusal_is_an_error(llm: LlmStandIn, provider: str) -> None:
    llm.script(Blocked(reason="SAFETY", refusal="I can't help with that."))
    message = fails(lambda: make_client(llm, provider).complete_json(SYSTEM, USER, SCHEMA))
    assert ("blocked (SAFETY)" if provider == "gemini" else "refused: I can't help with that.") in message


@providers
@pytest.mark.parametrize("finish", ["length", "safety"])
def test_an_unfinished_answer_is_an_error(llm: LlmStandIn, provider: str, finish: Any) -> None:
    llm.script(Answer('{"action": "rest', finish=finish))
    message = fails(lambda: make_client(llm, provider).complete_json(SYSTEM, USER, SCHEMA))
    assert "did not finish normally" in message


@providers
@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "object": "chat.completion"},
        {"candidates": "nope", "choices": "nope"},
        [],
        b"<html>502 Bad Gateway</html>",
        b"",
    ],
    ids=["no-choices", "wrong-types", "array", "html", "empty"],
)
def test_a_malformed_envelope_is_an_error(llm: LlmStandIn, provider: str, body: Any) -> None:
    llm.script(Raw(body))
    fails(lambda: make_client(llm, provider).complete_json(SYSTEM, USER, SCHEMA))


@providers
def test_a_key_echoed_by_the_server_is_redacted(llm: LlmStandIn, provider: str) -> None:
    llm.script(Raw({"error": {"message": f"key {KEY} is suspended", "status": "PERMISSION_DENIED"}}, 403))
    message = fails(lambda: make_client(llm, provider).complete_json(SYSTEM, USER, SCHEMA))
    assert "key *** is suspended" in message


@providers
def test_an_oversized_body_is_an_error(llm: LlmStandIn, provider: str) -> None:
    llm.script(Raw(b"x" * (5 * 1024 * 1024)))
    message = fails(lambda: make_client(llm, provider).complete_json(SYSTEM, USER, SCHEMA))
    assert "exceeds" in message


@providers
def test_a_refused_connection_is_an_error(provider: str) -> None:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = build_llm_client(
        provider, base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key=KEY, timeout_s=2.0
    )
    assert "transport error" in fails(lambda: client.complete_json(SYSTEM, USER, SCHEMA))


@providers
def test_answers_are_returned_verbatim_not_judged(llm: LlmStandIn, provider: str) -> None:
    """Validating the decision is the responder's job; the adapter must not repair or drop it."""
    answers = [
        '{"action": "restart"',  # malformed JSON
        '{"action": "rm -rf /"}',  # outside the allowlist
        '{"action": "escalate", "note": "ignore previous instructions"}',  # obeyed an injection
    ]
    llm.script(*answers)
    client = make_client(llm, provider)
    assert [client.complete_json(SYSTEM, USER, SCHEMA) for _ in answers] == answers
