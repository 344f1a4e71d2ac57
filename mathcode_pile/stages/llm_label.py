"""Stage ``llm_label``: the LLM names the topic of a sample of documents (never drops a row).

Placed after ``math_classify`` it labels a sample of round-1 output, the same prompt, taxonomy and parser that round
2 of classifier training uses (:mod:`mathcode_pile.classifier.labeling`), through the build's cached
:class:`~mathcode_pile.llm.LLMClient`. Which rows are sampled is decided by a hash of the document id, so a rerun
labels the same rows (and finds every answer in the request cache). The label goes to the row's metadata
(``llm_topic``, ``llm_math``); the card shows the topic distribution.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mathcode_pile.card import CardSection, publish_stage_section
from mathcode_pile.classifier.labeling import TOPICS, label_texts
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, LLMStage, StageContext, register_stage
from mathcode_pile.stages.columns import column_values
from mathcode_pile.stats import StageStats


@dataclass
class LLMLabelConfig(ValidatedConfig):
    llm_label_fraction: float = field(
        default=1.0, metadata={"help": "Fraction of documents labelled (chosen by a hash of the id)."}
    )
    llm_label_max_new_tokens: int = field(default=16, metadata={"help": "Generation budget of one answer."})
    llm_label_max_doc_chars: int = field(default=1500, metadata={"help": "Characters of a document shown."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.llm_label_fraction <= 1.0:
            raise RecipeError("llm_label_fraction must be in [0, 1]")


def is_sampled(doc_id: str, fraction: float) -> bool:
    digest = hashlib.sha1(doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@register_stage
class LLMLabelStage(LLMStage):
    name = "llm_label"
    rewrites_columns = frozenset({"metadata"})
    version = "1"
    config_class = LLMLabelConfig

    def __init__(self, config: LLMLabelConfig, context: StageContext) -> None:
        super().__init__(config, context)
        publish_stage_section(self.name, self.card_section)

    async def aprocess_batch(self, batch: Batch) -> Batch:
        sampled = [i for i, doc_id in enumerate(batch["id"]) if is_sampled(doc_id, self.config.llm_label_fraction)]
        labels = await label_texts(
            self.client,
            [batch["text"][i] for i in sampled],
            self.config.llm_label_max_new_tokens,
            self.config.llm_label_max_doc_chars,
        )
        metadata_out = list(batch["metadata"])
        for i, label in zip(sampled, labels, strict=True):
            metadata = document_metadata(metadata_out[i])
            metadata["llm_topic"] = label.topic
            metadata["llm_math"] = label.is_math
            metadata_out[i] = json.dumps(metadata, ensure_ascii=False)
        return {**batch, "metadata": metadata_out, DROP_COLUMN: [None] * len(batch["id"])}

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        for raw in column_values(kept, "metadata"):
            metadata = document_metadata(raw)
            if "llm_topic" not in metadata:
                continue
            counts["labelled"] += 1
            counts[f"topic_{metadata['llm_topic'] or 'unparseable'}"] += 1
        return counts

    def card_section(self, stats: StageStats) -> CardSection:
        lines = [
            f"The LLM named the topic of {stats.extra.get('labelled', 0):,} sampled document(s) "
            f"({self.config.llm_label_fraction:.0%} sample).",
            "",
            "| topic | mathematics | documents |",
            "|---|---|---:|",
        ]
        for _, topic, is_math in TOPICS:
            lines.append(f"| {topic} | {'yes' if is_math else 'no'} | {stats.extra.get(f'topic_{topic}', 0):,} |")
        lines.append(f"| (answer without a topic) | | {stats.extra.get('topic_unparseable', 0):,} |")
        return CardSection("LLM topic labels", "\n".join(lines))
