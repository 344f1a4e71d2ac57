"""Supervised fine-tuning of code-executing models: teach a model to write text and code, never execution output.

Usage::

    python -m training.sft_lce --config recipes/CodeLlama-7B/sft/config_lce.yaml
    accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m training.sft_lce --config ...
    accelerate launch ... -m training.sft_lce --config recipes/Llama-3-8B/sft/config_numina_tir.yaml

Two conversation formats, one training path (``conversation_format``): ``lce`` (MathCoder, below) and ``chat``, the
post-training of MathCoder2 on NuminaMath-CoT / NuminaMath-TIR: conversations rendered by the model's chat template
(``chat_template_path`` names one for base models that have none), loss on the assistant turns only, and in TIR
answers every ```` ```output ```` block written by the interpreter at -100, by the same label code
(:mod:`mathcode_pile.lce.syntax`). No tokens are added in that format.

Steps: the LCE markers are added to the tokenizer and the embedding matrix grows with rows set to the mean embedding
(:mod:`mathcode_pile.lce.tokens`); every conversation is tokenized once with a ``labels`` column that is -100 on the
prompt and on every execution block (:mod:`mathcode_pile.lce.labels`); TRL's ``SFTTrainer`` takes that pre-tokenized
dataset as is and packs examples with best-fit-decreasing into rows of ``max_length`` tokens. Packed rows carry
per-example ``position_ids`` and training runs with ``use_cache=False``, so attention never crosses from one example
into another (MathCoder's "cross-question masking"). Examples longer than ``max_length`` are dropped and counted
rather than truncated, since a cut answer teaches a solution without its end. Rerunning the same command resumes from
the last complete checkpoint.

MathCoder's ablations are settings of the same run: ``solution_format: cot | pot`` trains on the natural-language-only
or code-only solutions derived from the same LCE solutions (:mod:`mathcode_pile.lce.variants`), and
``mask_execution: false`` puts the execution output in the loss (:mod:`mathcode_pile.lce.labels`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.lce.variants import SOLUTION_FORMATS
from mathcode_pile.output_dirs import OverwriteOption, claim_output_dir
from training.config import parse_trl_recipe

logger = logging.getLogger(__name__)

DATA_STATS_FILE = "lce_data_stats.json"
#: ``load_dataset`` builders for a local file, by suffix.
FILE_BUILDERS_BY_SUFFIX = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class LCEScriptArguments(ValidatedConfig, OverwriteOption, ScriptArguments):
    """What to train on: a Hub dataset (``MathLLM/MathCodeInstruct``), a dataset folder, or a local JSON-lines file."""

    hardware_gpus: int | None = field(
        default=None,
        metadata={
            "help": "GPUs (training processes) the recipe's batch arithmetic assumes; the global batch in packed rows "
            "is logged at launch and a different process count is warned about."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N rows (smoke tests); default: all rows."}
    )
    solution_format: str = field(
        default="lce",
        metadata={
            "help": "Train on the solutions as LCE (text, code, execution), or derived from them as PoT (code and "
            "execution only) or CoT (text only, execution results stated in words): MathCoder's ablation.",
            "choices": list(SOLUTION_FORMATS),
        },
    )
    model_license: str = field(
        default="other", metadata={"help": "License identifier written in the model card (the base model's license)."}
    )
    hub_dry_run: bool = field(
        default=False,
        metadata={"help": "With push_to_hub: stage the upload folder and list its files without uploading."},
    )
    conversation_format: str = field(
        default="lce",
        metadata={
            "help": "lce: MathCoder's marker blocks (tokens added); chat: the model's chat template with ```python / "
            "```output fences (NuminaMath-CoT / -TIR), loss on assistant turns, interpreter output at -100.",
            "choices": ["lce", "chat"],
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.conversation_format not in ("lce", "chat"):
            raise RecipeError(f"conversation_format must be 'lce' or 'chat', got {self.conversation_format!r}")
        if not self.dataset_name:
            raise RecipeError("dataset_name is required: a Hub id, a dataset folder or a .jsonl/.json/.parquet file")
        if self.dataset_streaming:
            raise RecipeError("dataset_streaming is not supported: packing needs the whole tokenized dataset")
        if self.hardware_gpus is not None and self.hardware_gpus < 1:
            raise RecipeError(f"hardware_gpus must be >= 1, got {self.hardware_gpus}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise RecipeError(f"max_train_samples must be >= 1, got {self.max_train_samples}")
        if self.solution_format not in SOLUTION_FORMATS:
            raise RecipeError(f"solution_format must be one of {list(SOLUTION_FORMATS)}, got {self.solution_format!r}")


@dataclass
class LCESFTConfig(SFTConfig):
    """``SFTConfig`` with MathCoder's settings as defaults (lr 2e-5, context 2048, cosine, 3 epochs, 50 warm-up steps).

    The global batch of 128 is per_device_train_batch_size x gradient_accumulation_steps x GPUs: the recipes set it.
    """

    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate (MathCoder: 2e-5)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule (MathCoder: cosine)."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Passes over the data (MathCoder: 3)."})
    warmup_steps: float = field(default=50, metadata={"help": "Linear warm-up steps (MathCoder: 50)."})
    max_length: int | None = field(default=2048, metadata={"help": "Context length of packed rows (MathCoder: 2048)."})
    packing: bool = field(default=True, metadata={"help": "Pack several examples into one row (isolated)."})
    packing_strategy: str = field(
        default="bfd",
        metadata={
            "help": "Only bfd: whole examples placed best-fit into rows. bfd_split would put the tail of a long "
            "example in a row without its question, wrapped would cut examples anywhere; both are refused."
        },
    )
    activation_checkpointing: bool | None = field(
        default=True, metadata={"help": "Recompute activations in the backward pass to save memory."}
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing."}
    )
    mask_execution: bool = field(
        default=True,
        metadata={
            "help": "Leave execution blocks out of the loss (MathCoder); false trains on the interpreter's output "
            "too (the paper's ablation)."
        },
    )

    def __post_init__(self) -> None:
        if self.chat_template_path is not None:
            self.chat_template_path = str(resolve_chat_template(self.chat_template_path))
        if self.packing and self.packing_strategy != "bfd":
            raise RecipeError(
                f"LCE SFT packs whole examples: packing_strategy must be 'bfd' (got {self.packing_strategy!r})"
            )
        if self.max_length is None or self.max_length < 16:
            raise RecipeError(f"max_length must be >= 16, got {self.max_length}")
        if self.assistant_only_loss or self.completion_only_loss:
            raise RecipeError(
                "assistant_only_loss / completion_only_loss do not apply: the loss mask is the pre-built 'labels' "
                "column (prompt and execution output at -100)"
            )
        super().__post_init__()


CONFIG_CLASSES: tuple[type, ...] = (LCEScriptArguments, LCESFTConfig, ModelConfig)


def resolve_chat_template(path: str) -> Path:
    """A chat template file as named in a recipe: from the working directory, else from the repository root."""
    from mathcode_pile.paths import REPO_ROOT

    candidate = Path(path)
    if candidate.suffix not in (".jinja", ".j2"):
        raise RecipeError(f"chat_template_path {path}: name a .jinja template file")
    for folder in (Path.cwd(), REPO_ROOT):
        if (folder / candidate).is_file():
            return (folder / candidate).resolve()
    raise RecipeError(f"chat_template_path {path}: file not found (relative paths are read from the repository root)")


def parse_lce_args(argv: Sequence[str] | None = None) -> tuple[LCEScriptArguments, LCESFTConfig, ModelConfig]:
    """``--config recipe.yaml`` plus ``--key value`` overrides; unknown keys and wrong types name the recipe."""
    script_args, training_args, model_args = parse_trl_recipe(CONFIG_CLASSES, argv)
    return script_args, training_args, model_args


def log_global_batch(script_args: LCEScriptArguments, training_args: LCESFTConfig) -> int:
    """Log packed rows per optimizer step (MathCoder: 128) and warn when the launch differs from the recipe."""
    per_process = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    rows = per_process * training_args.world_size
    logger.info(
        "global batch: %d row(s)/device x %d accumulation x %d process(es) = %d packed rows of %d tokens per step",
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
        training_args.world_size,
        rows,
        training_args.max_length,
    )
    expected = script_args.hardware_gpus
    if expected is not None and expected != training_args.world_size:
        logger.warning(
            "the recipe assumes %d GPU(s) (%d rows per step) but %d process(es) run: scale "
            "gradient_accumulation_steps to keep the paper's batch",
            expected,
            per_process * expected,
            training_args.world_size,
        )
    return rows


def load_lce_rows(script_args: LCEScriptArguments) -> Any:
    """The raw training rows: a local file through its builder, else ``load_dataset`` on the name (Hub or folder)."""
    from datasets import load_dataset

    path = Path(script_args.dataset_name)
    if path.is_file():
        builder = FILE_BUILDERS_BY_SUFFIX.get(path.suffix)
        if builder is None:
            raise RecipeError(
                f"dataset_name {path}: unsupported file type; use one of {sorted(FILE_BUILDERS_BY_SUFFIX)}"
            )
        rows = load_dataset(builder, data_files=str(path), split=script_args.dataset_train_split)
    else:
        rows = load_dataset(
            script_args.dataset_name, name=script_args.dataset_config, split=script_args.dataset_train_split
        )
    if script_args.max_train_samples is not None:
        rows = rows.select(range(min(script_args.max_train_samples, len(rows))))
    return rows


def load_lce_model_and_tokenizer(
    model_args: ModelConfig, conversation_format: str = "lce", chat_template_path: str | None = None
) -> tuple[Any, Any]:
    """Base model and tokenizer, ready for the format: LCE markers added (embedding rows at the mean) with stops on
    block ends, or the chat template set (from ``chat_template_path`` when the recipe names one)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathcode_pile.lce.tokens import prepare_lce_model_and_tokenizer, stop_token_ids
    from training.model_init import check_model_path, model_init_kwargs

    check_model_path(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **model_init_kwargs(model_args))
    if conversation_format == "lce":
        prepare_lce_model_and_tokenizer(model, tokenizer)
        # Generation with the saved model (transformers, TGI) then ends a step on <|endofblock|> / <|endofmessage|>.
        model.generation_config.eos_token_id = stop_token_ids(tokenizer)
    elif chat_template_path is not None:
        tokenizer.chat_template = Path(chat_template_path).read_text(encoding="utf-8")
    elif not tokenizer.chat_template:
        raise RecipeError(
            f"{model_args.model_name_or_path} has no chat template: set chat_template_path in the recipe "
            "(e.g. training/chat_templates/user_assistant.jinja)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def build_lce_trainer(
    script_args: LCEScriptArguments, training_args: LCESFTConfig, model_args: ModelConfig
) -> tuple[Any, Counter[str]]:
    """The ready-to-train ``SFTTrainer`` and the data counters (rows kept, dropped per reason, trained tokens)."""
    from trl import SFTTrainer

    from mathcode_pile.lce.dataset import prepare_lce_dataset
    from mathcode_pile.lce.syntax import syntax_for

    model, tokenizer = load_lce_model_and_tokenizer(
        model_args, script_args.conversation_format, training_args.chat_template_path
    )
    rows = load_lce_rows(script_args)
    train_dataset, counters = prepare_lce_dataset(
        rows,
        tokenizer,
        max_length=training_args.max_length,
        num_proc=training_args.dataset_num_proc,
        syntax=syntax_for(
            script_args.conversation_format,
            tokenizer,
            solution_format=script_args.solution_format,
            mask_execution=training_args.mask_execution,
        ),
    )
    if len(train_dataset) == 0:
        raise RecipeError(f"no usable training example in {script_args.dataset_name}: {dict(counters)}")
    logger.info(
        "SFT data (%s format, %s solutions, execution %s): %d of %d rows kept, %d tokens of which %d trained",
        script_args.conversation_format,
        script_args.solution_format,
        "masked" if training_args.mask_execution else "in the loss",
        counters["rows_kept"],
        counters["rows_in"],
        counters["tokens"],
        counters["trained_tokens"],
    )
    trainer = SFTTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=tokenizer)
    return trainer, counters


