"""Training documents from any ``load_dataset`` target, or a weighted mixture of several, as one ``text`` column.

A source is what ``datasets.load_dataset`` accepts: a Hub id (``MathGenie/MathCode-Pile``), a local dataset folder
(``data/mathcode_pile``, the pipeline's output) or a builder with files (``json`` + ``data_files``). Its ``weight``
is the number of passes over it per epoch, the convention of pretraining mixtures (the Pile's "epochs" column):
``2.0`` repeats every document twice, ``0.5`` keeps a seeded random half. Empty documents are skipped and counted;
a row whose text cannot be built is an error naming the source, the row and the field.

A corpus built by ``mathcode-pile build`` has one configuration per component, so an ablation trains on any set of
components of one build: ``name`` (or ``--dataset_config``) takes one configuration, a list of them, or a
comma-separated string, and each becomes a source of its own, counted on its own in the model card.
"""

from __future__ import annotations

import logging
import math
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset, concatenate_datasets, load_dataset

from mathcode_pile.config import RecipeError, ValidatedConfig

logger = logging.getLogger(__name__)

#: ``load_dataset`` builder names that read local files rather than a Hub repository or a dataset folder.
FILE_BUILDERS = ("json", "csv", "parquet", "text", "arrow")
SOURCE_COLUMN = "source"
#: Builder for a single local file given as ``dataset_name``, by suffix.
BUILDERS_BY_SUFFIX = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}


