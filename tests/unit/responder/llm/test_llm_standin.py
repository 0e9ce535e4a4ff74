"""The LLM stand-in itself: it must refuse what the vendors refuse and fail loudly when over-used."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from infragent.errors import LlmError
from infragent.responder.llm import build_llm_client
from support.llm_standin import Answer, Delay, LlmStandIn, Status

GEMINI_PATH = "/v1beta/models/m:generateContent"
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
OPENAI_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers or {}, timeout=5.0)


def test_an_exhausted_script_answers_a_loud_500() -> None:
    with LlmStandIn(api_key=None) as llm:
        response = post(llm.base_url + "/v1/chat/completions", OPENAI_BODY)
    assert response.status_code == 500
    assert "script exhausted at request #1" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/chat/completions", {"model": "m"}, "Missing required parameter: 'messages'"),
        ("/v1/chat/completions", {"messages": OPENAI_BODY["messages"]}, "model parameter"),
        (
            "/v1/chat/completions",
            {**OPENAI_BODY, "response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
            "json_schema.name",
        ),
        (GEMINI_PATH, {"contents": []}, "contents is not specified"),
        (GEMINI_PATH, {**GEMINI_BODY, "system": "x"}, 'Unknown name "system"'),
        (
            GEMINI_PATH,
            {**GEMINI_BODY, "generationConfig": {"responseJsonSchema": {"type": "object"}}},
            "response_mime_type",
        ),
        (GEMINI_PATH, [], "not a JSON object"),
    ],
)
def test_a_malformed_request_gets_a_400_in_the_vendor_shape(path: str, body: Any, message: str) -> None:
    with LlmStandIn(api_key=None) as llm:
        llm.script(Answer("{}"))
        response = post(llm.base_url + path, body)
        assert llm.remaining == 1  # a refused request consumes nothing
        assert len(llm.requests) == 1  # but is recorded
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"]
    assert ("status" in error) == path.startswith("/v1beta")  # Gemini's google.rpc.Status shape


def test_auth_errors_follow_each_vendor() -> None:
    with LlmStandIn(api_key="right-key-0123456789") as llm:
        gemini_missing = post(llm.base_url + GEMINI_PATH, GEMINI_BODY)
        gemini_wrong = post(llm.base_url + GEMINI_PATH, GEMINI_BODY, {"x-goog-api-key": "wrong"})
        openai_wrong = post(
            llm.base_url + "/v1/chat/completions",
            OPENAI_BODY,
            {"authorization": "Bearer wrong-key-0123456789"},
        )
    assert (gemini_missing.status_code, gemini_missing.json()["error"]["status"]) == (
        403,
        "PERMISSION_DENIED",
    )
    assert (gemini_wrong.status_code, gemini_wrong.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert openai_wrong.status_code == 401
    assert openai_wrong.json()["error"]["code"] == "invalid_api_key"
    assert "wrong-key-0123456789" not in openai_wrong.text  # masked, as the vendor does


def test_rules_answer_once_the_script_is_used_up() -> None:
    def rules(system: str, user: str) -> str | Status:
        if "disk full" in user:
            return '{"action": "cleanup_tmp"}'
        return Status(503)

    with LlmStandIn(api_key="k", rules=rules) as llm:
        llm.script("scripted first")
        client = build_llm_client("openai", base_url=llm.openai_base_url, model="m", api_key="k", timeout_s=2)
        assert client.complete_json("sys", "disk full on /", {}) == "scripted first"
        assert client.complete_json("sys", "disk full on /", {}) == '{"action": "cleanup_tmp"}'
        with pytest.raises(LlmError, match="HTTP 503"):
            client.complete_json("sys", "cpu hot", {})


def test_a_delay_then_answers() -> None:
    with LlmStandIn(api_key="k") as llm:
        llm.script(Delay(0.1, then=Answer('{"late": true}')))
        client = build_llm_client("openai", base_url=llm.openai_base_url, model="m", api_key="k", timeout_s=2)
        started = time.monotonic()
        assert client.complete_json("s", "u", {}) == '{"late": true}'
    assert time.monotonic() - started >= 0.1


def test_closing_does_not_wait_for_a_delayed_answer() -> None:
    llm = LlmStandIn(api_key="k").start()
    llm.script(Delay(30.0))
    client = build_llm_client("gemini", base_url=llm.gemini_base_url, model="m", api_key="k", timeout_s=20)
    errors: list[LlmError] = []

    def call() -> None:
        try:
            client.complete_json("s", "u", {})
        except LlmError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5.0
    while not llm.requests and time.monotonic() < deadline:  # then the handler is waiting
        time.sleep(0.01)
    started = time.monotonic()
    llm.close()
    closing_took = time.monotonic() - started
    caller.join(5.0)

    assert closing_took < 2.0
    assert not caller.is_alive()
    assert len(errors) == 1  # the dropped connection is an error, not an answer
