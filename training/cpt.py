"""Continued pretraining on TRL's ``SFTTrainer``: ``python -m training.cpt --config <recipe>``.

Recipes are ``recipes/<Model>/cpt/config_full.yaml``.

Launch on GPUs with Accelerate (``accelerate launch --config_file recipes/accelerate_configs/zero3.yaml -m
training.cpt --config ...``); any recipe key can be overridden on the command line. The run:

1. reads the data (one ``load_dataset`` target or a weighted mixture) and tokenizes it with exactly one BOS (where
   the model uses one) and one EOS per document;
2. trains with lossless ``bfd_split`` packing, resuming by itself from the newest complete checkpoint in
   ``output_dir`` when the same command is run again;
3. saves the model, renders and validates the model card (hyper-parameters, data with card links, tokens seen,
   loss curve, lm-eval results when present) and, with ``--push_to_hub``, uploads the folder (a dry run offline).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, TrainerCallback
from trl import ModelConfig

from mathcode_pile.config import RecipeError
from mathcode_pile.output_dirs import claim_output_dir
from training.card import (
    LOSS_PLOT,
    ModelCardInputs,
    load_eval_results,
    loss_points,
    plot_loss_curve,
    render_model_card,
    validate_model_card,
)
from training.checkpoints import find_resume_checkpoint
from training.config import CPTConfig, CPTScriptArguments, global_batch_tokens, parse_cpt_args
from training.data import SourceReport, load_documents, sources_from_script_args
from training.model_init import check_model_path, model_init_kwargs
from training.run_info import write_run_info
from training.tokenization import count_tokens_by_source, tokenize_dataset, tokenizer_adds_bos

logger = logging.getLogger("training.cpt")

DATA_STATS_FILE = "data_stats.json"


@dataclass
class CPTResult:
    output_dir: Path
    resumed_from: Path | None
    global_step: int
    tokens_seen: int
    losses: list[tuple[int, float]]
    uploaded: list[str] | None


def log_global_batch(script_args: CPTScriptArguments, training_args: CPTConfig) -> int:
    """Log the tokens per optimizer step and warn when the launch differs from the recipe's hardware."""
    world_size = training_args.world_size
    tokens = global_batch_tokens(training_args, world_size)
    logger.info(
        "global batch: %d row(s)/device x %d accumulation x %d process(es) x %d tokens = %s tokens per step",
        training_args.per_device_train_batch_size,
        training_args.gradient_accumulation_steps,
        world_size,
        training_args.max_length,
        f"{tokens:,}",
    )
    expected = script_args.hardware_gpus
    if expected is not None and expected != world_size:
        logger.warning(
            "the recipe assumes %d GPU(s) (%s tokens per step) but %d process(es) run: scale "
            "gradient_accumulation_steps to keep the paper's batch",
            expected,
            f"{global_batch_tokens(training_args, expected):,}",
            world_size,
        )
    return tokens


def _hyperparameters(
    training_args: CPTConfig, model_args: ModelConfig, attention: str | None
) -> list[tuple[str, object]]:
    world_size = training_args.world_size
    length: tuple[str, object] = (
        ("epochs", training_args.num_train_epochs)
        if training_args.max_steps <= 0
        else ("max steps", training_args.max_steps)
    )
    return [
        ("learning rate", training_args.learning_rate),
        ("schedule", f"{training_args.lr_scheduler_type.value} after {training_args.warmup_steps} warmup step(s)"),
        ("weight decay", training_args.weight_decay),
        length,
        ("context length (packed row)", training_args.max_length),
        (
            "rows per device x accumulation x processes",
            f"{training_args.per_device_train_batch_size} x "
            f"{training_args.gradient_accumulation_steps} x {world_size}",
        ),
        ("global batch (tokens)", f"{global_batch_tokens(training_args, world_size):,}"),
        (
            "optimizer",
            f"{training_args.optim.value} (betas {training_args.adam_beta1}, {training_args.adam_beta2}, "
            f"eps {training_args.adam_epsilon})",
        ),
        ("gradient clipping", training_args.max_grad_norm),
        ("precision", "bf16 mixed" if training_args.bf16 else "fp16 mixed" if training_args.fp16 else "fp32"),
        ("weights dtype at load", model_args.dtype),
        ("attention", attention or "default"),
        ("activation checkpointing", training_args.activation_checkpointing),
        ("packing", training_args.packing_strategy),
        ("loss head", "TRL chunked (fused)" if training_args.fused_lm_head else "model's own"),
        ("seed", training_args.seed),
    ]


