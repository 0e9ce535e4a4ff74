"""LLM provider adapters for the responder: one thin client per wire format (Gemini, OpenAI-compatible)."""

from infragent.responder.llm.base import DEFAULT_BASE_URLS, PROVIDERS, LlmClient
from infragent.responder.llm.providers import build_llm_client

__all__ = ["DEFAULT_BASE_URLS", "PROVIDERS", "LlmClient", "build_llm_client"]
