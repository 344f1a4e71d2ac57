"""Stage ``decontaminate``: drop every document that contains a benchmark test item.

The recipe key ``decontam_benchmarks`` takes benchmark files, folders or Hub ids (``openai/gsm8k:main``); left
empty it means the offline test sets bundled with the project (:func:`mathcode_pile.paths.benchmarks_dir`). A
dropped row's reason names the benchmark (``contaminated_gsm8k``), so the funnel counts removals per benchmark, and
its metadata records the matching test id and words (kept in the stage's ``*.dropped.parquet`` files for
inspection).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.card import CardSection, publish_stage_section
from mathcode_pile.card_text import markdown_text
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.decontamination.benchmarks import resolve_benchmark_files
from mathcode_pile.decontamination.index import NgramIndex
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, StageContext, register_stage
from mathcode_pile.stages.columns import FILTER_BATCH
from mathcode_pile.stats import StageStats

DROP_PREFIX = "contaminated_"


@dataclass
class DecontaminateConfig(ValidatedConfig):
    decontam_benchmarks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmark test sets: files, folders of files or Hub ids (id[:config[:split]]). Empty: the "
            "offline test sets bundled with the project (GSM8K, MATH, SAT, OCW, MMLU-STEM, SVAMP, OlympiadBench, ...)."
        },
    )
    decontam_ngram_size: int = field(default=13, metadata={"help": "n-gram size in normalized tokens."})
    decontam_min_item_tokens: int = field(
        default=8,
        metadata={"help": "Test items shorter than this are too generic to match alone (counted in the card)."},
    )
    decontam_include_solutions: bool = field(
        default=False, metadata={"help": "Also index the benchmarks' worked solutions, not only their questions."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decontam_ngram_size < 1 or self.decontam_min_item_tokens < 1:
            raise RecipeError("decontam_ngram_size and decontam_min_item_tokens must be >= 1")

    def references(self) -> list[str]:
        if self.decontam_benchmarks:
            return list(self.decontam_benchmarks)
        from mathcode_pile.decontamination.cli import default_benchmarks

        return default_benchmarks()


@register_stage
class DecontaminateStage(Stage):
    name = "decontaminate"
    rewrites_columns = frozenset({"metadata"})
    version = "1"
    config_class = DecontaminateConfig
    batch_size = FILTER_BATCH

    def __init__(self, config: DecontaminateConfig, context: StageContext) -> None:
        super().__init__(config, context)
        self._index: NgramIndex | None = None
        publish_stage_section(self.name, self.card_section)

    @property
    def index(self) -> NgramIndex:
        if self._index is None:
            from mathcode_pile.decontamination.run import build_index

            self._index = build_index(
                self.config.references(),
                self.config.decontam_ngram_size,
                self.config.decontam_min_item_tokens,
                self.config.decontam_include_solutions,
            )
        return self._index

    def fingerprint_config(self) -> dict[str, Any]:
        # the test sets' content is an input too: edited benchmark files must invalidate earlier results
        material = []
        for reference in self.config.references():
            for path in resolve_benchmark_files(reference) or [Path(reference)]:
                stat = path.stat() if path.exists() else None
                material.append([str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
        digest = hashlib.sha256(json.dumps(material).encode()).hexdigest()[:16]
        return {**super().fingerprint_config(), "benchmark_files": digest}

    def process_batch(self, batch: Batch) -> Batch:
        index = self.index
        reasons: list[str | None] = []
        metadata_out: list[str] = []
        for match, raw in zip(index.find_batch(batch["text"]), batch["metadata"], strict=True):
            if match is None:
                reasons.append(None)
                metadata_out.append(raw)
                continue
            reasons.append(DROP_PREFIX + match.benchmark)
            metadata = document_metadata(raw)
            metadata["contamination"] = match.to_dict()
            metadata_out.append(json.dumps(metadata, ensure_ascii=False))
        return {**batch, "metadata": metadata_out, DROP_COLUMN: reasons}

    def __getstate__(self) -> dict[str, Any]:
        # build once here, not once per worker process: the pickled index travels to every worker
        _ = self.index
        return dict(self.__dict__)

    def card_section(self, stats: StageStats) -> CardSection:
        summary = self.index.summary()
        lines = [
            f"Documents containing a benchmark test item are removed: {self.config.decontam_ngram_size}-gram overlap "
            "of normalized text (case, whitespace, punctuation and LaTeX delimiters ignored), checked in the useful "
            "direction (test item inside document). Items shorter than the n-gram match by normalized containment; "
            f"items under {self.index.min_item_tokens} tokens are too generic to match alone.",
            "",
            "| benchmark | test items | indexed | too short | documents removed |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, counts in summary.items():
            removed = stats.dropped.get(DROP_PREFIX + name, 0)
            lines.append(
                f"| {markdown_text(name)} | {counts['items']:,} | {counts['indexed']:,} | {counts['too_short']:,} | "
                f"{removed:,} |"
            )
        return CardSection("Decontamination", "\n".join(lines))
