"""The LLM client of a build or a command: the configured endpoint(s), or the embedded model served for the duration.

It lives in the LLM package, not in the pipeline, because stages (classifier round 2), the instruction-data build and
the ``classify`` command open one too, and none of them should import the pipeline to do it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from mathcode_pile.llm.cache import RequestCache
from mathcode_pile.llm.client import LLMClient, LLMConfig


@contextlib.contextmanager
def open_llm(llm_config: LLMConfig, work_dir: Path, needed: bool) -> Iterator[LLMClient | None]:
    """An LLM client with its request cache (``llm_cache_path`` or ``work_dir/llm_cache.sqlite``), or None when no
    step needs one; without ``llm_endpoint`` the embedded model is served by a local llama.cpp server meanwhile."""
    if not needed:
        yield None
        return
    cache = RequestCache(llm_config.llm_cache_path or work_dir / "llm_cache.sqlite")
    clients: list[LLMClient] = []
    try:
        if llm_config.llm_endpoint:
            clients.append(LLMClient(llm_config, cache))
            yield clients[0]
            return
        from mathcode_pile.llm.embedded import EMBEDDED_GGUF_NAME
        from mathcode_pile.llm.local_server import LocalLlamaServer

        with LocalLlamaServer(log_path=work_dir / "llama_server.log") as server:
            model = llm_config.llm_model if llm_config.llm_model != "tgi" else EMBEDDED_GGUF_NAME
            clients.append(LLMClient(dataclasses.replace(llm_config, llm_endpoint=server.url, llm_model=model), cache))
            yield clients[0]
    finally:
        for client in clients:
            client.close()
        cache.close()
