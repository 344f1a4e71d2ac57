"""LLM stage: ask the model to list a document's computations with Python code (raw responses kept)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mathcode_pile.config import ValidatedConfig
from mathcode_pile.llm.client import LLMClient, LLMRequestError
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, register_stage
from mathcode_pile.translation.prompt import build_translation_messages


@dataclass
class TranslateConfig(ValidatedConfig):
    translate_max_new_tokens: int = field(default=512, metadata={"help": "Generation budget per document."})
    translate_temperature: float = field(default=0.0, metadata={"help": "0 = greedy (reproducible)."})
    translate_max_doc_chars: int = field(
        default=6000, metadata={"help": "Documents are cut to this many characters; the instruction never is."}
    )
    translate_seed: int = field(default=0, metadata={"help": "Sampling seed sent with each request."})


@register_stage
class TranslateStage(Stage):
    name = "translate"
    version = "1"
    config_class = TranslateConfig
    is_async = True
    batch_size = 8

    @property
    def client(self) -> LLMClient:
        if self.context.llm is None:
            raise RuntimeError("stage 'translate' needs an LLM endpoint (or the embedded server)")
        return self.context.llm

    def fingerprint_config(self) -> dict[str, Any]:
        # the model is part of what the output depends on; concurrency and retries are not
        return {**super().fingerprint_config(), "model": self.client.config.llm_model, "mode": self.client.config.llm_mode}

    async def _translate_one(self, text: str) -> tuple[str, str | None]:
        messages = build_translation_messages(text, self.config.translate_max_doc_chars)
        try:
            if self.client.config.llm_mode == "chat":
                response = await self.client.generate(
                    messages=messages,
                    max_new_tokens=self.config.translate_max_new_tokens,
                    temperature=self.config.translate_temperature,
                    seed=self.config.translate_seed,
                )
            else:
                response = await self.client.generate(
                    prompt=messages[0]["content"],
                    max_new_tokens=self.config.translate_max_new_tokens,
                    temperature=self.config.translate_temperature,
                    seed=self.config.translate_seed,
                )
        except LLMRequestError:
            return "", "llm_error"
        if not response.text.strip():
            return "", "empty_response"
        return response.text, None

    async def aprocess_batch(self, batch: Batch) -> Batch:
        results = await asyncio.gather(*(self._translate_one(text) for text in batch["text"]))
        return {
            **batch,
            "translation_response": [text for text, _ in results],
            DROP_COLUMN: [reason for _, reason in results],
        }

    def extra_counters(self) -> Counter[str]:
        return Counter({f"llm_{k}": v for k, v in self.client.counters.items()})
