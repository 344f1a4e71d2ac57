"""Recipe configs for continued pretraining: TRL's ``SFTConfig`` / ``ScriptArguments`` / ``ModelConfig``, extended.

A recipe (``recipes/<Model>/cpt/config_full.yaml``) is one flat YAML whose keys are fields of these three classes;
``TrlParser`` reads it and lets any key be overridden on the command line (``--learning_rate 1e-5``). We add the
strictness that parser lacks: unknown keys and values of the wrong type are errors naming the recipe and the key,
and settings that would silently lose tokens (truncating packing) are refused.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

from mathcode_pile.config import RecipeError, ValidatedConfig, read_recipe
from mathcode_pile.output_dirs import OverwriteOption

#: Packing strategies that keep every token: ``bfd`` truncates documents longer than ``max_length``.
LOSSLESS_PACKING_STRATEGIES = ("bfd_split", "wrapped")


@dataclass
class CPTScriptArguments(ValidatedConfig, OverwriteOption, ScriptArguments):
    """What to train on and how to publish: TRL's script arguments plus a weighted mixture and card/Hub settings."""

    dataset_mixture: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={
            "help": "Weighted mixture of load_dataset targets, one mapping per source with keys path, name, "
            "data_dir, data_files, split, revision, text_field, text_template, weight (passes per epoch: 2.0 repeats "
            "a source, 0.5 keeps a seeded random half). Ignored when dataset_name is set."
        },
    )
    hardware_gpus: int | None = field(
        default=None,
        metadata={
            "help": "Number of GPUs (training processes) the recipe's batch arithmetic assumes; the effective global "
            "batch in tokens is logged at launch and a different process count is warned about."
        },
    )
    eval_results_path: str | None = field(
        default=None,
        metadata={
            "help": "lm-eval results JSON, or a folder searched for results*.json, shown as a table in the model "
            "card; default: <output_dir>/eval when it exists."
        },
    )
    model_license: str = field(
        default="other",
        metadata={"help": "License identifier written in the model card (the base model's license)."},
    )
    hub_dry_run: bool = field(
        default=False,
        metadata={
            "help": "With push_to_hub: write the exact upload folder and list its files without uploading. "
            "Implied when HF_HUB_OFFLINE is set."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset_streaming:
            raise RecipeError("dataset_streaming is not supported: packing needs the whole (tokenized) dataset")
        if self.hardware_gpus is not None and self.hardware_gpus < 1:
            raise RecipeError(f"hardware_gpus must be >= 1, got {self.hardware_gpus}")
        if not self.dataset_name and not self.dataset_mixture:
            raise RecipeError("no training data: set dataset_name or dataset_mixture")


@dataclass
class CPTConfig(SFTConfig):
    """``SFTConfig`` with continued-pretraining defaults: lossless packing, token counting, activation checkpointing.

    ``gradient_checkpointing`` is a deprecated alias in transformers 5; defaulting the new name avoids its warning.
    """

    packing: bool = field(
        default=True,
        metadata={"help": "Pack documents into rows of max_length tokens (required for continued pretraining)."},
    )
    packing_strategy: str = field(
        default="bfd_split",
        metadata={
            "help": "bfd_split (best-fit decreasing, long documents split, no token lost), or wrapped (rows cut "
            "across documents). bfd truncates long documents and is refused.",
            "choices": ["bfd", "bfd_split", "wrapped"],
        },
    )
    shuffle_dataset: bool = field(
        default=True,
        metadata={"help": "Shuffle documents (seeded) before packing, so that rows mix sources."},
    )
    include_num_input_tokens_seen: str = field(
        default="all",
        metadata={
            "help": "Count input tokens in the trainer state (saved with checkpoints; reported in the card): "
            "all, non_padding or no.",
            "choices": ["all", "non_padding", "no"],
        },
    )
    fused_lm_head: bool = field(
        default=True,
        metadata={
            "help": "TRL's chunked LM-head loss, which never holds the full logits (needed for large vocabularies at "
            "long context); false uses the model's own loss, faster when the LM head dominates (tiny models)."
        },
    )
    activation_checkpointing: bool | None = field(
        default=True,
        metadata={"help": "Recompute activations in the backward pass to save memory (about 20%% slower)."},
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing."}
    )

    def __post_init__(self) -> None:
        if not self.packing or self.packing_strategy not in LOSSLESS_PACKING_STRATEGIES:
            raise RecipeError(
                f"continued pretraining must not drop tokens: set packing=true and packing_strategy to one of "
                f"{list(LOSSLESS_PACKING_STRATEGIES)} (got packing={self.packing}, "
                f"packing_strategy={self.packing_strategy!r})"
            )
        if self.max_length is None or self.max_length < 2:
            raise RecipeError(f"max_length (the packed row length) must be >= 2, got {self.max_length}")
        super().__post_init__()


CONFIG_CLASSES: tuple[type, ...] = (CPTScriptArguments, CPTConfig, ModelConfig)


def _scalar_type_error(value: Any, annotation: Any) -> str | None:
    """Describe a mismatch for int / float / bool fields (strings are left to argparse, which converts them)."""
    if isinstance(value, str):
        return None
    origin = typing.get_origin(annotation)
    allowed = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    if value is None:
        return None if type(None) in allowed else "a value (got null)"
    scalar_types = [t for t in allowed if t in (int, float, bool)]
    if not scalar_types or len(scalar_types) != len([t for t in allowed if t is not type(None)]):
        return None  # not a plain scalar field: leave it to the dataclass
    for expected in scalar_types:
        if expected is bool and isinstance(value, bool):
            return None
        if expected is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
            return None
    return " or ".join(t.__name__ for t in scalar_types)


def check_recipe_values(path: str | Path, values: dict[str, Any], classes: Sequence[type] = CONFIG_CLASSES) -> None:
    """Unknown keys and wrong scalar types in a recipe are errors that name the file and the key."""
    annotations: dict[str, Any] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for config_field in dataclasses.fields(cls):
            annotations[config_field.name] = hints.get(config_field.name, Any)
    unknown = sorted(set(values) - set(annotations) - {"env"})
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {unknown}; the entry point's --help lists the valid keys")
    for key, value in values.items():
        if key == "env":
            continue
        expected = _scalar_type_error(value, annotations[key])
        if expected is not None:
            raise RecipeError(f"{path}: key '{key}' expects {expected}, got {value!r} ({type(value).__name__})")


def parse_cpt_args(argv: Sequence[str] | None = None) -> tuple[CPTScriptArguments, CPTConfig, ModelConfig]:
    """Parse ``--config recipe.yaml`` plus ``--key value`` overrides (overrides win) into the three configs."""
    script_args, training_args, model_args = parse_trl_recipe(CONFIG_CLASSES, argv)
    return script_args, training_args, model_args


def parse_trl_recipe(classes: Sequence[type], argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """``TrlParser`` over ``classes`` with strict recipe checks; errors name the recipe. Shared by the trainers."""
    args = list(argv or [])
    recipe = "command line"
    if "--config" in args:
        index = args.index("--config")
        if index + 1 >= len(args):
            raise RecipeError("--config needs a recipe path")
        recipe = args[index + 1]
        check_recipe_values(recipe, read_recipe(recipe), classes)
    try:
        configs = TrlParser(classes).parse_args_and_config(args=args)
    except RecipeError as exc:
        raise RecipeError(f"{recipe}: {exc}") from exc
    except SystemExit as exc:  # argparse exits on --help (code 0) and on unknown or malformed options
        if exc.code in (0, None):
            raise
        raise RecipeError(f"{recipe}: invalid command-line option(s) in {args}") from exc
    except (ValueError, TypeError) as exc:
        hint = " (on a machine without a GPU pass --bf16 false)" if "bf16" in str(exc) else ""
        raise RecipeError(f"{recipe}: {exc}{hint}") from exc
    model_args = next((c for c in configs if isinstance(c, ModelConfig)), None)
    if model_args is not None and not model_args.model_name_or_path:
        raise RecipeError(f"{recipe}: model_name_or_path is required")
    return tuple(configs)


def global_batch_tokens(training_args: SFTConfig, num_processes: int) -> int:
    """Tokens per optimizer step when every packed row is full: rows per device × accumulation × processes × length."""
    from training.batch_plan import tokens_per_step

    if training_args.max_length is None:
        raise RecipeError("max_length is not set")
    return tokens_per_step(
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
        num_processes,
        training_args.max_length,
    )