@dataclass
class DataSource(ValidatedConfig):
    """One entry of ``dataset_mixture``: the arguments of ``load_dataset`` plus how to read text and its weight."""

    path: str = field(metadata={"help": "Hub id, local dataset folder, or builder name (json, parquet, ...)."})
    name: str | list[str] | None = field(
        default=None,
        metadata={"help": "Dataset configuration name, or several (a list or 'a,b'): one source per configuration."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "Sub-folder of the dataset to read."})
    data_files: str | list[str] | None = field(default=None, metadata={"help": "File(s) for a file builder."})
    split: str = field(default="train", metadata={"help": "Split to read."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    text_field: str = field(default="text", metadata={"help": "Column holding the document text."})
    text_template: str | None = field(
        default=None, metadata={"help": "Build the text from several columns, e.g. '{question}\\n\\n{rationale}'."}
    )
    weight: float = field(default=1.0, metadata={"help": "Passes over this source per epoch (> 0)."})
    label: str | None = field(default=None, metadata={"help": "Name shown in logs and the model card."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.weight > 0:
            raise RecipeError(f"dataset_mixture source '{self.path}': weight must be > 0, got {self.weight}")

    @property
    def display_name(self) -> str:
        if self.label:
            return self.label
        if self.path in FILE_BUILDERS and self.data_files:
            files = self.data_files if isinstance(self.data_files, list) else [self.data_files]
            return ",".join(files)
        return self.path if not self.name else f"{self.path}:{self.name}"

    @property
    def hub_id(self) -> str | None:
        """The Hub dataset id, when the source is one (not a builder name and not a local folder)."""
        if self.path in FILE_BUILDERS or Path(self.path).exists() or self.path.count("/") != 1:
            return None
        return self.path

    @property
    def card_link(self) -> str | None:
        """Where the source's dataset card lives: the Hub page, or the local folder's README.md."""
        if self.hub_id:
            return f"https://huggingface.co/datasets/{self.hub_id}"
        readme = Path(self.path) / "README.md"
        return str(readme) if readme.is_file() else None


@dataclass
class SourceReport:
    """What one source contributed: rows read, empty rows skipped, documents used after weighting."""

    name: str
    weight: float
    rows_read: int
    skipped_empty: int
    documents: int
    hub_id: str | None = None
    card_link: str | None = None
    tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_names(name: str | list[str] | None) -> list[str | None]:
    """The configurations a ``name`` selects: ``None`` (the default one), one name, a list or ``"a,b"``."""
    if name is None:
        return [None]
    names = name if isinstance(name, list) else name.split(",")
    selected = [item.strip() for item in names if item.strip()]
    if not selected:
        raise RecipeError(f"dataset configuration {name!r} names no configuration")
    return list(selected)


def parse_mixture(entries: list[dict[str, Any]], where: str = "dataset_mixture") -> list[DataSource]:
    """Turn the recipe's list of mappings into sources (one per configuration an entry names); unknown keys are
    errors naming the entry."""
    known = set(DataSource.__dataclass_fields__)
    sources = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RecipeError(f"{where}[{index}]: expected a mapping with at least 'path', got {entry!r}")
        unknown = sorted(set(entry) - known)
        if unknown:
            raise RecipeError(f"{where}[{index}]: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        if "path" not in entry:
            raise RecipeError(f"{where}[{index}]: 'path' is required")
        try:
            for config in config_names(DataSource(**entry).name):
                sources.append(DataSource(**{**entry, "name": config}))
        except RecipeError as exc:
            raise RecipeError(f"{where}[{index}]: {exc}") from exc
    return sources


def template_fields(template: str) -> list[str]:
    """Top-level field names a ``str.format`` template reads (``{question}``, ``{row[0]}`` -> ``row``)."""
    names = []
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name:
            names.append(field_name.split(".")[0].split("[")[0])
    return names


def _extract_text(
    batch: dict[str, list[Any]], indices: list[int], source: DataSource, source_name: str
) -> dict[str, list[Any]]:
    columns = list(batch)
    texts: list[str] = []
    for offset, row_index in enumerate(indices):
        row = {column: batch[column][offset] for column in columns}
        if source.text_template is not None:
            missing = [name for name in template_fields(source.text_template) if row.get(name) is None]
            if missing:
                raise RecipeError(
                    f"source '{source_name}' row {row_index}: text_template field {missing[0]!r} is missing "
                    f"(columns: {columns})"
                )
            text = source.text_template.format_map(row)
        else:
            value = row[source.text_field]
            if value is not None and not isinstance(value, str):
                raise RecipeError(
                    f"source '{source_name}' row {row_index}: field '{source.text_field}' holds "
                    f"{type(value).__name__}, expected text"
                )
            text = value or ""
        texts.append(text)
    return {"text": texts, SOURCE_COLUMN: [source_name] * len(texts)}


def _apply_weight(dataset: Dataset, weight: float, seed: int) -> Dataset:
    whole, fraction = math.floor(weight), weight - math.floor(weight)
    parts = [dataset] * whole
    extra = round(fraction * len(dataset))
    if extra:
        parts.append(dataset.shuffle(seed=seed).select(range(extra)))
    return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def load_source(
    source: DataSource, text_field: str, seed: int, num_proc: int | None = None
) -> tuple[Dataset, SourceReport]:
    """Load one source as columns ``text_field`` + ``source``, empty documents removed, weight applied."""
    name = source.display_name
    logger.info("loading training source %s (weight %s)", name, source.weight)
    if isinstance(source.name, list):
        raise RecipeError(f"source '{name}': one configuration per source (parse_mixture splits lists)")
    try:
        raw = load_dataset(
            source.path,
            name=source.name,
            data_dir=source.data_dir,
            data_files=source.data_files,
            split=source.split,
            revision=source.revision,
        )
    except ValueError as exc:
        if source.name is None or "config" not in str(exc).lower():
            raise
        raise RecipeError(f"source '{name}': {exc}") from exc
    if source.text_template is None and source.text_field not in raw.column_names:
        raise RecipeError(
            f"source '{name}': no column '{source.text_field}' (columns: {raw.column_names}); "
            "set text_field or text_template"
        )
    texts = raw.map(
        _extract_text,
        batched=True,
        with_indices=True,
        fn_kwargs={"source": source, "source_name": name},
        remove_columns=raw.column_names,
        num_proc=num_proc,
        desc=f"reading text of {name}",
    )
    if text_field != "text":
        texts = texts.rename_column("text", text_field)
    kept = texts.filter(lambda batch: [bool(t.strip()) for t in batch[text_field]], batched=True, num_proc=num_proc)
    skipped = len(texts) - len(kept)
    if skipped:
        logger.warning("source %s: skipped %d empty document(s) of %d", name, skipped, len(texts))
    weighted = _apply_weight(kept, source.weight, seed)
    report = SourceReport(
        name=name,
        weight=source.weight,
        rows_read=len(raw),
        skipped_empty=skipped,
        documents=len(weighted),
        hub_id=source.hub_id,
        card_link=source.card_link,
    )
    return weighted, report


def load_documents(
    sources: list[DataSource], text_field: str = "text", seed: int = 42, num_proc: int | None = None
) -> tuple[Dataset, list[SourceReport]]:
    """All sources, weighted and concatenated (the trainer shuffles them when packing)."""
    if not sources:
        raise RecipeError("no training data: dataset_mixture is empty")
    parts, reports = [], []
    for index, source in enumerate(sources):
        dataset, report = load_source(source, text_field, seed + index, num_proc)
        parts.append(dataset)
        reports.append(report)
    documents = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if len(documents) == 0:
        raise RecipeError("the training data holds no non-empty document")
    logger.info("training documents: %d from %d source(s)", len(documents), len(sources))
    return documents, reports


def sources_from_script_args(
    dataset_name: str | None, dataset_config: str | None, split: str, mixture: list[dict[str, Any]]
) -> list[DataSource]:
    """``dataset_name`` (a single target, TRL's usual key) replaces ``dataset_mixture`` when both are set."""
    if dataset_name:
        if mixture:
            logger.warning("dataset_name=%s given: it replaces the recipe's dataset_mixture", dataset_name)
        builder = BUILDERS_BY_SUFFIX.get(Path(dataset_name).suffix) if Path(dataset_name).is_file() else None
        if builder is not None:  # a single local file: read it with its builder
            return [DataSource(path=builder, data_files=dataset_name, split=split, label=dataset_name)]
        return [DataSource(path=dataset_name, name=config, split=split) for config in config_names(dataset_config)]
    return parse_mixture(mixture)
