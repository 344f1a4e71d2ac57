"""Stage ``math_classify``: keep documents the fastText math classifier scores at or above its threshold.

Which model it uses:

- ``classifier_model: PATH`` — a folder written by ``mathcode-pile classify train`` (``model.bin`` +
  ``metrics.json``); its validation-chosen threshold applies unless ``classifier_threshold`` overrides it.
- left empty (the demo) — the stage trains one itself as the first step of the build, into
  ``<work_dir>/classifier/<settings hash>/``, from ``classifier_positive_sources`` / ``classifier_negative_sources``
  (default: the bundled math and non-math samples). Training is deterministic (fixed seed, one thread) and cached:
  a finished folder for the same settings and training files is reused, so reruns and resumed builds do not train
  again. With ``classifier_round2_sample: N`` round 2 labels N documents with the build's LLM (or the embedded model
  when the build has no LLM stage); the cached folder then also depends on the model name.

Only rows whose source kind is in ``classify_kinds`` are scored (web and math web text by default); textbooks,
synthetic text and code pass untouched. The score becomes a ``math_score`` column (NaN where nothing was scored:
a float column in every batch, never an all-null one), so the released corpus can be re-thresholded; rows below the
threshold are dropped as ``not_math``. The card gets the classifier's validation and test precision / recall / F1,
its threshold and the round-2 note.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.card import CardSection, publish_stage_section
from mathcode_pile.classifier.data import sample_training_sources, training_sources_fingerprint
from mathcode_pile.classifier.model import MathClassifier
from mathcode_pile.classifier.rounds import COMPLETE_MARKER, ClassifierTrainingSettings, train_math_classifier
from mathcode_pile.classifier.train import FastTextParams
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.sources import document_kind
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, StageContext, register_stage
from mathcode_pile.stages.columns import FILTER_BATCH, column_values
from mathcode_pile.stats import StageStats

logger = logging.getLogger(__name__)

#: P(math) of each scored row; NaN for rows of kinds the classifier does not score (textbooks, code).
SCORE_COLUMN = "math_score"


@dataclass
class ClassifyConfig(ValidatedConfig):
    classifier_model: str | None = field(
        default=None,
        metadata={
            "help": "Folder made by `mathcode-pile classify train`; empty: train one into the work dir from "
            "classifier_positive_sources / classifier_negative_sources (cached)."
        },
    )
    classifier_threshold: float | None = field(
        default=None, metadata={"help": "Score threshold; empty: the one chosen on validation data."}
    )
    classifier_target_precision: float = field(
        default=0.95, metadata={"help": "Validation precision the threshold must reach (when training)."}
    )
    classifier_positive_sources: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "Math training sources (source mappings); empty: the bundled math samples."},
    )
    classifier_negative_sources: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "Non-math training sources (source mappings); empty: the bundled non-math samples."},
    )
    classifier_round2_sample: int = field(
        default=0, metadata={"help": "Documents the LLM labels for round 2 (0: round 1 only)."}
    )
    classifier_seed: int = field(default=0, metadata={"help": "Seed of splits, sampling and fastText."})
    classify_kinds: list[str] = field(
        default_factory=lambda: ["math_text", "web", "other"],
        metadata={"help": "Source kinds the classifier scores; rows of other kinds pass untouched."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.classifier_target_precision <= 1.0:
            raise RecipeError("classifier_target_precision must be in (0, 1]")
        if self.classifier_threshold is not None and not 0.0 <= self.classifier_threshold <= 1.0:
            raise RecipeError("classifier_threshold must be in [0, 1]")
        if self.classifier_round2_sample < 0:
            raise RecipeError("classifier_round2_sample must be >= 0")
        if self.classifier_model is not None and not Path(self.classifier_model).is_dir():
            raise RecipeError(f"classifier_model: folder not found: {self.classifier_model}")

    def training_settings(self) -> ClassifierTrainingSettings:
        positives, negatives = self.classifier_positive_sources, self.classifier_negative_sources
        if not positives or not negatives:
            default_positives, default_negatives = sample_training_sources()
            positives = positives or default_positives
            negatives = negatives or default_negatives
        return ClassifierTrainingSettings(
            positive_sources=positives,
            negative_sources=negatives,
            target_precision=self.classifier_target_precision,
            params=FastTextParams(seed=self.classifier_seed),
            round2_sample=self.classifier_round2_sample,
        )


@contextlib.contextmanager
def _labelling_llm(context: StageContext) -> Iterator[Any]:
    """The build's LLM client, or the embedded model served for the duration of round-2 labelling."""
    if context.llm is not None:
        yield context.llm
        return
    from mathcode_pile.llm.client import LLMConfig
    from mathcode_pile.llm.opening import open_llm

    with open_llm(LLMConfig(), context.work_dir, needed=True) as llm:
        yield llm


