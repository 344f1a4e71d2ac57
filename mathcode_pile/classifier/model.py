"""A trained math classifier folder (``model.bin`` + ``metrics.json``) loaded for scoring documents."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mathcode_pile.classifier.rounds import COMPLETE_MARKER, METRICS_FILE, MODEL_FILE
from mathcode_pile.classifier.train import import_fasttext, math_scores


class ClassifierFolderError(FileNotFoundError):
    """A classifier folder without a finished model; the message says how to make one."""


class MathClassifier:
    """Scores documents with P(math); the decision threshold comes from ``metrics.json`` unless overridden.

    The fastText model is loaded on first use and left out of pickles, so the object can travel to ``num_proc``
    worker processes, each of which loads the model once.
    """

    def __init__(self, folder: str | Path, threshold: float | None = None) -> None:
        self.folder = Path(folder)
        if not (self.folder / MODEL_FILE).is_file() or not (self.folder / METRICS_FILE).is_file():
            raise ClassifierFolderError(
                f"{self.folder}: no trained classifier (model.bin + metrics.json); "
                f"train one with `mathcode-pile classify train --output {self.folder}`"
            )
        self.metrics: dict[str, Any] = json.loads((self.folder / METRICS_FILE).read_text(encoding="utf-8"))
        self.threshold = float(self.metrics["threshold"]) if threshold is None else threshold
        self._model: Any = None

    @property
    def is_complete(self) -> bool:
        return (self.folder / COMPLETE_MARKER).exists()

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = import_fasttext().load_model(str(self.folder / MODEL_FILE))
        return self._model

    def digest(self) -> str:
        """Content hash of the model file (part of the filter stage's fingerprint)."""
        return hashlib.sha256((self.folder / MODEL_FILE).read_bytes()).hexdigest()[:16]

    def scores(self, texts: Sequence[str]) -> list[float]:
        return math_scores(self.model, texts)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}
