"""Stage ``mixture``: sample each component (source) by its mixture weight, after dedup and decontamination.

A source's weight is its ``weight`` in the recipe's ``sources`` list (carried in each row's metadata), unless
``mixture_weights`` names the source. Weight 1 keeps every document once; a fraction keeps that share of documents
(``mixture_sampled_out`` for the others); a weight above 1 repeats documents: the whole part gives whole copies and
the fractional part one more copy for that share. Which documents are kept or repeated depends only on a hash of
seed, document id and copy number, so reruns and resumed builds make the same choice. Copies get ids ending in
``#copy<k>`` so ids stay unique. Weights are applied after dedup on purpose: repeating first would have the copies
removed as duplicates.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, register_stage
from mathcode_pile.stages.columns import WHOLE_SHARD_BATCH, column_values


@dataclass
class MixtureConfig(ValidatedConfig):
    mixture_weights: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "Weight per source name, overriding the source's own 'weight' (1 = keep once)."},
    )
    mixture_seed: int = field(default=0, metadata={"help": "Seed of the keep / repeat choices."})

    def __post_init__(self) -> None:
        super().__post_init__()
        negative = {name: w for name, w in self.mixture_weights.items() if w < 0}
        if negative:
            raise RecipeError(f"mixture_weights must be >= 0, got {negative}")


def _unit_hash(*parts: Any) -> float:
    digest = hashlib.sha1("\x00".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def copies_for(doc_id: str, weight: float, seed: int) -> int:
    """How many times a document appears under ``weight`` (deterministic in seed and id)."""
    whole = math.floor(weight)
    fraction = weight - whole
    return whole + (1 if fraction > 0 and _unit_hash(seed, doc_id) < fraction else 0)


@register_stage
class MixtureStage(Stage):
    name = "mixture"
    #: applied twice, the weights would multiply
    not_after = frozenset({"mixture"})
    version = "1"
    config_class = MixtureConfig
    batch_size = WHOLE_SHARD_BATCH

    def weight_of(self, source: str, metadata: dict[str, Any]) -> float:
        if source in self.config.mixture_weights:
            return float(self.config.mixture_weights[source])
        weight = metadata.get("weight", 1.0)
        return float(weight) if isinstance(weight, int | float) else 1.0

    def process_batch(self, batch: Batch) -> Batch:
        columns = list(batch)
        out: dict[str, list[Any]] = {name: [] for name in [*columns, DROP_COLUMN]}
        for row_index in range(len(batch["id"])):
            row = {name: batch[name][row_index] for name in columns}
            metadata = document_metadata(row["metadata"])
            weight = self.weight_of(row["source"], metadata)
            copies = copies_for(row["id"], weight, self.config.mixture_seed)
            metadata["mixture_weight"] = weight
            if copies == 0:
                for name in columns:
                    out[name].append(row[name])
                out[DROP_COLUMN].append("mixture_sampled_out")
                continue
            for copy in range(copies):
                for name in columns:
                    out[name].append(row[name])
                out["id"][-1] = row["id"] if copy == 0 else f"{row['id']}#copy{copy}"
                out["metadata"][-1] = json.dumps({**metadata, "mixture_copy": copy}, ensure_ascii=False)
                out[DROP_COLUMN].append(None)
        return out

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        for doc_id in column_values(kept, "id"):
            if "#copy" in doc_id:
                counts["repeated_copies"] += 1
        return counts
