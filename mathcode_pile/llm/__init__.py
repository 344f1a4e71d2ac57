"""LLM access: one async client (TGI native or OpenAI-compatible), its request cache, and the embedded local server."""

from mathcode_pile.llm.cache import RequestCache
from mathcode_pile.llm.client import LLMClient, LLMConfig, LLMRequestError

__all__ = ["LLMClient", "LLMConfig", "LLMRequestError", "RequestCache"]
