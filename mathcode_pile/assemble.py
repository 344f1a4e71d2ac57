"""Write the final corpus: Parquet shards, statistics, plots and the dataset card, in one loadable folder.

Per component (source) the card reports documents, characters, tokens counted with a real tokenizer (by default the
embedded SmolLM2 tokenizer, which loads offline; any Hub id or local folder works) and the mixture weight the
``mixture`` stage applied, which it reads back from each row's metadata. Besides the funnel, two plots are written:
composition by component and document lengths per component. Stages add their own card sections through
:func:`mathcode_pile.card.publish_stage_section`.

Each component is written to its own folder, ``data/<component>/train-*.parquet``, and the card declares it as a
configuration of its own beside the default one that reads every folder: an ablation trains on any component or set
of components of one build (``load_dataset(<folder>, "translated_code")``) without rebuilding.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset

from mathcode_pile.card import (
    PILE_PROSE,
    CardProse,
    CardSection,
    ComponentConfig,
    CompositionRow,
    DatasetCardInputs,
    plot_composition,
    plot_funnel,
    plot_length_histogram,
    render_dataset_card,
    stage_sections,
    validate_dataset_card,
)
from mathcode_pile.runner import write_parquet
from mathcode_pile.stats import StageStats, save_stats

logger = logging.getLogger(__name__)

#: The tokenizer counted with unless a build names another: the embedded model's, so ``make pile`` stays offline.
DEFAULT_TOKENIZER = "embedded"
_TOKENIZE_BATCH = 256


def embedded_tokenizer_dir() -> Path:
    """A ``save_pretrained`` folder of the embedded SmolLM2 tokenizer, extracted from the GGUF file once.

    Reading the tokenizer out of the 98 MB GGUF takes about 10 s, so the result is cached beside the converted model
    (which, when present, already holds the same tokenizer).
    """
    from mathcode_pile.llm.embedded import cache_root, find_embedded_gguf

    converted = cache_root() / "smollm2-135m-instruct"
    if (converted / ".complete").exists() and (converted / "tokenizer.json").exists():
        return converted
    target = cache_root() / "smollm2-135m-instruct-tokenizer"
    if (target / "tokenizer.json").exists():
        return target
    from transformers import AutoTokenizer

    gguf_path = find_embedded_gguf()
    logger.info("extracting the tokenizer of %s into %s (one time)", gguf_path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    staging = target.with_name(target.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    tokenizer.save_pretrained(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    """``embedded`` (offline default), a local folder or a Hub id; loaded once per process (a build checks it can be
    loaded before its first stage and counts with it at the end)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_tokenizer_dir() if name == DEFAULT_TOKENIZER else name)


def tokenizer_display_name(name: str | None) -> str | None:
    """How the card names the tokenizer: the embedded one by the model it belongs to, others by their id or path."""
    if name == DEFAULT_TOKENIZER:
        return "SmolLM2-135M-Instruct (embedded)"
    return name


def count_tokens(dataset: Dataset, tokenizer: Any) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Tokens per source and the token length of every document per source (no special tokens added)."""
    totals: Counter[str] = Counter()
    lengths: dict[str, list[int]] = {}
    for start in range(0, len(dataset), _TOKENIZE_BATCH):
        batch = dataset[start : start + _TOKENIZE_BATCH]
        encoded = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        for source, ids in zip(batch["source"], encoded, strict=True):
            totals[source] += len(ids)
            lengths.setdefault(source, []).append(len(ids))
    return dict(totals), lengths


def mixture_weights_from_metadata(dataset: Dataset) -> dict[str, float]:
    """The weight each source's rows carry in their metadata (``mixture_weight`` once sampled, else ``weight``)."""
    from mathcode_pile.sources import document_metadata

    weights: dict[str, float] = {}
    if "metadata" not in dataset.column_names:
        return weights
    for source, raw in zip(dataset["source"], dataset["metadata"], strict=True):
        if source in weights:
            continue
        metadata = document_metadata(raw)
        weight = metadata.get("mixture_weight", metadata.get("weight"))
        if isinstance(weight, int | float):
            weights[source] = float(weight)
    return weights


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


def _split_info(dataset: Dataset, shards: list[Path]) -> dict[str, int]:
    return {
        "num_examples": len(dataset),
        "num_bytes": int(dataset.data.nbytes),
        "download_size": sum(path.stat().st_size for path in shards),
    }


