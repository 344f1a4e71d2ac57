"""Labelled text for the fastText math classifier: sources, fastText line format and deterministic splits.

Positives and negatives are ordinary corpus sources (:class:`mathcode_pile.sources.SourceSpec` mappings, local files
or Hub ids), so the same recipe syntax describes the demo's bundled samples and an at-scale OpenWebMath-versus-web
training set. Splits are decided by a hash of the text and the seed, so a document keeps its split when others are
added and a rerun trains on exactly the same lines.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mathcode_pile.paths import SAMPLES_DIR
from mathcode_pile.sources import SourceSpec, iter_documents, parse_sources

MATH_LABEL = "__label__math"
OTHER_LABEL = "__label__other"
#: Characters of a document the classifier reads: the head decides, and prediction time stays bounded.
MAX_CLASSIFIER_CHARS = 20_000


def _byte_table() -> bytes:
    """ASCII upper case to lower case; sentence punctuation, brackets and line breaks to spaces.

    Sentence punctuation carries no math signal but does carry the style of the training sets (questions end in "?",
    worked solutions in "."), which would teach the model "declarative prose is math". Math symbols (``$ ^ = +``)
    stay, inside their tokens. A byte table changes only ASCII bytes, so UTF-8 stays valid, and it runs at memory
    speed: preparing a document costs a small fraction of predicting it.
    """
    table = bytearray(range(256))
    for byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[byte] = byte + 32
    for byte in b".,?!;:'\"()[]\n\r\t\x0b\x0c":
        table[byte] = ord(" ")
    return bytes(table)


_PREPARE_TABLE = _byte_table()

#: Bundled samples (see mathcode_pile/data/samples/README.md): math questions with worked solutions versus
#: science and other non-math questions. File stems are matched by prefix so the larger shared copies
#: (``aqua_rat_test.jsonl``) are described by the same list.
_SAMPLE_TEMPLATES: dict[str, tuple[str, str]] = {
    "aqua_rat": ("math", "{question}\n{rationale}"),
    "numglue": ("math", "{question}"),
    "theoremqa": ("math", "{Question}"),
    "arc_challenge": ("other", "{question}"),
    "mmlu_biology": ("other", "{question}"),
    "mmlu_physics": ("other", "{question}"),
}


def prepare_text(text: str) -> str:
    """One fastText input line: the document's head, ASCII lower-cased, punctuation and line breaks as spaces.

    Lone surrogates (possible in JSON input) become ``?``: fastText takes valid UTF-8 only.
    """
    return text[:MAX_CLASSIFIER_CHARS].encode("utf-8", "replace").translate(_PREPARE_TABLE).decode("utf-8")


@dataclass(frozen=True)
class LabeledText:
    text: str
    is_math: bool
    source: str


def sample_training_sources(
    samples_dir: str | Path = SAMPLES_DIR,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Positive and negative source mappings over the sample files found in ``samples_dir``."""
    samples_dir = Path(samples_dir)
    positives: list[dict[str, Any]] = []
    negatives: list[dict[str, Any]] = []
    for prefix, (label, template) in _SAMPLE_TEMPLATES.items():
        matches = sorted(samples_dir.glob(f"{prefix}*.jsonl"))
        if not matches:
            continue
        spec = {"name": prefix, "path": str(matches[0]), "text_template": template, "kind": "other"}
        (positives if label == "math" else negatives).append(spec)
    if not positives or not negatives:
        raise FileNotFoundError(f"{samples_dir}: needs math and non-math sample files ({sorted(_SAMPLE_TEMPLATES)})")
    return positives, negatives


def read_labeled(
    positive_sources: list[dict[str, Any]], negative_sources: list[dict[str, Any]], where: str = "classifier"
) -> tuple[list[LabeledText], Counter[str]]:
    """Every document of the given sources with its label, plus the load counters (skips by reason)."""
    examples: list[LabeledText] = []
    counts: Counter[str] = Counter()
    for raw_specs, is_math in ((positive_sources, True), (negative_sources, False)):
        for spec in parse_sources(raw_specs, where):
            examples.extend(LabeledText(doc["text"], is_math, spec.name) for doc in iter_documents(spec, counts))
    return examples, counts


def split_of(text: str, seed: int, fractions: tuple[float, float] = (0.7, 0.15)) -> str:
    """``train``, ``validation`` or ``test`` from a hash of seed and text."""
    digest = hashlib.sha1(f"{seed}\x00{text}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < fractions[0]:
        return "train"
    if position < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def split_examples(
    examples: Iterable[LabeledText], seed: int, fractions: tuple[float, float] = (0.7, 0.15)
) -> dict[str, list[LabeledText]]:
    splits: dict[str, list[LabeledText]] = {"train": [], "validation": [], "test": []}
    for example in examples:
        splits[split_of(example.text, seed, fractions)].append(example)
    return splits


def training_sources_fingerprint(specs: list[dict[str, Any]]) -> list[str]:
    """Content identity of training sources (for cache keys): each spec's content fingerprint."""
    return [SourceSpec(**spec).content_fingerprint() for spec in specs]
