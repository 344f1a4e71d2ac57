"""Stage ``dedup``: MinHash LSH near-duplicate removal across all sources, first document of each cluster kept.

Keep-first needs every earlier document, so this stage is sequential: it runs in the main process whatever
``num_proc`` says (signatures are computed in bulk by datasketch; ``benchmarks/dedup.py`` measures it). Its index must
also survive resumption: after each batch the signatures of the documents it kept are saved under
``<work_dir>/dedup_signatures/<stage fingerprint>/``, and a resumed build reloads them before its first batch, so a
document in a later shard is still compared with the documents of shards finished in an earlier run. A document
re-processed after an interrupted batch finds its own key in the index and is kept again, never matched with itself;
the same key seen twice in one run (a row repeated in its source) keeps only its first copy. Keys hold source, id and
a text digest as a JSON list, so no character of a source name or id can make two keys ambiguous.
At corpus scale the same decision is made by datatrove's MinHash pipeline over shards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mathcode_pile.card import CardSection, publish_stage_section
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.dedup.minhash import DuplicateOf, NearDuplicateIndex
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, StageContext, register_stage
from mathcode_pile.stages.columns import WHOLE_SHARD_BATCH
from mathcode_pile.stats import StageStats

logger = logging.getLogger(__name__)

SIGNATURES_DIR = "dedup_signatures"


#: set (to 1) in the stats of a dedup run by datatrove's MinHash steps rather than by this stage
DATATROVE_MINHASH_COUNTER = "datatrove_minhash"


@dataclass
class DedupConfig(ValidatedConfig):
    dedup_threshold: float = field(
        default=0.7,
        metadata={"help": "Estimated Jaccard similarity of shingles at or above which two are duplicates."},
    )
    dedup_ngram_size: int = field(default=5, metadata={"help": "Words per shingle (normalized text)."})
    dedup_num_perm: int = field(default=128, metadata={"help": "MinHash permutations (signature length)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.dedup_threshold <= 1.0:
            raise RecipeError("dedup_threshold must be in (0, 1]")
        if self.dedup_ngram_size < 1 or self.dedup_num_perm < 2:
            raise RecipeError("dedup_ngram_size must be >= 1 and dedup_num_perm >= 2")


def _document_key(source: str, doc_id: str, text: str) -> str:
    """Source, id and a text digest as one JSON string: unambiguous whatever characters the source and id hold."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return json.dumps([source, doc_id, digest], ensure_ascii=False)


def _split_key(key: str) -> tuple[str, str]:
    source, doc_id, _ = json.loads(key)
    return source, doc_id


