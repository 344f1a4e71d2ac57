"""Stage ``translate``: ask the model to list a document's computations with Python code (raw responses kept).

One request per document, or per chunk of a long document (``translate_long_documents: chunk``); chunk answers are
joined in order. Every request goes through the shared :class:`~mathcode_pile.llm.client.LLMClient`, whose
persistent cache is keyed by model, prompt and generation parameters, so a rerun (after ``kill -9`` too) pays for no
request twice. A document with a request that failed for good (transient errors past the retry cap, or a
non-retryable error) is dropped as ``llm_error``, never kept with a chunk missing; its metadata records why
(``llm_error``: the HTTP status, a short excerpt of the response body, the error), in the stage's
``*.dropped.parquet``. The next run of the same command tries such documents again, its answered requests coming
from the cache. One with only blank answers is dropped as ``empty_response``. Per source it counts documents in and
documents with a response (``funnel/...`` counters), the first two steps of the translation funnel in the dataset
card.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from mathcode_pile.card import publish_stage_section
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.llm.client import LLMRequestError
from mathcode_pile.sources import SOURCE_KINDS, document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, LLMStage, StageContext, register_stage
from mathcode_pile.translation.prompt import build_translation_messages, document_passages, render_raw_prompt
from mathcode_pile.translation.report import FUNNEL, funnel_key

#: Joins the answers of a chunked document (the parser reads through it like any other text).
CHUNK_SEPARATOR = "\n\n"
#: Kinds of text MathCoder2 translates (code is already code).
TRANSLATED_KINDS = ("math_text", "web", "synthetic_math", "textbook")


@dataclass
class TranslateConfig(ValidatedConfig):
    translate_max_new_tokens: int = field(default=512, metadata={"help": "Generation budget per request."})
    translate_temperature: float = field(default=0.0, metadata={"help": "0 = greedy (reproducible)."})
    translate_max_doc_chars: int = field(
        default=6000,
        metadata={"help": "Characters of document per request; the document is cut, the instruction never is."},
    )
    translate_long_documents: Literal["truncate", "chunk"] = field(
        default="truncate",
        metadata={"help": "Longer documents: 'truncate' keeps the first piece; 'chunk' sends every piece (up to "
                  "translate_max_chunks), each with the full instruction."},
    )  # fmt: skip
    translate_max_chunks: int = field(default=8, metadata={"help": "Requests per document at most in 'chunk' mode."})
    translate_tokenizer: str | None = field(
        default=None,
        metadata={"help": "With llm_mode text_generation: tokenizer (local folder or Hub id) whose chat template "
                  "formats the raw prompt; empty sends the instruction as plain text (base models)."},
    )  # fmt: skip
    translate_seed: int = field(default=0, metadata={"help": "Sampling seed sent with each request."})
    translate_kinds: list[str] = field(
        default_factory=lambda: list(TRANSLATED_KINDS),
        metadata={"help": "Source kinds whose documents are translated; others pass through untouched (no request, "
                  "translation_response null)."},
    )  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.translate_max_new_tokens < 1 or self.translate_max_doc_chars < 1 or self.translate_max_chunks < 1:
            raise RecipeError(
                "translate_max_new_tokens, translate_max_doc_chars and translate_max_chunks must be >= 1"
            )
        unknown = sorted(set(self.translate_kinds) - set(SOURCE_KINDS))
        if unknown:
            raise RecipeError(f"translate_kinds: unknown kind(s) {unknown}; known kinds: {list(SOURCE_KINDS)}")


def _with_failure(raw_metadata: str | None, detail: dict) -> str:
    """A dropped document's metadata plus why its request failed (read back from the stage's dropped rows)."""
    return json.dumps({**document_metadata(raw_metadata), "llm_error": detail}, ensure_ascii=False)


@register_stage
class TranslateStage(LLMStage):
    name = "translate"
    provides = frozenset({"translation_response"})
    version = "3"
    config_class = TranslateConfig
    retry_drop_reasons = frozenset({"llm_error"})

    def __init__(self, config: TranslateConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self.funnel_counts: Counter[str] = Counter()
        publish_stage_section(self.name, FUNNEL.record)

    async def _request(self, passage: str) -> str:
        messages = build_translation_messages(passage)
        generation = {
            "max_new_tokens": self.config.translate_max_new_tokens,
            "temperature": self.config.translate_temperature,
            "seed": self.config.translate_seed,
        }
        if self.client.config.llm_mode == "chat":
            response = await self.client.generate(messages=messages, **generation)
        else:
            prompt = render_raw_prompt(messages, self.config.translate_tokenizer)
            response = await self.client.generate(prompt=prompt, **generation)
        return response.text

    async def _translate_one(self, text: str) -> tuple[str | None, str | None, dict | None]:
        """``(answer, drop reason, failure detail)``: the detail (status, body excerpt, error) for ``llm_error``."""
        passages = document_passages(
            text,
            self.config.translate_max_doc_chars,
            self.config.translate_long_documents,
            self.config.translate_max_chunks,
        )
        answers = await asyncio.gather(*(self._request(p) for p in passages), return_exceptions=True)
        failures = [a for a in answers if isinstance(a, BaseException)]
        for failure in failures:
            if not isinstance(failure, LLMRequestError):
                raise failure
        if failures:  # the answered chunks are cached: the retry on the next run pays only for the failed ones
            detail = getattr(failures[0], "detail", None)
            return "", "llm_error", detail.to_dict() if detail is not None else {"error": str(failures[0])}
        texts = [a for a in answers if isinstance(a, str) and a.strip()]
        if not texts:
            return "", "empty_response", None
        return CHUNK_SEPARATOR.join(texts), None, None

    def _selected(self, batch: Batch) -> list[bool]:
        kinds = set(self.config.translate_kinds)
        if "metadata" not in batch:
            return [True] * len(batch["text"])
        # rows without a recorded kind are translated (a source always records one)
        return [document_metadata(raw).get("kind", "math_text") in kinds for raw in batch["metadata"]]

    async def _skip(self) -> tuple[str | None, str | None, dict | None]:
        return None, None, None

    async def aprocess_batch(self, batch: Batch) -> Batch:
        selected = self._selected(batch)
        results = await asyncio.gather(
            *(
                self._translate_one(text) if chosen else self._skip()
                for text, chosen in zip(batch["text"], selected, strict=True)
            )
        )
        for source, chosen, (_, reason, _) in zip(batch["source"], selected, results, strict=True):
            if not chosen:
                continue
            self.funnel_counts[funnel_key("documents", source)] += 1
            if reason is None:
                self.funnel_counts[funnel_key("responses", source)] += 1
        output = {
            **batch,
            "translation_response": [text for text, _, _ in results],
            DROP_COLUMN: [reason for _, reason, _ in results],
        }
        if "metadata" in batch and any(detail for _, _, detail in results):
            output["metadata"] = [
                raw if detail is None else _with_failure(raw, detail)
                for raw, (_, _, detail) in zip(batch["metadata"], results, strict=True)
            ]
        return output

    def extra_counters(self) -> Counter[str]:
        return super().extra_counters() + self.funnel_counts