def train(argv: Sequence[str]) -> tuple[Path, list[tuple[int, float]]]:
    """Parse, build, train (resuming when a checkpoint exists), save model + tokenizer + card.

    Returns the output folder and the (step, loss) history.
    """
    from training.card import loss_points
    from training.checkpoints import find_resume_checkpoint

    script_args, training_args, model_args = parse_lce_args(argv)
    if not training_args.should_log:
        logging.getLogger().setLevel(logging.WARNING)
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # we publish after the card exists
    output_dir = claim_output_dir(
        training_args.output_dir, "output_dir", "training.sft_lce", script_args.overwrite, "training.sft_lce"
    )
    log_global_batch(script_args, training_args)
    with training_args.main_process_first(desc="loading and tokenizing the LCE data"):
        trainer, counters = build_lce_trainer(script_args, training_args, model_args)
    resume = find_resume_checkpoint(output_dir)
    if resume is not None:
        logger.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(str(output_dir))
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    state = trainer.state
    if trainer.is_world_process_zero():
        from training.lce_card import write_lce_model_card
        from training.run_info import dataset_label, write_run_info

        (output_dir / DATA_STATS_FILE).write_text(json.dumps(dict(sorted(counters.items())), indent=2) + "\n")
        write_run_info(
            output_dir,
            trainer="training.sft_lce",
            base_model=model_args.model_name_or_path or "",
            training_data=[dataset_label(script_args.dataset_name, script_args.dataset_config)],
            argv=argv,
            settings={
                "conversation_format": script_args.conversation_format,
                "chat_template": Path(training_args.chat_template_path).name
                if training_args.chat_template_path
                else None,
                "solution_format": script_args.solution_format,
                "mask_execution": training_args.mask_execution,
            },
        )
        write_lce_model_card(
            output_dir, script_args, training_args, model_args, counters, argv,
            log_history=state.log_history, global_step=state.global_step, epoch=state.epoch or 0.0,
        )  # fmt: skip
        if push_to_hub:
            from training.hub import publish_model

            repo_id = training_args.hub_model_id or output_dir.name
            publish_model(
                output_dir, repo_id, private=bool(training_args.hub_private_repo), dry_run=script_args.hub_dry_run
            )
    trainer.end()
    return output_dir, loss_points(state.log_history)


def main(argv: Sequence[str] | None = None) -> int:
    from mathcode_pile.log_setup import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        TrlParser(CONFIG_CLASSES).print_help()
        return 0
    setup_logging()
    try:
        output_dir, losses = train(argv)
    except RecipeError as exc:
        print(f"training.sft_lce: error: {exc}", file=sys.stderr)
        return 2
    first, last = (losses[0][1], losses[-1][1]) if losses else (float("nan"), float("nan"))
    print(f"SFT done: loss {first:.4f} -> {last:.4f}; model, tokenizer and card in {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
