"""Render and validate the dataset card offline (uploading is a separate, thin step).

The card's YAML header carries a ``configs:`` entry pointing at the Parquet shards, so ``load_dataset(<folder>)``
needs no loading script (``datasets`` >= 4 refuses scripts anyway). A corpus written per component also has one
configuration per component (``load_dataset(<folder>, "web_math")``) beside the default one that holds every row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from hub_cards import card_environment
from mathcode_pile.card_text import markdown_text, plot_label
from mathcode_pile.stats import StageStats


@dataclass
class CompositionRow:
    source: str
    kind: str
    documents: int
    characters: int
    tokens: int | None = None
    #: Mixture weight of the component (1.0: taken once; 0.5: half sampled; 2.0: repeated twice).
    weight: float | None = None


@dataclass(frozen=True)
class ComponentConfig:
    """One component as its own dataset configuration: its name, its Parquet files and their split metadata."""

    name: str
    data_glob: str
    #: ``{"num_examples", "num_bytes", "download_size"}`` of the component's train split (see ``split_info`` below).
    split_info: dict[str, int]


@dataclass
class CardSection:
    title: str
    body: str


@dataclass(frozen=True)
class CardProse:
    """The parts of a dataset card that depend on what kind of dataset was built."""

    #: Opening paragraph (``{name}`` is replaced by the dataset's pretty name).
    description: str
    #: The command that built it (``{recipe}`` is replaced by the recipe path).
    build_command: str
    citation: str
    tags: tuple[str, ...]
    task_categories: tuple[str, ...] = ("text-generation",)


MATHCODER2_CITATION = """@inproceedings{lu2025mathcoder2,
  title={MathCoder2: Better Math Reasoning from Continued Pretraining on Model-translated Mathematical Code},
  author={Lu, Zimu and Zhou, Aojun and Wang, Ke and Ren, Houxing and Shi, Weikang and Pan, Junting and Zhan, Mingjie and Li, Hongsheng},
  booktitle={The Thirteenth International Conference on Learning Representations},
  year={2025}
}"""  # noqa: E501

PILE_PROSE = CardProse(
    description=(
        "{name} is a math pretraining corpus built with the MathCode-Pile pipeline, following *MathCoder2: Better "
        "Math Reasoning from Continued Pretraining on Model-translated Mathematical Code* (arXiv:2410.08196): "
        "mathematical text is filtered, deduplicated and decontaminated, and its computations are translated by a "
        "language model into Python code that is executed and kept only when its output matches the stated result."
    ),
    build_command="mathcode-pile build --config {recipe}",
    citation=MATHCODER2_CITATION,
    tags=("math", "code", "pretraining", "mathcode-pile"),
)


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
    #: The tokenizer whose tokens the composition table counts.
    tokenizer: str | None = None
    #: ``{"num_examples", "num_bytes", "download_size"}`` of the train split. ``datasets`` keys its local cache of a
    #: folder with a ``configs:`` header on this metadata (not on the files), so without it a rebuilt folder would
    #: load the rows of the previous build.
    split_info: dict[str, int] | None = None
    license: str = "other"
    prose: CardProse = PILE_PROSE
    #: One configuration per component, beside the default one (empty: the default configuration only).
    components: list[ComponentConfig] = field(default_factory=list)


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "n>1M"


def _dataset_info(split_info: dict[str, int], config_name: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {} if config_name is None else {"config_name": config_name}
    info["splits"] = [
        {"name": "train", "num_examples": split_info["num_examples"], "num_bytes": split_info["num_bytes"]}
    ]
    info["download_size"] = split_info["download_size"]
    info["dataset_size"] = split_info["num_bytes"]
    return info


def render_dataset_card(inputs: DatasetCardInputs) -> str:
    """The README.md text of the dataset (YAML metadata + markdown), from ``hub_cards/dataset_card.md.j2``."""
    total_documents = sum(row.documents for row in inputs.composition)
    configs = [("default", inputs.data_glob)] + [(c.name, c.data_glob) for c in inputs.components]
    card_data = DatasetCardData(
        pretty_name=inputs.pretty_name,
        license=inputs.license,
        language=["en"],
        task_categories=list(inputs.prose.task_categories),
        tags=list(inputs.prose.tags),
        size_categories=[_size_category(total_documents)],
        configs=[{"config_name": name, "data_files": [{"split": "train", "path": glob}]} for name, glob in configs],
    )
    if inputs.split_info is not None and inputs.components:
        # one entry per configuration: ``datasets`` keys the cache of each configuration on its own entry
        card_data.dataset_info = [_dataset_info(inputs.split_info, "default")] + [
            _dataset_info(component.split_info, component.name) for component in inputs.components
        ]
    elif inputs.split_info is not None:
        card_data.dataset_info = _dataset_info(inputs.split_info)
    has_tokens = bool(inputs.composition) and all(row.tokens is not None for row in inputs.composition)
    has_weights = any(row.weight is not None for row in inputs.composition)
    environment = card_environment()
    template = environment.get_template("dataset_card.md.j2")
    return template.render(
        card_data=card_data.to_yaml(),
        pretty_name=inputs.pretty_name,
        load_target=inputs.load_target,
        recipe=inputs.recipe,
        composition=inputs.composition,
        has_tokens=has_tokens,
        has_weights=has_weights,
        tokenizer=inputs.tokenizer,
        stage_counters=[s.to_dict() for s in inputs.stages if s.extra],
        total_documents=total_documents,
        total_characters=sum(row.characters for row in inputs.composition),
        total_tokens=sum(row.tokens or 0 for row in inputs.composition),
        stages=[s.to_dict() for s in inputs.stages],
        plots=inputs.plots,
        sections=inputs.sections,
        columns=inputs.columns,
        model=inputs.model,
        description=inputs.prose.description.format(name=markdown_text(inputs.pretty_name)),
        build_command=inputs.prose.build_command.format(recipe=inputs.recipe),
        citation=inputs.prose.citation,
        components=[(c.name, c.split_info["num_examples"]) for c in inputs.components],
    )


class CardValidationError(ValueError):
    pass


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def card_front_matter(text: str) -> dict[str, Any]:
    """The card's YAML header: from its first line ``---`` to the next line that is exactly ``---`` (a ``---`` inside
    a value, such as a dataset named ``a --- b``, does not end it)."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise CardValidationError("the dataset card does not start with a '---' YAML header closed by a '---' line")
    try:
        header = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise CardValidationError(f"the dataset card's YAML header does not parse: {exc}") from exc
    if not isinstance(header, dict):
        raise CardValidationError("the dataset card's YAML header is not a mapping")
    return header


