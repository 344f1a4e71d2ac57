"""``mathcode-pile build``: sources → stages (resumable) → Parquet + dataset card (→ Hub).

The recipe is one flat YAML whose keys are fields of :class:`PipelineConfig`, :class:`LLMConfig` and the config class
of every registered stage, so every key is documented by ``mathcode-pile build --help`` and can be overridden there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathcode_pile.config import RecipeError, ValidatedConfig, parse_recipe
from mathcode_pile.llm.client import LLMConfig
from mathcode_pile.llm.opening import open_llm
from mathcode_pile.output_dirs import OverwriteOption, claim_output_dir
from mathcode_pile.recipe_checks import check_build_recipe
from mathcode_pile.runner import run_stage
from mathcode_pile.scale.config import ExecutorConfig, check_executor_available
from mathcode_pile.sources import load_sources, parse_sources
from mathcode_pile.stages.base import Stage, StageContext
from mathcode_pile.stages.registry import get_stage_class, registered_stages
from mathcode_pile.stats import StageStats

logger = logging.getLogger(__name__)


@dataclass
class PipelineConfig(ValidatedConfig, OverwriteOption):
    """What to build and where."""

    dataset_name: str = field(default="MathCode-Pile", metadata={"help": "Pretty name in the dataset card."})
    sources: list[dict[str, Any]] = field(
        default_factory=list, metadata={"help": "List of sources (see mathcode_pile.sources.SourceSpec)."}
    )
    stages: list[str] = field(default_factory=list, metadata={"help": "Stage names, applied in order."})
    output_dir: str = field(default="data/mathcode_pile", metadata={"help": "Folder of the finished dataset."})
    work_dir: str | None = field(
        default=None, metadata={"help": "Intermediate shards, caches, logs; default <output_dir>_work."}
    )
    shard_rows: int = field(default=1000, metadata={"help": "Rows per resumable work shard."})
    parquet_rows_per_shard: int = field(default=100_000, metadata={"help": "Rows per output Parquet file."})
    num_proc: int = field(default=1, metadata={"help": "Processes for CPU-bound stages."})
    keep_dropped: bool = field(default=True, metadata={"help": "Keep dropped rows (with reasons) for inspection."})
    seed: int = field(default=42, metadata={"help": "Seed for every sampling step."})
    token_count_tokenizer: str = field(
        default="embedded",
        metadata={"help": "Tokenizer that counts tokens per component in the card: 'embedded' (SmolLM2, offline), a "
                  "Hub id or a local folder (e.g. the base model's, meta-llama/Meta-Llama-3-8B), or 'none'."},
    )  # fmt: skip
    push_to_hub: str | None = field(default=None, metadata={"help": "Hub dataset repo id to publish to."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})
    dry_run: bool = field(default=False, metadata={"help": "With push_to_hub: list what would be uploaded only."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shard_rows < 1 or self.parquet_rows_per_shard < 1 or self.num_proc < 1:
            raise RecipeError("shard_rows, parquet_rows_per_shard and num_proc must be >= 1")

    @property
    def resolved_work_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(f"{self.output_dir.rstrip('/')}_work")


def build_config_classes() -> list[type]:
    """Pipeline + LLM configs + one config class per registered stage (deduplicated, in a stable order)."""
    classes: list[type] = [PipelineConfig, LLMConfig, ExecutorConfig]
    for stage_class in registered_stages().values():
        if stage_class.config_class not in classes:
            classes.append(stage_class.config_class)
    return classes


@dataclass
class BuildConfigs:
    pipeline: PipelineConfig
    llm: LLMConfig
    stage_configs: dict[type, Any]
    recipe: str


def parse_build_configs(recipe_path: str | Path | None, overrides: Sequence[str] = ()) -> BuildConfigs:
    classes = build_config_classes()
    configs = parse_recipe(classes, recipe_path, overrides)
    by_class = {type(c): c for c in configs}
    pipeline = by_class[PipelineConfig]
    if not pipeline.sources:
        raise RecipeError(f"{recipe_path}: 'sources' is empty; a build needs at least one source")
    parse_sources(pipeline.sources, str(recipe_path))  # validate early, with the recipe named
    for name in pipeline.stages:
        try:
            get_stage_class(name)
        except KeyError as exc:
            raise RecipeError(f"{recipe_path}: {exc.args[0]}") from exc
    return BuildConfigs(pipeline, by_class[LLMConfig], by_class, str(recipe_path or "command line"))


def check_token_count_tokenizer(name: str, recipe: str) -> str | None:
    """The tokenizer the card counts with (None for 'none'), loaded once up front.

    A gated, misspelt or unreachable tokenizer then fails the build at its start, not after hours of stages.
    """
    from mathcode_pile.assemble import DEFAULT_TOKENIZER, load_tokenizer

    if name.lower() == "none":
        return None
    if name != DEFAULT_TOKENIZER:
        try:
            load_tokenizer(name)
        except Exception as error:
            raise RecipeError(
                f"{recipe}: token_count_tokenizer {name!r} cannot be loaded ({type(error).__name__}: {error}); name "
                "a local folder or a Hub id you can read, 'embedded' (offline) or 'none'"
            ) from error
    return name


def build_pile(configs: BuildConfigs) -> Path:
    """Run the whole build described by ``configs``; returns the output folder.

    ``executor: datasets`` runs every stage here through :func:`run_stage`; ``local``, ``ray`` and ``slurm`` run the
    same stages as datatrove pipelines (:mod:`mathcode_pile.scale.build`). Assembly is the same either way.
    """
    from mathcode_pile.assemble import assemble_corpus
    from mathcode_pile.hub import push_folder_to_hub

    pipeline = configs.pipeline
    executor: ExecutorConfig = configs.stage_configs[ExecutorConfig]
    check_executor_available(executor)
    check_build_recipe(configs)
    token_counter = check_token_count_tokenizer(pipeline.token_count_tokenizer, configs.recipe)
    output_dir = claim_output_dir(pipeline.output_dir, "output_dir", configs.recipe, pipeline.overwrite, "build")
    work_dir = claim_output_dir(pipeline.resolved_work_dir, "work_dir", configs.recipe, pipeline.overwrite, "build")
    started = time.perf_counter()
    specs = parse_sources(pipeline.sources, configs.recipe)
    logger.info("loading %d source(s): %s", len(specs), ", ".join(s.name for s in specs))
    dataset, load_stats, fingerprint = load_sources(specs, work_dir / "00_load_sources")
    all_stats: list[StageStats] = [load_stats]
    logger.info("loaded %d documents (dropped %s)", len(dataset), dict(load_stats.dropped))
    stage_classes = [get_stage_class(name) for name in pipeline.stages]
    with open_llm(configs.llm, work_dir, any(c.is_async for c in stage_classes)) as llm:
        context = StageContext(
            work_dir=work_dir,
            llm=llm,
            num_proc=pipeline.num_proc,
            seed=pipeline.seed,
            # stages that publish a card section with a plot write it into the output folder
            extras={"output_dir": str(output_dir)},
        )
        stages_started = time.perf_counter()
        if executor.scaled:
            from mathcode_pile.scale.build import run_stages_scaled

            scaled = run_stages_scaled(configs, dataset, fingerprint, work_dir, output_dir, llm, stage_classes)
            if scaled is None:  # Slurm: jobs queued; a rerun assembles
                return output_dir
            dataset, stage_stats = scaled
            all_stats.extend(stage_stats)
        for index, stage_class in enumerate([] if executor.scaled else stage_classes, start=1):
            stage: Stage = stage_class(configs.stage_configs[stage_class.config_class], context)
            logger.info("stage %d/%d: %s on %d rows", index, len(stage_classes), stage.name, len(dataset))
            result = run_stage(
                stage,
                dataset,
                fingerprint,
                work_dir / f"{index:02d}_{stage.name}",
                shard_rows=pipeline.shard_rows,
                keep_dropped=pipeline.keep_dropped,
            )
            dataset, fingerprint = result.dataset, result.fingerprint
            all_stats.append(result.stats)
        logger.info("stages finished in %.2fs (executor %s)", time.perf_counter() - stages_started, executor.executor)
        model = llm.config.llm_model if llm is not None else None
    assemble_corpus(
        dataset,
        all_stats,
        output_dir,
        pretty_name=pipeline.dataset_name,
        recipe=configs.recipe,
        kinds={s.name: s.kind for s in specs},
        rows_per_shard=pipeline.parquet_rows_per_shard,
        load_target=pipeline.push_to_hub,
        model=model,
        tokenizer=token_counter,
    )
    logger.info("build finished in %.1fs: %s", time.perf_counter() - started, output_dir)
    if pipeline.push_to_hub:
        push_folder_to_hub(
            output_dir, pipeline.push_to_hub, "dataset", private=pipeline.hub_private, dry_run=pipeline.dry_run
        )
    return output_dir
