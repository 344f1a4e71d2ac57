"""Write the final corpus: Parquet shards, statistics, plots and the dataset card, in one loadable folder."""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections import Counter
from pathlib import Path

from datasets import Dataset

from mathcode_pile.card import (
    CardSection,
    CompositionRow,
    DatasetCardInputs,
    plot_funnel,
    render_dataset_card,
    validate_dataset_card,
)
from mathcode_pile.runner import write_parquet
from mathcode_pile.stats import StageStats, save_stats

logger = logging.getLogger(__name__)


def write_parquet_shards(dataset: Dataset, data_dir: Path, rows_per_shard: int, split: str = "train") -> list[Path]:
    """``<split>-00000-of-0000N.parquet`` files, the Hub's naming; previous shards are removed first."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    num_shards = max(1, math.ceil(len(dataset) / rows_per_shard))
    paths = []
    for index in range(num_shards):
        shard = dataset.select(range(index * rows_per_shard, min(len(dataset), (index + 1) * rows_per_shard)))
        path = data_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        write_parquet(shard, path)
        paths.append(path)
    return paths


def composition_rows(dataset: Dataset, kinds: dict[str, str], token_counts: dict[str, int] | None) -> list[CompositionRow]:
    documents = Counter(dataset["source"]) if len(dataset) else Counter()
    characters: Counter[str] = Counter()
    for source, text in zip(dataset["source"], dataset["text"], strict=True) if len(dataset) else []:
        characters[source] += len(text)
    return [
        CompositionRow(
            source=name,
            kind=kinds.get(name, ""),
            documents=documents[name],
            characters=characters[name],
            tokens=None if token_counts is None else token_counts.get(name, 0),
        )
        for name in sorted(set(kinds) | set(documents))
    ]


def assemble_corpus(
    dataset: Dataset,
    stats: list[StageStats],
    output_dir: Path,
    *,
    pretty_name: str,
    recipe: str,
    kinds: dict[str, str],
    rows_per_shard: int,
    load_target: str | None = None,
    model: str | None = None,
    token_counts: dict[str, int] | None = None,
    sections: list[CardSection] | None = None,
) -> Path:
    """Write ``output_dir`` (data/, README.md, stats.json, plots/) and validate the card against it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_parquet_shards(dataset, output_dir / "data", rows_per_shard)
    save_stats(stats, output_dir / "stats.json")
    plot_funnel(stats, output_dir / "plots" / "funnel.png")
    inputs = DatasetCardInputs(
        pretty_name=pretty_name,
        load_target=load_target or str(output_dir),
        recipe=recipe,
        composition=composition_rows(dataset, kinds, token_counts),
        stages=stats,
        columns=list(dataset.column_names),
        plots=[{"title": "Rows kept and dropped per stage", "path": "plots/funnel.png"}],
        sections=sections or [],
        model=model,
    )
    card_text = render_dataset_card(inputs)
    (output_dir / "README.md").write_text(card_text, encoding="utf-8")
    validate_dataset_card(card_text, output_dir)
    (output_dir / "composition.json").write_text(
        json.dumps([row.__dict__ for row in inputs.composition], indent=2) + "\n", encoding="utf-8"
    )
    logger.info("wrote %d rows to %s", len(dataset), output_dir)
    return output_dir