@register_stage
class DedupStage(Stage):
    name = "dedup"
    #: after the mixture, dedup would remove the copies a weight above 1 made (and the card would still state it)
    not_after = frozenset({"mixture"})
    rewrites_columns = frozenset({"metadata"})
    version = "2"  # 2: keys are JSON lists (ids holding the old separator broke resumption)
    config_class = DedupConfig
    batch_size = WHOLE_SHARD_BATCH

    def __init__(self, config: DedupConfig, context: StageContext) -> None:
        # sequential by design (see module docstring): never split over worker processes
        super().__init__(config, dataclasses.replace(context, num_proc=1))
        self._index: NearDuplicateIndex | None = None
        #: Keys this process has kept: one seen again is a repeat of a document of this run, not a resumed one.
        self._kept_this_run: set[str] = set()
        self._fingerprint: str | None = None
        self._counters: Counter[str] = Counter()
        publish_stage_section(self.name, self.card_section)

    def fingerprint(self, input_fingerprint: str) -> str:
        self._fingerprint = super().fingerprint(input_fingerprint)
        return self._fingerprint

    @property
    def signature_dir(self) -> Path:
        if self._fingerprint is None:
            raise RuntimeError("stage 'dedup' runs through mathcode_pile.runner.run_stage (fingerprint first)")
        return self.context.work_dir / SIGNATURES_DIR / self._fingerprint

    def _open_index(self) -> NearDuplicateIndex:
        index = NearDuplicateIndex(
            self.config.dedup_threshold, self.config.dedup_num_perm, self.config.dedup_ngram_size
        )
        root = self.signature_dir.parent
        if root.exists():
            for stale in root.iterdir():
                if stale.is_dir() and stale.name != self.signature_dir.name:
                    shutil.rmtree(stale)
        self.signature_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.signature_dir.glob("*.npz")):
            with np.load(path) as saved:
                for key, hashvalues in zip(saved["keys"].tolist(), saved["hashvalues"], strict=True):
                    index.add(key, hashvalues)
        if len(index):
            logger.info("dedup: resumed with %d kept document(s) from %s", len(index), self.signature_dir)
        return index

    def _save_kept(self, keys: list[str], hashvalues: list[np.ndarray]) -> None:
        if not keys:
            return
        name = hashlib.sha1("\n".join(keys).encode("utf-8")).hexdigest()[:20]
        tmp = self.signature_dir / f"{name}.partial"
        with tmp.open("wb") as handle:
            np.savez(handle, keys=np.array(keys), hashvalues=np.stack(hashvalues))
        tmp.replace(self.signature_dir / f"{name}.npz")

    def process_batch(self, batch: Batch) -> Batch:
        if self._index is None:
            self._index = self._open_index()
        index = self._index
        signatures = index.signatures(batch["text"])
        reasons: list[str | None] = []
        metadata_out: list[str] = []
        new_keys: list[str] = []
        new_signatures: list[np.ndarray] = []
        rows = zip(batch["id"], batch["text"], batch["source"], batch["metadata"], signatures, strict=True)
        for doc_id, text, source, raw, hashvalues in rows:
            key = _document_key(source, doc_id, text)
            was_indexed = key in index
            if key in self._kept_this_run:  # the same (source, id, text) twice: the later copy goes
                duplicate: DuplicateOf | None = DuplicateOf(key, 1.0)
            else:
                duplicate = index.check_and_add(key, hashvalues)
            if duplicate is None:
                self._kept_this_run.add(key)
                reasons.append(None)
                metadata_out.append(raw)
                if not was_indexed:
                    new_keys.append(key)
                    new_signatures.append(hashvalues)
                continue
            kept_source, kept_id = _split_key(duplicate.key)
            self._counters["cross_source_duplicates" if kept_source != source else "same_source_duplicates"] += 1
            reasons.append("near_duplicate")
            metadata = document_metadata(raw)
            metadata["duplicate_of"] = kept_id
            metadata["duplicate_similarity"] = round(duplicate.similarity, 4)
            metadata_out.append(json.dumps(metadata, ensure_ascii=False))
        self._save_kept(new_keys, new_signatures)
        return {**batch, "metadata": metadata_out, DROP_COLUMN: reasons}

    def extra_counters(self) -> Counter[str]:
        return Counter(self._counters)

    def card_section(self, stats: StageStats) -> CardSection:
        removed = stats.dropped.get("near_duplicate", 0)
        settings = (
            f"{self.config.dedup_ngram_size}-word shingles of normalized text, {self.config.dedup_num_perm} "
            f"permutations, estimated Jaccard similarity >= {self.config.dedup_threshold}; the first document of each "
            f"cluster is kept. {removed:,} of {stats.rows_in:,} documents were removed"
        )
        if stats.extra.get(DATATROVE_MINHASH_COUNTER):
            body = (
                "Near-duplicates are removed with datatrove's multi-stage MinHash (signatures, buckets, clusters, "
                f"filter) over tasks: {settings}."
            )
        else:
            cross = stats.extra.get("cross_source_duplicates", 0)
            body = (
                f"Near-duplicates are removed with MinHash LSH (datasketch): {settings}, {cross:,} of them "
                "duplicates of a document from another source."
            )
        return CardSection("Deduplication", body)
