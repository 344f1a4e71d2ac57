"""The model card of an SFT run of ``training.sft_lce``, rendered and validated offline.

It shares the continued-pretraining card's machinery (loss points and plot, offline validation, Hub id test) and
states what is particular to the format: for LCE (``hub_cards/lce_model_card.md.j2``) the block format, what carries a
loss, the data rows kept and dropped, and the LCE evaluation table beside MathCoder's Table 2 when
``<output_dir>/eval_lce/results.json`` exists; for post-training in the chat format
(``hub_cards/post_training_model_card.md.j2``) the chat template, the masking of interpreter output, the data, and the
TIR / CoT evaluation tables when ``<output_dir>/eval_tir/results.json`` / ``eval_cot/results.json`` exist (written by
``make eval-tir`` / ``make eval-cot`` on the model folder; rerunning the training command then refreshes the card).
"""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

from hub_cards import card_environment
from training.card import LOSS_PLOT, is_hub_model_id, loss_points, plot_loss_curve, validate_model_card

logger = logging.getLogger(__name__)

TEMPLATE = "lce_model_card.md.j2"
POST_TRAINING_TEMPLATE = "post_training_model_card.md.j2"
EVAL_RESULTS = Path("eval_lce") / "results.json"
#: Evaluations of a post-trained model, by the folder ``make eval-tir`` / ``make eval-cot`` write into it.
POST_TRAINING_EVALS = {"eval_tir": "tool-integrated (code runs)", "eval_cot": "chain-of-thought (no execution)"}


def framework_versions() -> list[tuple[str, str]]:
    import datasets
    import torch
    import transformers
    import trl

    return [(module.__name__, module.__version__) for module in (transformers, trl, torch, datasets)]


def lce_hyperparameters(training_args: Any, model_args: Any) -> list[tuple[str, Any]]:
    """The settings that define the run, as the card lists them."""
    world_size = training_args.world_size
    rows_per_step = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * world_size
    schedule = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    return [
        ("learning rate", training_args.learning_rate),
        ("schedule", f"{schedule}, {training_args.warmup_steps} warmup steps"),
        ("epochs", training_args.num_train_epochs),
        ("context length (packed row)", training_args.max_length),
        ("batch (packed rows per step)", f"{rows_per_step} = {training_args.per_device_train_batch_size} x "
         f"{training_args.gradient_accumulation_steps} accumulation x {world_size} process(es)"),
        ("weight decay", training_args.weight_decay),
        ("precision", "bf16 mixed" if training_args.bf16 else "fp16 mixed" if training_args.fp16 else "fp32"),
        ("weights dtype at load", model_args.dtype),
        ("activation checkpointing", training_args.activation_checkpointing),
        ("execution output in the loss", not getattr(training_args, "mask_execution", True)),
        ("seed", training_args.seed),
    ]  # fmt: skip


def render_lce_model_card(values: dict[str, Any], template: str = TEMPLATE) -> str:
    """Render the template; ``values`` holds every variable it uses (StrictUndefined catches a missing one)."""
    environment = card_environment()
    return environment.get_template(template).render(**values)


def post_training_eval_tables(output_dir: Path) -> list[tuple[str, str]]:
    """(what was run, markdown table) for each TIR / CoT evaluation saved in the model folder."""
    from evaluation.results_table import render_table_from_results

    tables = []
    for folder, label in POST_TRAINING_EVALS.items():
        path = output_dir / folder / "results.json"
        if path.is_file():
            tables.append((label, render_table_from_results(path)))
    return tables


def write_lce_model_card(
    output_dir: Path,
    script_args: Any,
    training_args: Any,
    model_args: Any,
    counters: Counter[str],
    argv: Sequence[str],
    log_history: list[dict[str, Any]] | None = None,
    global_step: int = 0,
    epoch: float = 0.0,
) -> Path:
    """Write ``README.md`` (and the loss plot) into ``output_dir`` and validate it against the folder."""
    from evaluation.lce.report import load_results, render_comparison_table
    from mathcode_pile.lce.tir_demo import demo_provenance

    model_name = (training_args.hub_model_id or output_dir.name).split("/")[-1]
    base_model_path = model_args.model_name_or_path or ""
    base_model = base_model_path if is_hub_model_id(base_model_path) else None
    dataset_name = script_args.dataset_name
    dataset_hub_id = dataset_name if is_hub_model_id(dataset_name) else None
    points = loss_points(log_history or [])
    loss_plot = None
    if points:
        plot_loss_curve(points, output_dir / LOSS_PLOT, f"{model_name}: training loss")
        loss_plot = LOSS_PLOT
    chat = getattr(script_args, "conversation_format", "lce") == "chat"
    eval_table = None
    if not chat and (output_dir / EVAL_RESULTS).is_file():
        eval_table = render_comparison_table(load_results(output_dir / EVAL_RESULTS))
    tags = ["math", "mathcoder2", "tool-integrated-reasoning"] if chat else ["math", "mathcoder", "lce"]
    card_data = ModelCardData(
        license=script_args.model_license,
        language=["en"],
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=[*tags, "code-interpreter", "sft", "trl"],
        base_model=base_model,
        datasets=[dataset_hub_id] if dataset_hub_id else None,
    )
    chat_template = getattr(training_args, "chat_template_path", None)
    text = render_lce_model_card(
        {
            "card_data": card_data.to_yaml(),
            "model_name": model_name,
            "base_model": base_model,
            "base_model_path": base_model_path,
            "load_target": training_args.hub_model_id or str(output_dir),
            "dataset_name": dataset_name,
            "dataset_hub_id": dataset_hub_id,
            "rows_in": counters["rows_in"],
            "rows_kept": counters["rows_kept"],
            "dropped": sorted(
                (k.removeprefix("dropped_"), v) for k, v in counters.items() if k.startswith("dropped_")
            ),
            "tokens": counters["tokens"],
            "trained_tokens": counters["trained_tokens"],
            "context_length": training_args.max_length,
            "mask_execution": getattr(training_args, "mask_execution", True),
            "solution_format": getattr(script_args, "solution_format", "lce"),
            "hyperparameters": lce_hyperparameters(training_args, model_args),
            "global_steps": global_step,
            "epochs": round(epoch, 3),
            "final_loss": points[-1][1] if points else None,
            "loss_plot": loss_plot,
            "eval_table": eval_table,
            "command": " ".join(["python -m training.sft_lce", *(shlex.quote(arg) for arg in argv)]),
            "versions": framework_versions(),
            "chat_template": Path(chat_template).name if chat_template else None,
            "dataset_provenance": demo_provenance(dataset_name),
            "eval_tables": post_training_eval_tables(output_dir) if chat else [],
        },
        POST_TRAINING_TEMPLATE if chat else TEMPLATE,
    )
    path = output_dir / "README.md"
    path.write_text(text, encoding="utf-8")
    validate_model_card(text, output_dir)
    logger.info("model card written to %s", path)
    return path
