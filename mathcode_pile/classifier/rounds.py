"""The two training rounds of the math classifier and the folder they produce.

Round 1 trains on known math text (positives) against non-math text (negatives), with train / validation / test
splits. Round 2 follows MathCoder2's refinement: a sample of round-1 output (documents round 1 did not train on, half
scored at or above its threshold, half below) is labelled by the LLM with a topic taxonomy; the labels are split into
train / validation / held-out parts, the train part is balanced (the larger class cut to the size of the smaller) and
a new model is trained on it. Both models are then scored on the held-out LLM labels; round 2 is used only when its
F1 there is higher, and ``metrics.json`` carries a note that says which round won and why.

The output folder holds ``model.bin`` (the selected model), ``round1.bin`` (and ``round2.bin``), ``metrics.json``
(thresholds, precision / recall / F1 per split and round) and ``llm_labels.jsonl`` (every LLM answer with its parsed
topic), so the choice can be audited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.classifier.data import LabeledText, read_labeled, split_examples, split_of
from mathcode_pile.classifier.labeling import TopicLabel, label_texts
from mathcode_pile.classifier.train import FastTextParams, RoundResult, binary_metrics, math_scores, train_round

logger = logging.getLogger(__name__)

MODEL_FILE = "model.bin"
METRICS_FILE = "metrics.json"
LABELS_FILE = "llm_labels.jsonl"
COMPLETE_MARKER = ".complete"


@dataclass
class ClassifierTrainingSettings:
    """Everything that decides the trained classifier (its hash names the cached model folder)."""

    positive_sources: list[dict[str, Any]]
    negative_sources: list[dict[str, Any]]
    target_precision: float = 0.95
    params: FastTextParams = field(default_factory=FastTextParams)
    round2_sample: int = 0
    label_max_new_tokens: int = 16
    label_max_chars: int = 1500

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _balanced(examples: list[LabeledText], seed: int) -> list[LabeledText]:
    math = [e for e in examples if e.is_math]
    other = [e for e in examples if not e.is_math]
    size = min(len(math), len(other))
    rng = random.Random(seed)
    return sorted(rng.sample(math, size) + rng.sample(other, size), key=lambda e: e.text)


def _sample_round1_output(
    round1: RoundResult, candidates: list[LabeledText], sample_size: int, seed: int
) -> list[LabeledText]:
    """Half of the sample from documents round 1 accepts, half from those it rejects (fewer if one side is short)."""
    scores = math_scores(round1.model, [c.text for c in candidates])
    accepted = [c for c, s in zip(candidates, scores, strict=True) if s >= round1.threshold]
    rejected = [c for c, s in zip(candidates, scores, strict=True) if s < round1.threshold]
    rng = random.Random(seed)
    half = sample_size // 2
    take_accepted = min(len(accepted), max(half, sample_size - len(rejected)))
    take_rejected = min(len(rejected), sample_size - take_accepted)
    return rng.sample(accepted, take_accepted) + rng.sample(rejected, take_rejected)


def _heldout_comparison(round1: RoundResult, round2: RoundResult, heldout: list[LabeledText]) -> dict[str, Any]:
    truth = [e.is_math for e in heldout]
    texts = [e.text for e in heldout]
    first = binary_metrics(math_scores(round1.model, texts), truth, round1.threshold)
    second = binary_metrics(math_scores(round2.model, texts), truth, round2.threshold)
    return {"size": len(heldout), "round1": asdict(first), "round2": asdict(second)}


def run_round2(
    round1: RoundResult,
    candidates: list[LabeledText],
    settings: ClassifierTrainingSettings,
    llm: Any,
) -> tuple[RoundResult | None, dict[str, Any], list[tuple[LabeledText, TopicLabel]]]:
    """LLM-label a sample of round-1 output, retrain on balanced labels; returns (round 2 or None, report, labels)."""
    sample = _sample_round1_output(round1, candidates, settings.round2_sample, settings.params.seed)
    labels = asyncio.run(
        label_texts(llm, [e.text for e in sample], settings.label_max_new_tokens, settings.label_max_chars)
    )
    pairs = list(zip(sample, labels, strict=True))
    round2, report = round2_from_labels(round1, pairs, settings)
    return round2, report, pairs


def round2_from_labels(
    round1: RoundResult, pairs: list[tuple[LabeledText, TopicLabel]], settings: ClassifierTrainingSettings
) -> tuple[RoundResult | None, dict[str, Any]]:
    """Train round 2 on labelled documents (unparseable answers left out) and compare both rounds on held-out labels.

    ``pairs`` holds each sampled document (with its source label, used only to report agreement) and its LLM label.
    """
    seed = settings.params.seed
    labelled = [
        LabeledText(example.text, bool(label.is_math), example.source)
        for example, label in pairs
        if label.is_math is not None
    ]
    agreement = [label.is_math == example.is_math for example, label in pairs if label.is_math is not None]
    report: dict[str, Any] = {
        "round1_train_size": round1.train_size,
        "sampled": len(pairs),
        "labelled": len(labelled),
        "unparseable_answers": len(pairs) - len(labelled),
        "llm_math": sum(e.is_math for e in labelled),
        "llm_not_math": sum(not e.is_math for e in labelled),
        "agreement_with_source_labels": round(sum(agreement) / len(agreement), 4) if agreement else None,
    }
    parts: dict[str, list[LabeledText]] = {"train": [], "validation": [], "test": []}
    for example in labelled:
        parts[split_of(example.text, seed + 2, (0.6, 0.2))].append(example)
    train = _balanced(parts["train"], seed)
    report.update(
        {"train_balanced": len(train), "validation": len(parts["validation"]), "heldout": len(parts["test"])}
    )
    has_both = {e.is_math for e in train} == {True, False}
    if not (has_both and any(e.is_math for e in parts["validation"]) and parts["test"]):
        report["skipped"] = (
            f"of {report['sampled']} sampled documents the LLM called {report['llm_math']} math, "
            f"{report['llm_not_math']} not math and gave {report['unparseable_answers']} answers without a topic, "
            "so its labels do not give both classes in every part (train, validation, held-out); "
            "label a larger sample or use a stronger labelling model"
        )
        return None, report
    round2 = train_round(2, train, parts["validation"], None, settings.params, settings.target_precision)
    report["heldout_comparison"] = _heldout_comparison(round1, round2, parts["test"])
    return round2, report


def _selection_note(report: dict[str, Any] | None, round2: RoundResult | None) -> tuple[int, str]:
    if report is None:
        return 1, "round 2 was not run (no LLM labelling sample requested)"
    if round2 is None:
        return 1, f"round 2 skipped: {report['skipped']}"
    comparison = report["heldout_comparison"]
    f1_first, f1_second = comparison["round1"]["f1"], comparison["round2"]["f1"]
    if f1_second > f1_first:
        return 2, f"round 2 beats round 1 on {comparison['size']} held-out LLM labels (F1 {f1_second} vs {f1_first})"
    agreement = report.get("agreement_with_source_labels")
    if agreement is not None and agreement >= 0.9:
        why = (
            f"its labels agree with the source labels on {agreement:.0%} of documents, but it learns from "
            f"{report['train_balanced']} balanced labels against round 1's {report['round1_train_size']} documents"
        )
    else:
        agreement_text = f" that agree with the source labels on {agreement:.0%} of documents" if agreement else ""
        labels = report["train_balanced"]
        why = f"it learns from only {labels} balanced LLM labels{agreement_text}: too few or too noisy"
    return 1, (
        f"round 1 kept: on {comparison['size']} held-out LLM labels round 2 scores F1 {f1_second} against "
        f"{f1_first}; {why}"
    )


def train_math_classifier(
    settings: ClassifierTrainingSettings, output_dir: str | Path, llm: Any | None = None
) -> dict[str, Any]:
    """Train round 1 (and round 2 when ``settings.round2_sample`` > 0 and ``llm`` is given) into ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in (COMPLETE_MARKER, MODEL_FILE, METRICS_FILE, LABELS_FILE, "round1.bin", "round2.bin"):
        (output_dir / name).unlink(missing_ok=True)  # only our own files: the folder may hold other things
    examples, load_counts = read_labeled(settings.positive_sources, settings.negative_sources)
    splits = split_examples(examples, settings.params.seed)
    round1 = train_round(
        1, splits["train"], splits["validation"], splits["test"], settings.params, settings.target_precision
    )
    round1.model.save_model(str(output_dir / "round1.bin"))
    round2: RoundResult | None = None
    round2_report: dict[str, Any] | None = None
    if settings.round2_sample > 0:
        if llm is None:
            raise ValueError("round 2 needs an LLM client to label documents")
        candidates = splits["validation"] + splits["test"]
        round2, round2_report, pairs = run_round2(round1, candidates, settings, llm)
        with (output_dir / LABELS_FILE).open("w", encoding="utf-8") as handle:
            for example, label in pairs:
                record = {
                    "source": example.source,
                    "source_label_math": example.is_math,
                    "llm_topic": label.topic,
                    "llm_math": label.is_math,
                    "answer": label.raw,
                    "text": example.text[:500],
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        if round2 is not None:
            round2.model.save_model(str(output_dir / "round2.bin"))
    selected, note = _selection_note(round2_report, round2)
    chosen = round2 if selected == 2 and round2 is not None else round1
    shutil.copyfile(output_dir / f"round{chosen.round}.bin", output_dir / MODEL_FILE)
    metrics = {
        "selected_round": chosen.round,
        "threshold": chosen.threshold,
        "target_precision": settings.target_precision,
        "note": note,
        "data": {
            "examples": len(examples),
            "math": sum(e.is_math for e in examples),
            "not_math": sum(not e.is_math for e in examples),
            "splits": {name: len(rows) for name, rows in splits.items()},
            "skipped": {reason: n for reason, n in sorted(load_counts.items()) if reason != "read"},
        },
        "rounds": {"1": round1.to_dict(), **({"2": round2.to_dict()} if round2 is not None else {})},
        "round2": round2_report,
        "settings": settings.to_dict(),
    }
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (output_dir / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
    logger.info("math classifier written to %s: %s", output_dir, note)
    return metrics
