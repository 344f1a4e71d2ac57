"""Stage ``render_computations``: write each document's verified computations into its text, for pretraining.

A document with at least one verified computation gets the interleaved text of
:func:`mathcode_pile.translation.render.interleave` (the whole document, each step with its code after the line it
belongs to); its metadata records how many computations were parsed and verified. A document without one keeps its
text as it was (the basic data), or is dropped as ``no_verified_computation`` with
``render_keep_untranslated: false``. The intermediate columns (raw response, computations) are removed unless
``render_keep_details`` asks to keep them. This stage also writes the translation funnel into the dataset card.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.card import CardSection, publish_stage_section
from mathcode_pile.config import ValidatedConfig
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, StageContext, register_stage
from mathcode_pile.stats import StageStats
from mathcode_pile.translation.render import interleave
from mathcode_pile.translation.report import FUNNEL

INTERMEDIATE_COLUMNS = ("translation_response", "computations", "parse_issues")


@dataclass
class RenderComputationsConfig(ValidatedConfig):
    render_keep_untranslated: bool = field(
        default=True,
        metadata={"help": "Keep documents without a verified computation as plain text (false drops them)."},
    )
    render_include_output: bool = field(
        default=True, metadata={"help": "Show what each snippet printed after its code block."}
    )
    render_keep_details: bool = field(
        default=False, metadata={"help": "Keep the raw response and the computations (JSON) as columns."}
    )


@register_stage
class RenderComputationsStage(Stage):
    name = "render_computations"
    needs = frozenset({"verified_computations"})
    version = "1"
    config_class = RenderComputationsConfig
    batch_size = 256

    def __init__(self, config: RenderComputationsConfig, context: StageContext) -> None:
        super().__init__(config, context)
        FUNNEL.reset()
        publish_stage_section(self.name, self.card_section)

    def process_batch(self, batch: Batch) -> Batch:
        if "computations" not in batch:
            raise ValueError("stage 'render_computations' needs the 'computations' column: run 'verify_computations'")
        texts, metadata, reasons = [], [], []
        for text, raw_metadata, raw in zip(batch["text"], batch["metadata"], batch["computations"], strict=True):
            computations = json.loads(raw)
            verified = [c for c in computations if c.get("verified")]
            meta = document_metadata(raw_metadata)
            meta["translation"] = {"computations": len(computations), "verified": len(verified)}
            metadata.append(json.dumps(meta, ensure_ascii=False))
            if verified:
                texts.append(interleave(text, verified, self.config.render_include_output))
                reasons.append(None)
            else:
                texts.append(text)
                reasons.append(None if self.config.render_keep_untranslated else "no_verified_computation")
        output = {**batch, "text": texts, "metadata": metadata, DROP_COLUMN: reasons}
        if not self.config.render_keep_details:
            for column in INTERMEDIATE_COLUMNS:
                output.pop(column, None)
        return output

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        for raw in kept["metadata"] if len(kept) else []:
            verified = document_metadata(raw).get("translation", {}).get("verified", 0)
            counts["documents_with_code" if verified else "documents_without_code"] += 1
        return counts

    def card_section(self, stats: StageStats) -> CardSection | None:
        output_dir = self.context.extras.get("output_dir")
        kept = "kept as plain text" if self.config.render_keep_untranslated else "dropped"
        how = (
            "Verified computations are written into their document, each as a short step in words followed by its "
            f"code{' and its output' if self.config.render_include_output else ''}, after the line it belongs to; "
            f"documents without a verified computation are {kept}. "
            f"{stats.extra.get('documents_with_code', 0):,} document(s) of the corpus carry code."
        )
        return FUNNEL.section(Path(output_dir) if output_dir else None, how)