def ensure_trained_classifier(config: ClassifyConfig, context: StageContext) -> Path:
    """The classifier folder to use: the configured one, or a cached (trained now if absent) one in the work dir."""
    if config.classifier_model is not None:
        return Path(config.classifier_model)
    settings = config.training_settings()
    key_material: dict[str, Any] = {
        "settings": settings.to_dict(),
        "files": training_sources_fingerprint(settings.positive_sources + settings.negative_sources),
    }
    if settings.round2_sample:
        model = context.llm.config.llm_model if context.llm is not None else "embedded"
        key_material["labelling_model"] = model
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = context.work_dir / "classifier" / key
    if (folder / COMPLETE_MARKER).exists():
        return folder
    logger.info("training the math classifier into %s (first step of this build; cached afterwards)", folder)
    if settings.round2_sample:
        with _labelling_llm(context) as llm:
            train_math_classifier(settings, folder, llm)
    else:
        train_math_classifier(settings, folder)
    return folder


@register_stage
class MathClassifyStage(Stage):
    name = "math_classify"
    rewrites_columns = frozenset()
    version = "1"
    config_class = ClassifyConfig
    batch_size = FILTER_BATCH

    def __init__(self, config: ClassifyConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self._classifier: MathClassifier | None = None
        publish_stage_section(self.name, self.card_section)

    @property
    def classifier(self) -> MathClassifier:
        if self._classifier is None:
            folder = ensure_trained_classifier(self.config, self.context)
            self._classifier = MathClassifier(folder, self.config.classifier_threshold)
        return self._classifier

    def fingerprint_config(self) -> dict[str, Any]:
        # the model's bytes, not its path, identify what this stage does
        return {**super().fingerprint_config(), "model_digest": self.classifier.digest()}

    def process_batch(self, batch: Batch) -> Batch:
        classifier = self.classifier
        kinds = set(self.config.classify_kinds)
        texts = batch["text"]
        selected = [i for i, raw in enumerate(batch["metadata"]) if document_kind(raw) in kinds]
        scores = [math.nan] * len(texts)
        for i, score in zip(selected, classifier.scores([texts[i] for i in selected]), strict=True):
            scores[i] = score
        threshold = classifier.threshold
        reasons = [None if math.isnan(score) or score >= threshold else "not_math" for score in scores]
        return {**batch, SCORE_COLUMN: scores, DROP_COLUMN: reasons}

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        if len(kept):
            counts["scored_kept"] = sum(not math.isnan(score) for score in column_values(kept, SCORE_COLUMN))
        return counts

    def card_section(self, stats: StageStats) -> CardSection:
        classifier = self.classifier
        metrics = classifier.metrics
        lines = [
            f"Documents of kinds {', '.join(self.config.classify_kinds)} are scored by a fastText math classifier "
            f"and kept at P(math) >= {classifier.threshold:.4f} (chosen on validation data for precision "
            f">= {metrics.get('target_precision')}). Selected: round {metrics.get('selected_round')}. "
            f"{stats.dropped.get('not_math', 0):,} document(s) dropped as not math.",
            "",
            "| round | split | precision | recall | F1 | math / other |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for number, result in sorted(metrics.get("rounds", {}).items()):
            for split in ("validation", "test"):
                values = result.get(split)
                if values:
                    lines.append(
                        f"| {number} | {split} | {values['precision']:.3f} | {values['recall']:.3f} | "
                        f"{values['f1']:.3f} | {values['positives']} / {values['negatives']} |"
                    )
        comparison = (metrics.get("round2") or {}).get("heldout_comparison")
        if comparison:
            for number in ("1", "2"):
                values = comparison[f"round{number}"]
                lines.append(
                    f"| {number} | held-out LLM labels | {values['precision']:.3f} | {values['recall']:.3f} | "
                    f"{values['f1']:.3f} | {values['positives']} / {values['negatives']} |"
                )
        lines += ["", f"Note: {metrics.get('note', '')}."]
        return CardSection("Math classifier", "\n".join(lines))
