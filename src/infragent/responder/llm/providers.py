"""Choosing the LLM adapter for a configured provider.

Why apart from ``base``: the adapters import ``base`` for the shared HTTP call, so the factory that
imports the adapters lives here, and no module imports one that imports it back.
"""

from __future__ import annotations

from infragent.responder.llm.base import PROVIDERS, LlmClient
from infragent.responder.llm.gemini import GeminiClient
from infragent.responder.llm.openai import OpenAIClient


def build_llm_client(
    provider: str, *, base_url: str | None, model: str, api_key: str | None, timeout_s: float
) -> LlmClient:
    """Build the adapter for ``provider`` ("gemini" or "openai"); ``base_url=None`` means the vendor's.

    "openai" covers every OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp).
    """
    if provider == "gemini":
        return GeminiClient(base_url=base_url, model=model, api_key=api_key, timeout_s=timeout_s)
    if provider == "openai":
        return OpenAIClient(base_url=base_url, model=model, api_key=api_key, timeout_s=timeout_s)
    raise ValueError(f"unknown LLM provider {provider!r}; allowed: {', '.join(PROVIDERS)}")
