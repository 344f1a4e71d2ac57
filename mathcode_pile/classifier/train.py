"""fastText training, scoring, threshold choice and metrics for the math classifier.

Training is deterministic: one thread and a fixed seed give the same model bytes for the same lines. The decision
threshold is not fastText's 0.5: it is the lowest score whose validation precision reaches the target (the highest
recall among thresholds precise enough); when no threshold reaches the target the most precise one is used and
``target_met`` says so. Precision, recall and F1 are then measured once on the test split, which played no part.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.classifier.data import MATH_LABEL, OTHER_LABEL, LabeledText, prepare_text

logger = logging.getLogger(__name__)


def import_fasttext() -> Any:
    try:
        import fasttext
    except ImportError as exc:  # pragma: no cover - part of the [pile] extra
        raise ImportError("the math classifier needs fastText: pip install 'fasttext-numpy2>=0.10.4'") from exc
    return fasttext


@dataclass
class FastTextParams:
    """Hyper-parameters of ``fasttext.train_supervised`` (small, fast defaults that suit a binary task)."""

    epoch: int = 20
    lr: float = 0.5
    word_ngrams: int = 2
    dim: int = 32
    min_count: int = 1
    #: Hash buckets of word n-grams; fastText's default (2M) makes a 256 MB model, 200k about 25 MB.
    bucket: int = 200_000
    seed: int = 0

    def to_kwargs(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "lr": self.lr,
            "wordNgrams": self.word_ngrams,
            "dim": self.dim,
            "minCount": self.min_count,
            "bucket": self.bucket,
            "seed": self.seed,
            "thread": 1,
            "verbose": 0,
        }


#: Run by a fresh interpreter: train on argv[1] with the JSON keyword arguments in argv[2], save to argv[3].
_TRAIN_SCRIPT = (
    "import json, sys\n"
    "import fasttext\n"
    "fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[2])).save_model(sys.argv[3])\n"
)


def train_fasttext(examples: Sequence[LabeledText], params: FastTextParams) -> Any:
    """A supervised fastText model over ``examples`` (needs both labels), trained in a fresh process.

    Why a fresh process: with fasttext-numpy2 0.10.4 a second ``train_supervised`` call in the same process does not
    repeat the first one's model for the same seed and data (and now and then stops with "Encountered NaN"), while
    the first call of a new interpreter always gives the same model. Starting one costs about a second and buys
    reproducible classifiers; a plain ``python -c`` child works whatever the caller's main module is.
    """
    labels = {example.is_math for example in examples}
    if labels != {True, False}:
        raise ValueError(f"training needs math and non-math examples, got only {labels or 'none'}")
    fasttext = import_fasttext()
    with tempfile.TemporaryDirectory(prefix="mathcode-fasttext-") as tmp:
        train_file = Path(tmp) / "train.txt"
        model_file = Path(tmp) / "model.bin"
        with train_file.open("w", encoding="utf-8") as handle:
            for example in examples:
                label = MATH_LABEL if example.is_math else OTHER_LABEL
                handle.write(f"{label} {prepare_text(example.text)}\n")
        arguments = [str(train_file), json.dumps(params.to_kwargs()), str(model_file)]
        command = [sys.executable, "-c", _TRAIN_SCRIPT, *arguments]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode != 0:
            raise RuntimeError(f"fastText training failed (exit {finished.returncode}): {finished.stderr[-2000:]}")
        return fasttext.load_model(str(model_file))


def math_scores(model: Any, texts: Sequence[str], prepared: bool = False) -> list[float]:
    """P(math) of each text, from one batched ``predict`` call."""
    if not texts:
        return []
    lines = list(texts) if prepared else [prepare_text(text) for text in texts]
    labels, probabilities = model.predict(lines, k=-1)
    # both labels come back, most probable first
    return [
        min(1.0, float(probs[0] if row_labels[0] == MATH_LABEL else probs[1] if len(probs) > 1 else 0.0))
        for row_labels, probs in zip(labels, probabilities, strict=True)
    ]


@dataclass
class BinaryMetrics:
    threshold: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    positives: int
    negatives: int


def binary_metrics(scores: Sequence[float], truth: Sequence[bool], threshold: float) -> BinaryMetrics:
    true_pos = sum(1 for s, t in zip(scores, truth, strict=True) if s >= threshold and t)
    false_pos = sum(1 for s, t in zip(scores, truth, strict=True) if s >= threshold and not t)
    positives = sum(truth)
    negatives = len(truth) - positives
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 1.0
    recall = true_pos / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (true_pos + (negatives - false_pos)) / len(truth) if truth else 0.0
    return BinaryMetrics(
        round(threshold, 6),
        round(precision, 4),
        round(recall, 4),
        round(f1, 4),
        round(accuracy, 4),
        positives,
        negatives,
    )


def choose_threshold(scores: Sequence[float], truth: Sequence[bool], target_precision: float) -> tuple[float, bool]:
    """The lowest threshold whose precision reaches the target, and whether any did (else the most precise one).

    One sweep over the scores sorted from high to low: at each distinct score the documents at or above it are the
    predicted positives, so precision and recall of every candidate threshold come from running counts.
    """
    positives = sum(truth)
    if not scores or not positives:
        raise ValueError("choosing a threshold needs validation data with at least one math example")
    pairs = sorted(zip(scores, truth, strict=True), key=lambda pair: -pair[0])
    true_pos = false_pos = 0
    lowest_precise: float | None = None
    best_fallback: tuple[float, float, float] | None = None  # (precision, recall, threshold)
    for position, (score, is_math) in enumerate(pairs):
        true_pos += is_math
        false_pos += not is_math
        if position + 1 < len(pairs) and pairs[position + 1][0] == score:
            continue  # the threshold takes all documents with this score at once
        if not true_pos:
            continue
        precision = true_pos / (true_pos + false_pos)
        recall = true_pos / positives
        if precision >= target_precision:
            lowest_precise = score
        if best_fallback is None or (precision, recall) > best_fallback[:2]:
            best_fallback = (precision, recall, score)
    if lowest_precise is not None:
        return lowest_precise, True
    assert best_fallback is not None
    return best_fallback[2], False


@dataclass
class RoundResult:
    """One trained round: its model, threshold and metrics (the model object is not serialized)."""

    round: int
    train_size: int
    threshold: float
    target_met: bool
    validation: BinaryMetrics
    test: BinaryMetrics | None
    model: Any = field(repr=False, default=None)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "train_size": self.train_size,
            "threshold": self.threshold,
            "target_met": self.target_met,
            "validation": asdict(self.validation),
            "test": asdict(self.test) if self.test is not None else None,
            **self.extra,
        }


def train_round(
    round_number: int,
    train: Sequence[LabeledText],
    validation: Sequence[LabeledText],
    test: Sequence[LabeledText] | None,
    params: FastTextParams,
    target_precision: float,
) -> RoundResult:
    """Train on ``train``, choose the threshold on ``validation``, measure on ``test``."""
    model = train_fasttext(train, params)
    val_scores = math_scores(model, [e.text for e in validation])
    val_truth = [e.is_math for e in validation]
    threshold, target_met = choose_threshold(val_scores, val_truth, target_precision)
    test_metrics = None
    if test:
        test_metrics = binary_metrics(math_scores(model, [e.text for e in test]), [e.is_math for e in test], threshold)
    result = RoundResult(
        round=round_number,
        train_size=len(train),
        threshold=threshold,
        target_met=target_met,
        validation=binary_metrics(val_scores, val_truth, threshold),
        test=test_metrics,
        model=model,
    )
    logger.info(
        "classifier round %d: %d training lines, threshold %.4f (target met: %s), validation P=%.3f R=%.3f%s",
        round_number,
        len(train),
        threshold,
        target_met,
        result.validation.precision,
        result.validation.recall,
        f", test P={test_metrics.precision:.3f} R={test_metrics.recall:.3f}" if test_metrics else "",
    )
    return result