def validate_dataset_card(text: str, folder: Path | None = None) -> DatasetCard:
    """Offline checks of a rendered card: parses with ``huggingface_hub``, its real front matter has the metadata the
    Hub needs (and says what ``huggingface_hub`` read), and every ``configs`` data file pattern and every image it
    links match files in ``folder`` (when given)."""
    header = card_front_matter(text)
    card = DatasetCard(text)
    data: dict[str, Any] = card.data.to_dict()
    for key in ("license", "configs", "pretty_name"):
        if not header.get(key):
            raise CardValidationError(f"dataset card metadata lacks '{key}'")
        if data.get(key) != header[key]:
            raise CardValidationError(f"dataset card metadata '{key}' is not read back as written")
    if folder is not None:
        for config in header["configs"]:
            for data_file in config["data_files"]:
                if not list(folder.glob(data_file["path"])):
                    raise CardValidationError(f"card config points at '{data_file['path']}' but no file matches")
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


#: Card sections published by the stages of the running build, keyed by stage name and rendered from that stage's
#: merged statistics when the card is written. A stage registers its renderer when it is constructed (in the main
#: process, also when all its shards are resumed), so the card explains every stage that ran without the pipeline
#: knowing any stage's details. Renderers of stages absent from a build's statistics are ignored.
_STAGE_SECTION_RENDERERS: dict[str, Callable[[StageStats], CardSection | None]] = {}


def publish_stage_section(stage_name: str, render: Callable[[StageStats], CardSection | None]) -> None:
    """Register how the card describes stage ``stage_name`` (the latest registration wins)."""
    _STAGE_SECTION_RENDERERS[stage_name] = render


def stage_sections(stages: list[StageStats]) -> list[CardSection]:
    """The published sections of the stages in ``stages``, in pipeline order."""
    sections = []
    for stats in stages:
        render = _STAGE_SECTION_RENDERERS.get(stats.stage)
        section = render(stats) if render is not None else None
        if section is not None:
            sections.append(section)
    return sections


def plot_composition(rows: list[CompositionRow], path: Path) -> None:
    """Horizontal bars of tokens (or characters, without a tokenizer) per component, with their share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_tokens = bool(rows) and all(row.tokens is not None for row in rows)
    values = [(row.tokens or 0) if use_tokens else row.characters for row in rows]
    total = sum(values) or 1
    figure, axis = plt.subplots(figsize=(6.0, max(1.8, 0.45 * len(rows) + 1.0)), dpi=100)
    bars = axis.barh([plot_label(row.source) for row in rows], values, color="#3b7dd8")
    for bar, value in zip(bars, values, strict=True):
        axis.annotate(
            f" {100 * value / total:.1f}%", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center"
        )
    axis.set_xlabel("tokens" if use_tokens else "characters")
    axis.set_title("Composition by component")
    axis.invert_yaxis()
    axis.margins(x=0.2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def plot_length_histogram(lengths_by_source: dict[str, list[int]], path: Path, unit: str = "tokens") -> None:
    """Distribution of document lengths per component (log-spaced bins, step outlines so components overlay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(6.0, 3.2), dpi=100)
    longest = max((max(v) for v in lengths_by_source.values() if v), default=1)
    bins = np.logspace(0, np.log10(max(longest, 2)) + 0.05, 30)
    for source, lengths in sorted(lengths_by_source.items()):
        if lengths:
            axis.hist(lengths, bins=bins, histtype="step", linewidth=1.5, label=plot_label(source))
    axis.set_xscale("log")
    axis.set_xlabel(f"document length ({unit})")
    axis.set_ylabel("documents")
    axis.set_title("Document lengths per component")
    if lengths_by_source:
        axis.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
