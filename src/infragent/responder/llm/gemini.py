"""Gemini adapter: ``POST {base}/models/{model}:generateContent`` with a JSON-schema response.

Why ``responseJsonSchema`` (not the older ``responseSchema``): it takes standard JSON Schema, so the
responder can hand the same schema to every vendor. Why the key goes in ``x-goog-api-key`` and not
in ``?key=``: URLs end up in logs and tracebacks; headers do not.
"""

from __future__ import annotations

import urllib.parse
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


class GeminiClient:
    """Ask a Gemini model for one schema-constrained JSON answer (see ``LlmClient``)."""

    def __init__(self, *, base_url: str | None, model: str, api_key: str | None, timeout_s: float) -> None:
        model = model.removeprefix("models/")
        if not model or "/" in model or model != model.strip():
            raise ValueError(f"invalid Gemini model name {model!r}")
        self.name = "gemini"
        self.model = model
        self._base_url = check_base_url(base_url or DEFAULT_BASE_URLS["gemini"])
        self._api_key = api_key
        self._timeout_s = check_timeout(timeout_s)
        self._url = f"{self._base_url}/models/{urllib.parse.quote(model, safe='')}:generateContent"

    def __repr__(self) -> str:  # never shows the key
        return f"GeminiClient(model={self.model!r}, base_url={self._base_url!r})"

    def complete_json(self, system: str, user: str, schema: dict[str, Any]) -> str:
        payload = {
            "systemInstruction": {"parts": [{"text": system}]},
            "contents": [{"role": "user", "parts": [{"text": user}]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": schema,
                "temperature": 0,
            },
        }
        headers = {"x-goog-api-key": self._api_key} if self._api_key else {}
        try:
            body = post_json(self.name, self._url, payload, headers=headers, timeout_s=self._timeout_s)
            return answer_text(body)
        except LlmError as exc:
            message = redact(str(exc), self._api_key)
            if message != str(exc):
                raise LlmError(message) from None
            raise


def answer_text(body: Any) -> str:
    """The text of the first candidate of a ``GenerateContentResponse``, or ``LlmError``.

    Fails closed on a blocked prompt, a candidate that stopped for any reason but ``STOP``
    (``MAX_TOKENS`` means truncated JSON, ``SAFETY``/``RECITATION`` mean no real answer), and on
    any envelope that does not have the documented shape. Thought-summary parts are skipped: they
    are the model's reasoning, not its answer.
    """
    if not isinstance(body, dict):
        raise LlmError("gemini: response is not a JSON object")
    candidates = body.get("candidates")
    if not candidates:
        feedback = body.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            raise LlmError(f"gemini: prompt blocked ({quote(str(reason))})")
        raise LlmError("gemini: response has no candidates")
    if not isinstance(candidates, list) or not isinstance(candidates[0], dict):
        raise LlmError("gemini: response.candidates is not a list of objects")
    candidate = candidates[0]
    finish = candidate.get("finishReason")
    if finish != "STOP":
        raise LlmError(f"gemini: answer did not finish normally (finishReason={quote(repr(finish))})")
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise LlmError("gemini: candidate has no content.parts list")
    texts = [
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    ]
    text = "".join(texts)
    if not text.strip():
        raise LlmError("gemini: candidate has no answer text")
    return text
