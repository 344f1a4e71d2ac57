"""Stage ``parse_computations``: turn each translation response into a list of computations.

Documents are never dropped here: one without a usable computation flows on (the render stage decides whether it
stays in the corpus as plain text). Per source it counts the parsed computations (``funnel/computations/<source>``);
every unusable block or response is counted under ``parse_issue/<reason>``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mathcode_pile.card import publish_stage_section
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.stages.base import Batch, Stage, StageContext, register_stage
from mathcode_pile.translation.parser import parse_translation
from mathcode_pile.translation.report import FUNNEL, funnel_key, reason_key


@dataclass
class ParseComputationsConfig(ValidatedConfig):
    parse_max_computations: int = field(
        default=32, metadata={"help": "Computations kept per document at most (the rest counted as 'too_many')."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.parse_max_computations < 1:
            raise RecipeError("parse_max_computations must be >= 1")


@register_stage
class ParseComputationsStage(Stage):
    name = "parse_computations"
    needs = frozenset({"translation_response"})
    provides = frozenset({"computations"})
    version = "1"
    config_class = ParseComputationsConfig
    batch_size = 256

    def __init__(self, config: ParseComputationsConfig, context: StageContext) -> None:
        super().__init__(config, context)
        publish_stage_section(self.name, FUNNEL.record)

    def process_batch(self, batch: Batch) -> Batch:
        if "translation_response" not in batch:
            raise ValueError(
                "stage 'parse_computations' needs the 'translation_response' column: run 'translate' first"
            )
        computations, issues = [], []
        for response in batch["translation_response"]:
            if response is None:  # a document the translate stage passed through (its kind is not translated)
                computations.append("[]")
                issues.append("[]")
                continue
            outcome = parse_translation(response)
            kept = outcome.computations[: self.config.parse_max_computations]
            extra = len(outcome.computations) - len(kept)
            computations.append(json.dumps([c.to_dict() for c in kept], ensure_ascii=False))
            issues.append(json.dumps(outcome.issues + ["too_many"] * extra))
        return {**batch, "computations": computations, "parse_issues": issues}

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        if not len(kept):
            return counts
        for source, computations, issues in zip(
            kept["source"], kept["computations"], kept["parse_issues"], strict=True
        ):
            counts[funnel_key("computations", source)] += len(json.loads(computations))
            counts.update(reason_key("parse_issue", issue) for issue in json.loads(issues))
        return counts
