"""Render and validate the dataset card offline (uploading is a separate, thin step).

The card's YAML header carries a ``configs:`` entry pointing at the Parquet shards, so ``load_dataset(<folder or repo>)``
needs no loading script (``datasets`` >= 4 refuses scripts anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from hub_cards import TEMPLATES_DIR
from mathcode_pile.stats import StageStats


@dataclass
class CompositionRow:
    source: str
    kind: str
    documents: int
    characters: int
    tokens: int | None = None


@dataclass
class CardSection:
    title: str
    body: str


@dataclass
class DatasetCardInputs:
    pretty_name: str
    load_target: str
    recipe: str
    composition: list[CompositionRow]
    stages: list[StageStats]
    columns: list[str]
    data_glob: str = "data/train-*.parquet"
    plots: list[dict[str, str]] = field(default_factory=list)
    sections: list[CardSection] = field(default_factory=list)
    model: str | None = None
    license: str = "other"
    tags: Sequence[str] = ("math", "code", "pretraining", "mathcode-pile")


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "n>1M"


def render_dataset_card(inputs: DatasetCardInputs) -> str:
    """The README.md text of the dataset (YAML metadata + markdown), from ``hub_cards/dataset_card.md.j2``."""
    total_documents = sum(row.documents for row in inputs.composition)
    card_data = DatasetCardData(
        pretty_name=inputs.pretty_name,
        license=inputs.license,
        language=["en"],
        task_categories=["text-generation"],
        tags=list(inputs.tags),
        size_categories=[_size_category(total_documents)],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": inputs.data_glob}]}],
    )
    has_tokens = bool(inputs.composition) and all(row.tokens is not None for row in inputs.composition)
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)), undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template("dataset_card.md.j2")
    return template.render(
        card_data=card_data.to_yaml(),
        pretty_name=inputs.pretty_name,
        load_target=inputs.load_target,
        recipe=inputs.recipe,
        composition=inputs.composition,
        has_tokens=has_tokens,
        total_documents=total_documents,
        total_characters=sum(row.characters for row in inputs.composition),
        total_tokens=sum(row.tokens or 0 for row in inputs.composition),
        stages=[s.to_dict() for s in inputs.stages],
        plots=inputs.plots,
        sections=inputs.sections,
        columns=inputs.columns,
        model=inputs.model,
    )


class CardValidationError(ValueError):
    pass


def validate_dataset_card(text: str, folder: Path | None = None) -> DatasetCard:
    """Offline checks of a rendered card: parses with ``huggingface_hub``, has the metadata the Hub needs, and every
    ``configs`` data file pattern and every image it links match files in ``folder`` (when given)."""
    card = DatasetCard(text)
    data: dict[str, Any] = card.data.to_dict()
    for key in ("license", "configs", "pretty_name"):
        if not data.get(key):
            raise CardValidationError(f"dataset card metadata lacks '{key}'")
    header = text.split("---", 2)[1]
    yaml.safe_load(header)  # raises on broken YAML
    if folder is not None:
        for config in data["configs"]:
            for data_file in config["data_files"]:
                if not list(folder.glob(data_file["path"])):
                    raise CardValidationError(f"card config points at '{data_file['path']}' but no file matches")
        import re

        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card.text):
            if not (folder / image).is_file():
                raise CardValidationError(f"card links image '{image}' which is not in {folder}")
    return card


def plot_funnel(stages: list[StageStats], path: Path) -> None:
    """Bar chart of rows kept after each stage, with drops stacked on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.stage for s in stages]
    kept = [s.rows_kept for s in stages]
    dropped = [s.rows_dropped for s in stages]
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(names)), 3.2), dpi=100)
    axis.bar(names, kept, color="#3b7dd8", label="kept")
    axis.bar(names, dropped, bottom=kept, color="#e0a030", label="dropped")
    axis.set_ylabel("rows")
    axis.set_title("Rows kept and dropped per stage")
    axis.legend()
    plt.setp(axis.get_xticklabels(), rotation=20, ha="right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # fixed metadata keeps the PNG byte-identical between identical builds
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