def _versions() -> list[tuple[str, str]]:
    import accelerate
    import datasets
    import torch
    import transformers
    import trl

    return [(m.__name__, m.__version__) for m in (transformers, trl, torch, datasets, accelerate)]


def _launch_command(argv: Sequence[str], world_size: int) -> str:
    launcher = (
        f"accelerate launch --num_processes {world_size} -m training.cpt"
        if world_size > 1
        else "python -m training.cpt"
    )
    return " ".join([launcher, *(shlex.quote(a) for a in argv)])


def write_model_card(
    output_dir: Path,
    trainer: object,
    script_args: CPTScriptArguments,
    training_args: CPTConfig,
    model_args: ModelConfig,
    reports: list[SourceReport],
    uses_bos: bool,
    argv: Sequence[str],
) -> Path:
    """Loss plot + README.md in ``output_dir``, validated against the folder."""
    state = trainer.state  # type: ignore[attr-defined]
    points = loss_points(state.log_history)
    model_name = (training_args.hub_model_id or output_dir.name).split("/")[-1]
    loss_plot = None
    if points:
        plot_loss_curve(points, output_dir / LOSS_PLOT, f"{model_name}: training loss")
        loss_plot = LOSS_PLOT
    eval_rows, eval_source = load_eval_results(script_args.eval_results_path or output_dir / "eval")
    attention = (training_args.model_init_kwargs or {}).get("attn_implementation")
    inputs = ModelCardInputs(
        model_name=model_name,
        load_target=training_args.hub_model_id or str(output_dir),
        base_model_path=model_args.model_name_or_path or "",
        sources=reports,
        hyperparameters=_hyperparameters(training_args, model_args, attention),
        context_length=training_args.max_length or 0,
        packing_strategy=training_args.packing_strategy,
        uses_bos=uses_bos,
        global_steps=state.global_step,
        epochs=state.epoch or 0.0,
        tokens_seen=int(state.num_input_tokens_seen),
        command=_launch_command(argv, training_args.world_size),
        versions=_versions(),
        final_loss=points[-1][1] if points else None,
        loss_plot=loss_plot,
        eval_rows=eval_rows,
        eval_source=eval_source,
        license=script_args.model_license,
    )
    text = render_model_card(inputs)
    path = output_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    validate_model_card(text, output_dir)
    return path


@dataclass
class PreparedRun:
    """A trainer ready to ``train()``, with what the card needs about its data."""

    trainer: Any
    tokenizer: Any
    reports: list[SourceReport]


