"""Stage ``render_computations``: write each document's verified computations into its text, for pretraining.

A document with at least one verified computation gets the interleaved text of
:func:`mathcode_pile.translation.render.interleave` (the whole document, each step after the line it belongs to),
rendered in one of three modes (``render_mode``): ``paired`` (the step in words, its code and output),
``code_only`` (the code and output alone) or ``steps_only`` (the words alone).

Where the rendered text goes follows MathCoder2: the translated code is a component of its own beside the basic data.
With ``render_component`` set (``translated_code`` by default) every document keeps its original text in its own
component and each document with a verified computation adds one row to that component (id ``<id>#<component>``,
metadata ``translated_from`` and ``render_mode``), so the basic data alone, the translated code alone or both can be
trained on from one build. With ``render_component`` empty the rendered text replaces the document's own.

A document without a verified computation keeps its text as it was (the basic data), or is dropped as
``no_verified_computation`` with ``render_keep_untranslated: false``. Every document's metadata records how many
computations were parsed and verified. The intermediate columns (raw response, computations) are removed unless
``render_keep_details`` asks to keep them. This stage also writes the translation funnel into the dataset card.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.card import CardSection, publish_stage_section
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.sources import COMPONENT_NAME, document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, StageContext, register_stage
from mathcode_pile.stats import StageStats
from mathcode_pile.translation.render import RENDER_MODES, interleave
from mathcode_pile.translation.report import FUNNEL

INTERMEDIATE_COLUMNS = ("translation_response", "computations", "parse_issues")
#: The component MathCode-Pile's translated code forms (the paper's "model-translated mathematical code").
TRANSLATED_COMPONENT = "translated_code"
#: The source kind of rendered rows (``mathcode_pile.sources.SOURCE_KINDS``).
TRANSLATED_KIND = "math_code"
MODE_WORDS = {
    "paired": "a short step in words followed by its code{output}",
    "code_only": "its code{output} alone, without the step in words",
    "steps_only": "the step in words alone, without its code",
}


@dataclass
class RenderComputationsConfig(ValidatedConfig):
    render_mode: str = field(
        default="paired",
        metadata={
            "help": "How a verified computation is written: paired (step in words + code + output), code_only "
            "(code + output without the words) or steps_only (the words without the code).",
            "choices": list(RENDER_MODES),
        },
    )
    render_component: str | None = field(
        default=TRANSLATED_COMPONENT,
        metadata={
            "help": "Component that receives the rendered documents, beside the unchanged originals (the paper's "
            "layout: basic data + translated code); empty rewrites each document in place."
        },
    )
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.render_mode not in RENDER_MODES:
            raise RecipeError(f"render_mode must be one of {list(RENDER_MODES)}, got {self.render_mode!r}")
        if self.render_component == "":
            self.render_component = None
        if self.render_component is not None and (
            not COMPONENT_NAME.fullmatch(self.render_component) or self.render_component == "default"
        ):
            raise RecipeError(
                f"render_component {self.render_component!r} cannot name a dataset configuration: use letters, "
                "digits, '_', '.' or '-' (and not 'default'), or leave it empty to render in place"
            )


@register_stage
class RenderComputationsStage(Stage):
    name = "render_computations"
    needs = frozenset({"verified_computations"})
    version = "2"
    config_class = RenderComputationsConfig
    batch_size = 256

    def __init__(self, config: RenderComputationsConfig, context: StageContext) -> None:
        super().__init__(config, context)
        FUNNEL.reset()
        publish_stage_section(self.name, self.card_section)

    def process_batch(self, batch: Batch) -> Batch:
        if "computations" not in batch:
            raise ValueError("stage 'render_computations' needs the 'computations' column: run 'verify_computations'")
        columns = [name for name in batch if name not in INTERMEDIATE_COLUMNS or self.config.render_keep_details]
        output: Batch = {name: [] for name in [*columns, DROP_COLUMN]}
        component = self.config.render_component
        for index, raw in enumerate(batch["computations"]):
            row = {name: batch[name][index] for name in columns}
            computations = json.loads(raw)
            verified = [c for c in computations if c.get("verified")]
            meta = document_metadata(row["metadata"])
            meta["translation"] = {"computations": len(computations), "verified": len(verified)}
            row["metadata"] = json.dumps(meta, ensure_ascii=False)
            rendered = None
            if verified:
                rendered = interleave(
                    row["text"], verified, self.config.render_include_output, self.config.render_mode
                )
                if component is None:
                    row["text"] = rendered
            keep = bool(verified) or self.config.render_keep_untranslated
            self._append(output, row, None if keep else "no_verified_computation")
            if rendered is not None and component is not None:
                translated_meta = {
                    **meta,
                    "kind": TRANSLATED_KIND,
                    "translated_from": row["id"],
                    "source_component": row["source"],
                    "render_mode": self.config.render_mode,
                }
                translated = {
                    **row,
                    "id": f"{row['id']}#{component}",
                    "text": rendered,
                    "source": component,
                    "metadata": json.dumps(translated_meta, ensure_ascii=False),
                }
                self._append(output, translated, None)
        return output

    @staticmethod
    def _append(output: Batch, row: dict[str, Any], reason: str | None) -> None:
        for name, value in row.items():
            output[name].append(value)
        output[DROP_COLUMN].append(reason)

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        for raw in kept["metadata"] if len(kept) else []:
            metadata = document_metadata(raw)
            if "translated_from" in metadata:
                counts["rendered_rows"] += 1
                continue
            verified = metadata.get("translation", {}).get("verified", 0)
            counts["documents_with_code" if verified else "documents_without_code"] += 1
        return counts

    def card_section(self, stats: StageStats) -> CardSection | None:
        output_dir = self.context.extras.get("output_dir")
        kept = "kept as plain text" if self.config.render_keep_untranslated else "dropped"
        output = " and its output" if self.config.render_include_output else ""
        form = MODE_WORDS[self.config.render_mode].format(output=output)
        where = (
            f"Each document with verified code also appears as a row of the component `{self.config.render_component}`"
            f" (its own dataset configuration), in which every verified computation is written as {form}, after the "
            "line it belongs to; the original documents stay unchanged in their own components (the basic data)."
            if self.config.render_component is not None
            else f"Verified computations are written into their document, each as {form}, after its line."
        )
        how = (
            f"Rendering mode: `{self.config.render_mode}`. {where} Documents without a verified computation are "
            f"{kept}. {stats.extra.get('documents_with_code', 0):,} document(s) of the corpus carry verified code."
        )
        return FUNNEL.section(Path(output_dir) if output_dir else None, how)
