"""OpenAI-compatible adapter: ``POST {base}/chat/completions`` with a ``json_schema`` response format.

Why one adapter for OpenAI, Ollama, vLLM and llama.cpp: they all serve this wire format, so a
self-hosted model needs only a ``base_url`` and no key. The ``Authorization`` header is omitted
when there is no key rather than sent empty, which some proxies reject.
"""

from __future__ import annotations

from typing import Any

from infragent.errors import LlmError
from infragent.responder.llm.base import (
    DEFAULT_BASE_URLS,
    check_base_url,
    check_timeout,
    post_json,
    quote,
    redact,
)

#: ``response_format.json_schema.name``: the vendor requires one; it shows up in its logs only.
SCHEMA_NAME = "decision"


class OpenAIClient:
    """Ask an OpenAI-compatible model for one schema-constrained JSON answer (see ``LlmClient``)."""

    def __init__(self, *, base_url: str | None, model: str, api_key: str | None, timeout_s: float) -> None:
        if not model.strip():
            raise ValueError("OpenAI model name must not be empty")
        self.name = "openai"
        self.model = model
        self._base_url = check_base_url(base_url or DEFAULT_BASE_URLS["openai"])
        self._api_key = api_key
        self._timeout_s = check_timeout(timeout_s)
        self._url = f"{self._base_url}/chat/completions"

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIClient(model={self.model!r}, base_url={self._base_url!r})"

    def complete_json(self, system: str, user: str, schema: dict[str, Any]) -> str:
        payload = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema},
            },
        }
        headers = {"authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            body = post_json(self.name, self._url, payload, headers=headers, timeout_s=self._timeout_s)
            return answer_text(body)
        except LlmError as exc:
            message = redact(str(exc), self._api_key)
            if message != str(exc):
                raise LlmError(message) from None
            raise


def answer_text(body: Any) -> str:
    """The content of the first choice of a ``chat.completion``, or ``LlmError``.

    Fails closed on a refusal, a null content, a choice that stopped for any reason but ``stop``
    (``length`` means truncated JSON, ``content_filter`` means no real answer, ``tool_calls`` is
    not what was asked), and on any envelope that does not have the documented shape.
    """
    if not isinstance(body, dict):
        raise LlmError("openai: response is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LlmError("openai: response has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise LlmError("openai: choice has no message object")
    refusal = message.get("refusal")
    if refusal:
        raise LlmError(f"openai: model refused: {quote(str(refusal))}")
    finish = choice.get("finish_reason")
    if finish != "stop":
        raise LlmError(f"openai: answer did not finish normally (finish_reason={quote(repr(finish))})")
    content = message.get("content")
    if not isinstance(content, str):
        raise LlmError("openai: message has no text content")
    if not content.strip():
        raise LlmError("openai: answer is empty")
    return content