def prepare_run(
    script_args: CPTScriptArguments,
    training_args: CPTConfig,
    model_args: ModelConfig,
    callbacks: list[TrainerCallback] | None = None,
    model: Any | None = None,
) -> PreparedRun:
    """Tokenizer, data (loaded, tokenized, counted) and ``SFTTrainer``: everything before ``train()``.

    The model is loaded from ``model_name_or_path`` unless ``model`` is given: an instance built in memory (a
    random-weight model of a published shape for a throughput check), which then trains in place, with the
    tokenizer still read from ``model_name_or_path``.
    """
    from training.trainer import CPTTrainer

    model_path = model_args.model_name_or_path or ""
    check_model_path(model_path)
    log_global_batch(script_args, training_args)
    tokenizer = AutoTokenizer.from_pretrained(
        model_path, revision=model_args.model_revision, trust_remote_code=training_args.trust_remote_code
    )
    if training_args.eos_token is not None:
        tokenizer.eos_token = training_args.eos_token
    sources = sources_from_script_args(
        script_args.dataset_name,
        script_args.dataset_config,
        script_args.dataset_train_split,
        script_args.dataset_mixture,
    )
    with training_args.main_process_first(desc="loading and tokenizing the training data"):
        documents, reports = load_documents(
            sources, training_args.dataset_text_field, training_args.seed, training_args.dataset_num_proc
        )
        tokenized = tokenize_dataset(
            documents, tokenizer, training_args.dataset_text_field, training_args.dataset_num_proc
        )
    tokens_by_source = count_tokens_by_source(tokenized)
    for report in reports:
        report.tokens = tokens_by_source.get(report.name, 0)
    logger.info("tokens per epoch: %s", {k: f"{v:,}" for k, v in tokens_by_source.items()})

    if model is None:
        extra_init = training_args.model_init_kwargs if isinstance(training_args.model_init_kwargs, dict) else None
        training_args.model_init_kwargs = model_init_kwargs(model_args, extra_init)
    trainer = CPTTrainer(
        model=model_path if model is None else model,
        args=training_args,
        train_dataset=tokenized,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    return PreparedRun(trainer, tokenizer, reports)


def resume_checkpoint(training_args: CPTConfig) -> Path | None:
    """Where a run continues from: ``resume_from_checkpoint`` when set, else the newest complete checkpoint in
    ``output_dir`` (None for a fresh run)."""
    if training_args.resume_from_checkpoint:
        return Path(training_args.resume_from_checkpoint)
    return find_resume_checkpoint(training_args.output_dir)


def run_cpt(
    script_args: CPTScriptArguments,
    training_args: CPTConfig,
    model_args: ModelConfig,
    argv: Sequence[str] = (),
    callbacks: list[TrainerCallback] | None = None,
) -> CPTResult:
    """Train, save, write the card and publish; the whole run behind ``python -m training.cpt``."""
    output_dir = claim_output_dir(
        training_args.output_dir, "output_dir", "training.cpt", script_args.overwrite, "training.cpt"
    )
    push_to_hub = training_args.push_to_hub
    training_args.push_to_hub = False  # uploading is ours, after the card exists (see training.hub)
    prepared = prepare_run(script_args, training_args, model_args, callbacks)
    trainer, tokenizer, reports = prepared.trainer, prepared.tokenizer, prepared.reports
    resume = resume_checkpoint(training_args)
    if resume is not None:
        logger.info("resuming from %s", resume)
    train_result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.is_fsdp_enabled:  # checkpoints stay sharded (resumable); the final model must load with from_pretrained
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(output_dir))
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    uploaded = None
    if trainer.is_world_process_zero():
        (output_dir / DATA_STATS_FILE).write_text(
            json.dumps([r.to_dict() for r in reports], indent=2) + "\n", encoding="utf-8"
        )
        write_run_info(
            output_dir,
            trainer="training.cpt",
            base_model=model_args.model_name_or_path or "",
            training_data=[report.name for report in reports],
            argv=argv,
        )
        card = write_model_card(
            output_dir, trainer, script_args, training_args, model_args, reports, tokenizer_adds_bos(tokenizer), argv
        )
        logger.info("model card written to %s", card)
        if push_to_hub:
            from training.hub import publish_model

            repo_id = training_args.hub_model_id or output_dir.name
            uploaded = publish_model(
                output_dir, repo_id, private=bool(training_args.hub_private_repo), dry_run=script_args.hub_dry_run
            )
    state = trainer.state
    result = CPTResult(
        output_dir=output_dir,
        resumed_from=resume,
        global_step=state.global_step,
        tokens_seen=int(state.num_input_tokens_seen),
        losses=loss_points(state.log_history),
        uploaded=uploaded,
    )
    trainer.end()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from mathcode_pile.log_setup import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    try:
        script_args, training_args, model_args = parse_cpt_args(argv)
        if not training_args.should_log:
            logging.getLogger().setLevel(logging.WARNING)
        result = run_cpt(script_args, training_args, model_args, argv)
    except RecipeError as exc:
        print(f"training.cpt: error: {exc}", file=sys.stderr)
        return 2
    first, last = (result.losses[0][1], result.losses[-1][1]) if result.losses else (float("nan"), float("nan"))
    print(
        f"trained {result.global_step} step(s), {result.tokens_seen:,} tokens seen, loss {first:.4f} -> {last:.4f}; "
        f"model and card in {result.output_dir}"
        + (f" (resumed from {result.resumed_from.name})" if result.resumed_from else "")
    )
    if result.uploaded is not None:
        print(f"upload folder: {result.output_dir / 'hub_upload'} ({len(result.uploaded)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