def write_component_shards(
    dataset: Dataset, data_dir: Path, rows_per_shard: int
) -> tuple[dict[str, int], list[ComponentConfig]]:
    """``data_dir/<component>/train-*.parquet`` per component (a row's ``source``), rows in their original order.

    Returns the split metadata of the whole corpus and one :class:`ComponentConfig` per component. Anything an
    earlier build left in ``data_dir`` is removed first, so no stale component survives.
    """
    from mathcode_pile.sources import COMPONENT_NAME

    if data_dir.exists():
        shutil.rmtree(data_dir)
    rows_by_component: dict[str, list[int]] = {}
    for index, source in enumerate(dataset.with_format("arrow")["source"].to_pylist()):
        rows_by_component.setdefault(source, []).append(index)
    components: list[ComponentConfig] = []
    totals: Counter[str] = Counter()
    for name in sorted(rows_by_component):
        if not COMPONENT_NAME.fullmatch(name) or name == "default":
            raise ValueError(
                f"component {name!r} (a 'source' value) cannot name a dataset configuration: use letters, digits, "
                "'_', '.' or '-' (and not 'default')"
            )
        part = dataset.select(rows_by_component[name]).flatten_indices(keep_in_memory=True)
        info = _split_info(part, write_parquet_shards(part, data_dir / name, rows_per_shard))
        components.append(ComponentConfig(name=name, data_glob=f"data/{name}/train-*.parquet", split_info=info))
        totals.update(info)
    return dict(totals), components


def _kinds_from_metadata(dataset: Dataset) -> dict[str, str]:
    from mathcode_pile.sources import document_metadata

    kinds: dict[str, str] = {}
    if "metadata" not in dataset.column_names or not len(dataset):
        return kinds
    for source, raw in zip(dataset["source"], dataset["metadata"], strict=True):
        if source not in kinds:
            kind = document_metadata(raw).get("kind")
            if isinstance(kind, str):
                kinds[source] = kind
    return kinds


def composition_rows(
    dataset: Dataset,
    kinds: dict[str, str],
    token_counts: dict[str, int] | None,
    weights: dict[str, float] | None = None,
) -> list[CompositionRow]:
    """One row per component (a source of the recipe, or a component a stage added such as the translated code,
    whose kind is read from its rows' metadata)."""
    kinds = {**_kinds_from_metadata(dataset), **kinds}
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
            weight=None if weights is None else weights.get(name),
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
    tokenizer: str | None = DEFAULT_TOKENIZER,
    weights: dict[str, float] | None = None,
    prose: CardProse = PILE_PROSE,
    component_configs: bool = True,
) -> Path:
    """Write ``output_dir`` (data/, README.md, stats.json, composition.json, plots/) and validate the card against it.

    Tokens are counted with ``tokenizer`` unless ``token_counts`` are given (``tokenizer=None`` leaves them out);
    ``weights`` default to the mixture weights recorded in the rows' metadata. ``output_dir`` ends up holding exactly
    what a Hub upload sends: stale plots of an earlier build are removed. With ``component_configs`` (and rows to
    write) every component gets its own folder and configuration; otherwise the shards sit in ``data/`` directly.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    components: list[ComponentConfig] = []
    data_glob = "data/train-*.parquet"
    if component_configs and len(dataset):
        split_info, components = write_component_shards(dataset, output_dir / "data", rows_per_shard)
        data_glob = "data/*/train-*.parquet"
    else:
        split_info = _split_info(dataset, write_parquet_shards(dataset, output_dir / "data", rows_per_shard))
    save_stats(stats, output_dir / "stats.json")
    plots_dir = output_dir / "plots"
    if plots_dir.exists():
        shutil.rmtree(plots_dir)
    plot_funnel(stats, plots_dir / "funnel.png")
    lengths: dict[str, list[int]] = {}
    length_unit = "characters"
    if token_counts is None and tokenizer is not None and len(dataset):
        token_counts, lengths = count_tokens(dataset, load_tokenizer(tokenizer))
        length_unit = "tokens"
    elif len(dataset):
        for source, text in zip(dataset["source"], dataset["text"], strict=True):
            lengths.setdefault(source, []).append(len(text))
    if weights is None:
        weights = mixture_weights_from_metadata(dataset) or None
    composition = composition_rows(dataset, kinds, token_counts, weights)
    plot_composition(composition, plots_dir / "composition.png")
    plot_length_histogram(lengths, plots_dir / "lengths.png", unit=length_unit)
    inputs = DatasetCardInputs(
        pretty_name=pretty_name,
        load_target=load_target or str(output_dir),
        recipe=recipe,
        composition=composition,
        stages=stats,
        columns=list(dataset.column_names),
        plots=[
            {"title": "Rows kept and dropped per stage", "path": "plots/funnel.png"},
            {"title": "Composition by component", "path": "plots/composition.png"},
            {"title": "Document lengths per component", "path": "plots/lengths.png"},
        ],
        sections=(sections or []) + stage_sections(stats),
        model=model,
        tokenizer=tokenizer_display_name(tokenizer) if token_counts is not None else None,
        split_info=split_info,
        prose=prose,
        data_glob=data_glob,
        components=components,
    )
    card_text = render_dataset_card(inputs)
    (output_dir / "README.md").write_text(card_text, encoding="utf-8")
    validate_dataset_card(card_text, output_dir)
    (output_dir / "composition.json").write_text(
        json.dumps([row.__dict__ for row in inputs.composition], indent=2) + "\n", encoding="utf-8"
    )
    logger.info("wrote %d rows to %s", len(dataset), output_dir)
    return output_dir
