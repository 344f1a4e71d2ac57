"""One-GPU proof of the continued-pretraining path: throughput, MFU, memory, checkpoint and generation, in one run.

    python benchmarks/gpu_check.py --out DIR           # a CUDA device: Llama-3-8B shape at 8192 tokens, <= 6 min
    python benchmarks/gpu_check.py --tiny --out DIR    # CPU smoke mode: the same code path on a tiny model

No download: the models are random-weight models of published architectures (``training/architectures``), the
tokenizer is trained in a second on the bundled sample text, and that text (the CPU smoke recipe's mixture) is what
the model trains on. Figures are written to ``DIR/gpu_check.json`` after every phase (and after every training step),
so a run cut short keeps what it measured. The phases:

1. **environment**: versions, device, memory; on CUDA a bf16 8192^3 matrix product, the achievable ceiling.
2. **plan**: how many decoder layers of the architecture fit on this device (``training.memory``'s estimate, full
   width, all layers when they fit), printed with the arithmetic.
3. **training**: the paper recipe (``recipes/Llama-3-8B/cpt/config_full.yaml``) through ``training.cpt.prepare_run``
   (its data loading, one BOS / one EOS per document, ``bfd_split`` packing into rows of ``--max_length`` tokens,
   ``SFTTrainer`` with bf16 and activation checkpointing), with a few overrides for a short run: steps, one row per
   step, a learning rate that moves random weights. Tokens/s, step time, peak memory and MFU (model FLOPs per token
   as ``training.throughput`` counts them x tokens/s / the device's bf16 dense peak). The loss must be finite and
   fall. The last step saves a full checkpoint (weights, optimizer, scheduler), timed.
4. **generation**: the LCE inference engine (``evaluation.lce``) with its transformers backend and sandboxed code
   sessions on a random Llama-3.2-1B-shaped model: problems/s one problem at a time vs ``--gen_batch`` at once.
   Random weights write no LCE blocks, so every solution is one block of up to ``--gen_tokens`` tokens that the
   loop then rejects as malformed and no code runs: the figure is the engine's batched decoding, not solving.
5. **reload**: a fresh random model resumes from the checkpoint through the trainer's own resume; the first resumed
   steps must continue the loss curve (a model that did not get the weights back would start at the initial loss).

``--budget_s`` bounds the whole run: training stops early past 60% of it (and still saves), later phases are skipped
with a reason when too little time is left. The exit status is 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import gc
import importlib.metadata
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
# the check never needs the network: fail fast instead of waiting on a Hub that cannot be reached
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402

try:
    from mathcode_pile.config import read_recipe
    from training.config import parse_cpt_args
    from training.cpt import prepare_run, resume_checkpoint
    from training.data import load_documents, parse_mixture
    from training.memory import GIB, ModelShape, estimate_memory, layers_that_fit
    from training.model_init import model_init_kwargs
    from training.random_models import (
        build_random_model,
        load_architecture,
        match_tokenizer,
        torch_dtype,
        train_tokenizer,
        write_model_folder,
    )
    from training.throughput import (
        ATTENTION_FLOPS_FORMULA,
        StepTimer,
        matmul_parameters,
        model_flops_per_token,
        peak_flops,
        synchronize,
    )
except ImportError as missing:  # a GPU machine with torch and transformers but without trl / datasets
    sys.exit(f"gpu_check: {missing}; install the wheels of `make gpu-wheels` first (recipes/README.md, GPU check)")

logger = logging.getLogger("gpu_check")

#: The recipe whose training settings are checked (the paper's Llama-3-8B continued pretraining).
BASE_RECIPE = REPO_ROOT / "recipes/Llama-3-8B/cpt/config_full.yaml"
#: The recipe whose data mixture (bundled samples, offline) the check trains on.
DATA_RECIPE = REPO_ROOT / "recipes/tiny-llama/cpt/config_full.yaml"
REPORT_FILE = "gpu_check.json"
#: Share of the device's memory the plan may fill: the allocator's fragmentation and caches need the rest.
MEMORY_HEADROOM = 0.9
#: Share of ``--budget_s`` after which training stops (and saves): reload and generation need the rest.
TRAINING_BUDGET_SHARE = 0.6
#: "The loss falls": the last step's loss at least 2% under the first one (a random model's first loss is about
#: ln(vocabulary); step-to-step noise on the same text is far smaller, a run that does not learn stays flat).
LOSS_FALL_FACTOR = 0.98
#: GSM8K test questions are the prompts of the generation phase (the engine builds MathCoder's prompt around them).
GENERATION_PROMPTS = "gsm8k_test"


@dataclass(frozen=True)
class Preset:
    """Defaults of a mode; every one can be overridden on the command line."""

    train_model: str
    gen_model: str
    max_length: int
    steps: int
    skip_steps: int
    resume_steps: int
    gen_batch: int
    gen_single_problems: int
    gen_tokens: int
    budget_s: float
    learning_rate: float


#: On a GPU: the paper's shape and context, bounded by a 6-minute budget so that a second try fits in 15 minutes.
GPU_PRESET = Preset("llama-3-8b", "llama-3.2-1b", 8192, 12, 2, 2, 32, 4, 128, 360.0, 3e-4)
#: ``--tiny``: the same phases in well under a minute on a laptop CPU.
TINY_PRESET = Preset("llama-tiny", "llama-tiny", 256, 8, 2, 2, 8, 2, 16, 240.0, 1e-2)


class Report:
    """The JSON file of figures, rewritten (atomically) whenever something is added."""

    def __init__(self, out_dir: Path, command: list[str]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / REPORT_FILE
        self.data: dict[str, Any] = {
            "schema": 1,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "errors": [],
        }
        self.write()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(self.path)


@dataclass
class Context:
    """What the phases share."""

    args: argparse.Namespace
    report: Report
    device: torch.device
    work_dir: Path
    deadline: float
    mixture: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    tokenizer: Any = None
    training_config: Any = None
    saved_step: int | None = None
    saved_mode: str | None = None
    save_seconds: float | None = None
    losses: list[tuple[int, float]] = dataclasses.field(default_factory=list)

    @property
    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()


class PhaseSkippedError(Exception):
    """A phase that did not run, with the reason (budget, disk, an earlier phase that failed)."""


# --------------------------------------------------------------------------------------------------- environment


def package_versions() -> dict[str, str | None]:
    names = [
        "torch", "transformers", "trl", "datasets", "accelerate", "huggingface_hub", "tokenizers", "safetensors",
        "pyarrow", "pandas", "numpy", "flash_attn",
    ]  # fmt: skip
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def measure_matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 10) -> float:
    """bf16 ``size^3`` matrix products on random data, timed with CUDA events after warm-up: TFLOP/s."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        torch.matmul(a, b)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        torch.matmul(a, b)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / repeats
    del a, b
    torch.cuda.empty_cache()
    return 2 * size**3 / seconds / 1e12


def phase_environment(ctx: Context) -> dict[str, Any]:
    device = ctx.device
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "device_type": device.type,
        "device_memory_gib": round(device_memory_bytes(device) / GIB, 2),
        "work_dir": str(ctx.work_dir),
        "work_dir_free_gib": round(shutil.disk_usage(ctx.work_dir).free / GIB, 1),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(
            device_name=torch.cuda.get_device_name(device),
            multiprocessors=properties.multi_processor_count,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            bf16_matmul_tflops_measured=round(measure_matmul_tflops(device), 1),
        )
        print(
            f"device: {info['device_name']}, {info['device_memory_gib']} GiB; bf16 8192^3 matmul "
            f"{info['bf16_matmul_tflops_measured']} TFLOP/s measured"
        )
    else:
        info["device_name"] = platform.processor() or "cpu"
        print(f"device: CPU ({os.cpu_count()} cores, {info['device_memory_gib']} GiB): a smoke run, not a measurement")
    return info


# ---------------------------------------------------------------------------------------------------------- data


def bundled_mixture() -> list[dict[str, Any]]:
    """The CPU smoke recipe's mixture of bundled samples, with file paths made absolute (any working directory)."""
    mixture = [dict(entry) for entry in read_recipe(DATA_RECIPE)["dataset_mixture"]]
    for entry in mixture:
        files = entry.get("data_files")
        if isinstance(files, str):
            entry["data_files"] = str(REPO_ROOT / files)
        elif isinstance(files, list):
            entry["data_files"] = [str(REPO_ROOT / f) for f in files]
    return mixture


def phase_data(ctx: Context) -> dict[str, Any]:
    """Read the training text once and train the tokenizer on it."""
    started = time.perf_counter()
    ctx.mixture = bundled_mixture()
    documents, reports = load_documents(parse_mixture(ctx.mixture), "text", seed=0)
    ctx.tokenizer = train_tokenizer(documents["text"])
    return {
        "sources": [report.to_dict() for report in reports],
        "documents": len(documents),
        "characters": sum(len(text) for text in documents["text"]),
        "tokenizer_vocabulary": len(ctx.tokenizer),
        "seconds": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------------------------------------------------- plan


def training_arguments(ctx: Context, max_steps: int, save: str | None) -> tuple[Any, Any, Any]:
    """The paper recipe with the check's overrides, parsed by the project's own parser; ``save`` is a checkpoint
    mode (``full``, ``model``) for the last step, or None."""
    args = ctx.args
    overrides = [
        "--model_name_or_path", str(ctx.work_dir / "train_model"),
        "--output_dir", str(ctx.work_dir / "cpt"),
        "--max_steps", str(max_steps),
        "--max_length", str(args.max_length),
        "--per_device_train_batch_size", str(args.per_device_train_batch_size),
        "--gradient_accumulation_steps", "1",
        "--learning_rate", str(args.learning_rate),
        "--warmup_steps", "1",
        "--logging_steps", "1",
        "--save_strategy", "steps" if save else "no",
        "--save_only_model", "true" if save == "model" else "false",
        "--save_steps", str(ctx.saved_step or max_steps),  # a resumed run keeps the saved one (no warning)
        "--save_total_limit", "1",
        "--report_to", "none",
        "--push_to_hub", "false",
        "--disable_tqdm", "true",
        "--dataset_num_proc", "1",
        "--hardware_gpus", "1",
    ]  # fmt: skip
    if args.dtype:
        overrides += ["--dtype", args.dtype]
    if args.attn_implementation:
        overrides += ["--attn_implementation", args.attn_implementation]
    if ctx.device.type == "cpu":
        overrides += ["--use_cpu", "true"]
    script_args, training_args, model_args = parse_cpt_args(["--config", str(BASE_RECIPE), *overrides])
    script_args.dataset_mixture = ctx.mixture  # the bundled samples instead of the Hub corpus, same loader
    return script_args, training_args, model_args


def state_bytes_per_parameter(weights_dtype: torch.dtype, autocast_bf16: bool) -> tuple[int, str]:
    """Bytes of model state per parameter for one process without sharding, and why."""
    if weights_dtype == torch.bfloat16:
        return 8, "bf16 weights (2) + bf16 gradients (2) + AdamW's two moments in the weights' dtype (4)"
    extra = 2 if autocast_bf16 else 0
    why = "fp32 weights (4) + fp32 gradients (4) + fp32 AdamW moments (8)"
    return 16 + extra, why + (" + bf16 copies autocast keeps during the forward (2)" if extra else "")


def phase_plan(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    _, training_args, model_args = training_arguments(ctx, max_steps=args.steps, save=None)
    config = load_architecture(args.train_model)
    shape = ModelShape.from_config(config)
    total = device_memory_bytes(ctx.device)
    usable = int(total * MEMORY_HEADROOM)
    weights = torch_dtype(model_args.dtype)
    state_bytes, state_why = state_bytes_per_parameter(weights, bool(training_args.bf16))
    estimate_kwargs = {
        "micro_batch": training_args.per_device_train_batch_size,
        "seq_len": args.max_length,
        "shards": 1,
        "activation_checkpointing": bool(training_args.activation_checkpointing),
        "activation_bytes": 2 if training_args.bf16 else 4,
        "overhead": 3 * GIB if ctx.device.type == "cuda" else GIB,
        "fused_lm_head": training_args.fused_lm_head,
        "state_bytes_per_parameter": state_bytes,
    }
    if args.num_layers:
        layers = args.num_layers
        estimate = estimate_memory(dataclasses.replace(shape, num_layers=layers), **estimate_kwargs)
        why = f"--num_layers {layers} given"
    else:
        layers, estimate = layers_that_fit(shape, usable, **estimate_kwargs)
        if layers == 0:
            raise RuntimeError(
                f"not even one layer of {args.train_model} fits in {usable / GIB:.1f} GiB: "
                f"{estimate.total_gib:.1f} GiB needed"
            )
        why = (
            f"all {layers} layers fit"
            if layers == shape.num_layers
            else f"{layers} of {shape.num_layers} layers fit (full width; one more layer would exceed the budget)"
        )
    sharded_states = estimate_memory(shape, **{**estimate_kwargs, "state_bytes_per_parameter": 16})
    plan = {
        "architecture": args.train_model,
        "layers": layers,
        "layers_published": shape.num_layers,
        "why": why,
        "parameters": dataclasses.replace(shape, num_layers=layers).parameters,
        "device_memory_gib": round(total / GIB, 2),
        "budget_gib": round(usable / GIB, 2),
        "budget_rule": f"{MEMORY_HEADROOM:.0%} of the device's memory",
        "state_bytes_per_parameter": state_bytes,
        "state_bytes_why": state_why,
        "estimate_gib": {
            "total": round(estimate.total_gib, 2),
            "model_states": round(estimate.model_states / GIB, 2),
            "activations": round(estimate.activations / GIB, 2),
            "overhead": round(estimate.overhead / GIB, 2),
        },
        "all_layers_with_fp32_master_weights_gib": round(sharded_states.total_gib, 2),
        "micro_batch_rows": training_args.per_device_train_batch_size,
        "row_tokens": args.max_length,
    }
    print(
        f"plan: {layers} of {shape.num_layers} layers of {args.train_model} ({plan['parameters'] / 1e6:,.0f}M "
        f"parameters): estimated {estimate.total_gib:.1f} GiB of a {usable / GIB:.1f} GiB budget "
        f"({MEMORY_HEADROOM:.0%} of {total / GIB:.1f} GiB); model states {state_bytes} B/parameter = {state_why}; "
        f"with fp32 master weights and moments (16 B/parameter) all layers would need "
        f"{sharded_states.total_gib:.1f} GiB"
    )
    return plan


# ------------------------------------------------------------------------------------------------------ training


class CheckCallback(TrainerCallback):
    """Marks the trainer's events, prints one line per step, stops at the deadline, keeps the report current."""

    def __init__(
        self,
        device: torch.device,
        timer: StepTimer,
        stop_at: float | None,
        on_update: Callable[[CheckCallback], None],
    ) -> None:
        self.device = device
        self.timer = timer
        self.stop_at = stop_at
        self.on_update = on_update
        self.train_begin: float | None = None
        self.begin_mark: tuple[float, int] = (0.0, 0)
        self.saves: list[float] = []
        self.losses: list[tuple[int, float]] = []
        self.stopped_early = False
        self.peak_memory_bytes = 0

    def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        synchronize(self.device)
        self.train_begin = time.perf_counter()
        self.begin_mark = (self.train_begin, int(state.num_input_tokens_seen))
        return control

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.device.type == "cuda":
            self.peak_memory_bytes = max(self.peak_memory_bytes, torch.cuda.max_memory_allocated(self.device))
        if self.stop_at is not None and time.monotonic() > self.stop_at and state.global_step < state.max_steps:
            self.stopped_early = True
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if logs and "loss" in logs:
            loss = float(logs["loss"])
            self.losses.append((state.global_step, loss))
            marks = [self.begin_mark, *self.timer.marks]
            step_s, tokens = marks[-1][0] - marks[-2][0], marks[-1][1] - marks[-2][1]
            memory = f", peak {self.peak_memory_bytes / GIB:.1f} GiB" if self.device.type == "cuda" else ""
            print(
                f"  step {state.global_step}/{state.max_steps}: loss {loss:.4f}, {step_s:.2f} s, "
                f"{tokens / step_s if step_s > 0 else 0:,.0f} tokens/s{memory}",
                flush=True,
            )
            self.on_update(self)
        return control

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        synchronize(self.device)
        self.saves.append(time.perf_counter())
        return control


def checkpoint_bytes_estimate(parameters: int, weights_dtype: torch.dtype, mode: str) -> int:
    """A Trainer checkpoint's size: the weights, and for ``full`` also AdamW's two moments (in the weights' dtype)."""
    width = torch.tensor([], dtype=weights_dtype).element_size()
    return parameters * width * (3 if mode == "full" else 1)


def checkpoint_mode(requested: str, parameters: int, weights_dtype: torch.dtype, free: int) -> tuple[str | None, str]:
    """The checkpoint the disk can take (``full``: resumable; ``model``: the weights alone; None) and why."""
    full = checkpoint_bytes_estimate(parameters, weights_dtype, "full")
    weights = checkpoint_bytes_estimate(parameters, weights_dtype, "model")
    if requested == "none":
        return None, "--checkpoint none"
    if requested == "full" and free >= 1.2 * full:
        return "full", f"about {full / 1e9:.1f} GB, {free / 1e9:.1f} GB free"
    if free >= 1.2 * weights:
        why = "" if requested == "model" else f"a full checkpoint needs about {full / 1e9:.1f} GB; "
        return "model", f"{why}about {weights / 1e9:.1f} GB, {free / 1e9:.1f} GB free"
    return None, f"not saved: the weights alone need about {weights / 1e9:.1f} GB, {free / 1e9:.1f} GB free"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def free_accelerator_memory(*objects: Any) -> None:
    for obj in objects:
        accelerator = getattr(obj, "accelerator", None)
        if accelerator is not None:
            accelerator.free_memory()
    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_with_check(
    ctx: Context,
    max_steps: int,
    save: str | None,
    seed: int,
    on_update: Callable[[CheckCallback], None],
    stop_at: float | None,
) -> tuple[Any, Any, CheckCallback, StepTimer, float]:
    """A random model of the planned shape trained by ``prepare_run``'s trainer; returns it ready to ``train()``."""
    script_args, training_args, model_args = training_arguments(ctx, max_steps=max_steps, save=save)
    init = model_init_kwargs(model_args)
    started = time.perf_counter()
    model = build_random_model(ctx.training_config, init["dtype"], init["attn_implementation"], ctx.device, seed)
    synchronize(ctx.device)
    init_s = time.perf_counter() - started
    timer = StepTimer(ctx.device)
    callback = CheckCallback(ctx.device, timer, stop_at, on_update)
    prepared = prepare_run(script_args, training_args, model_args, callbacks=[timer, callback], model=model)
    prepared.trainer.remove_callback(PrinterCallback)  # our callback prints one line per step instead
    return prepared.trainer, model, callback, timer, init_s


def progress_figures(callback: CheckCallback) -> dict[str, Any]:
    return {
        "steps_done": len(callback.losses),
        "losses": callback.losses,
        "peak_memory_allocated_gib": round(callback.peak_memory_bytes / GIB, 2)
        if callback.peak_memory_bytes
        else None,
    }


def phase_training(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    plan = ctx.report.data.get("plan") or {}
    if not plan.get("layers"):
        raise PhaseSkippedError("no plan (the plan phase failed)")
    ctx.training_config = match_tokenizer(load_architecture(args.train_model, plan["layers"]), ctx.tokenizer)
    write_model_folder(ctx.work_dir / "train_model", ctx.training_config, ctx.tokenizer)
    shutil.rmtree(ctx.work_dir / "cpt", ignore_errors=True)

    _, _, model_args = training_arguments(ctx, max_steps=args.steps, save=None)
    weights = torch_dtype(model_args.dtype)
    free = shutil.disk_usage(ctx.work_dir).free
    save, checkpoint_note = checkpoint_mode(args.checkpoint, plan["parameters"], weights, free)
    print(f"checkpoint: {save or 'none'} ({checkpoint_note}) in {ctx.work_dir}")
    live: dict[str, Any] = {"status": "running"}

    def update(callback: CheckCallback) -> None:
        live.update(progress_figures(callback))
        ctx.report.set("training", live)

    stop_at = time.monotonic() + max(ctx.remaining_s - (1 - TRAINING_BUDGET_SHARE) * args.budget_s, 0)
    trainer, model, callback, timer, init_s = train_with_check(ctx, args.steps, save, args.seed, update, stop_at)
    training_args = trainer.args
    print(
        f"training: {args.train_model} x {plan['layers']} layers, attention "
        f"{model.config._attn_implementation}, {training_args.per_device_train_batch_size} row(s) x "
        f"{args.max_length} tokens per step, bf16 {training_args.bf16}, activation checkpointing "
        f"{training_args.activation_checkpointing}, {len(trainer.train_dataset)} packed rows"
    )
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    trainer.train()

    steps_done = len(timer.marks)
    warm = args.skip_steps
    if steps_done <= warm:
        raise RuntimeError(f"only {steps_done} step(s) ran: no step left to time after {warm} warm-up step(s)")
    steady = timer.steady_state(warm)
    step_seconds = timer.step_seconds(warm)
    lengths = [int(n) for row in trainer.train_dataset["seq_lengths"] for n in row]
    per_token = model_flops_per_token(model, lengths)
    dense = 6 * matmul_parameters(model)
    peak, peak_source = peak_flops(ctx.device, args.peak_tflops)
    tokens_per_s = steady.tokens_per_second
    figures: dict[str, Any] = {
        "status": "ok",
        "architecture": args.train_model,
        "layers": plan["layers"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "attention_implementation": model.config._attn_implementation,
        "dtype": str(weights).replace("torch.", ""),
        "bf16_autocast": bool(training_args.bf16),
        "activation_checkpointing": bool(training_args.activation_checkpointing),
        "loss_head": "TRL chunked" if training_args.fused_lm_head else "model's own",
        "optimizer": str(training_args.optim.value),
        "row_tokens": args.max_length,
        "rows_per_step": training_args.per_device_train_batch_size,
        "packed_rows": len(trainer.train_dataset),
        "mean_document_tokens": round(sum(lengths) / len(lengths), 1),
        "model_init_s": round(init_s, 2),
        "steps": steps_done,
        "timed_steps": len(step_seconds),
        "stopped_early_by_budget": callback.stopped_early,
        "tokens_per_s_per_device": round(tokens_per_s, 1),
        "step_s_median": round(statistics.median(step_seconds), 4),
        "step_s_mean": round(statistics.fmean(step_seconds), 4),
        "tokens_per_step": round(steady.tokens / len(step_seconds), 1),
        "model_flops_per_token": per_token,
        "attention_share_of_flops": round(1 - dense / per_token, 4),
        "flops_formula": ATTENTION_FLOPS_FORMULA,
        "peak_tflops_assumed": peak / 1e12 if peak else None,
        "peak_source": peak_source,
        "mfu": round(tokens_per_s * per_token / peak, 4) if peak else None,
        "losses": callback.losses,
    }
    measured = (ctx.report.data.get("environment") or {}).get("bf16_matmul_tflops_measured")
    if peak and measured:
        figures["mfu_vs_measured_matmul"] = round(tokens_per_s * per_token / (measured * 1e12), 4)
    if ctx.device.type == "cuda":
        figures["peak_memory_allocated_gib"] = round(callback.peak_memory_bytes / GIB, 2)
        figures["peak_memory_reserved_gib"] = round(torch.cuda.max_memory_reserved(ctx.device) / GIB, 2)
    else:
        figures["peak_host_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2)
    figures["loss_first"], figures["loss_last"] = callback.losses[0][1], callback.losses[-1][1]
    ctx.losses = callback.losses
    if callback.saves:
        ctx.saved_step, ctx.saved_mode = trainer.state.global_step, save
        ctx.save_seconds = callback.saves[-1] - timer.marks[-1][0]
        checkpoint = resume_checkpoint(training_args)
        size = folder_bytes(checkpoint) if checkpoint else 0
        figures["checkpoint"] = {
            "mode": save,
            "why": checkpoint_note,
            "path": str(checkpoint),
            "step": ctx.saved_step,
            "bytes": size,
            "save_s": round(ctx.save_seconds, 2),
            "write_gb_per_s": round(size / 1e9 / ctx.save_seconds, 2) if ctx.save_seconds > 0 else None,
        }
    else:
        figures["checkpoint"] = {"mode": None, "why": checkpoint_note}
    free_accelerator_memory(trainer)
    del trainer, model
    free_accelerator_memory()
    mfu = f"MFU {figures['mfu']:.1%} (peak {figures['peak_tflops_assumed']:.0f} TFLOP/s)" if peak else "MFU n/a on CPU"
    print(
        f"training: {tokens_per_s:,.0f} tokens/s, median step {figures['step_s_median']:.3f} s, {mfu}, "
        f"loss {figures['loss_first']:.3f} -> {figures['loss_last']:.3f}"
    )
    return figures


# ---------------------------------------------------------------------------------------------------- generation


def generation_questions(count: int) -> list[str]:
    from mathcode_pile.jsonl import read_jsonl
    from mathcode_pile.paths import benchmark_file, benchmarks_dir

    rows = read_jsonl(benchmark_file(benchmarks_dir(), GENERATION_PROMPTS))[:count]
    return [row["question"] for row in rows]


def solve_timed(backend: Any, sessions: Any, questions: list[str], batch: int, tokens: int) -> dict[str, Any]:
    """Solve ``questions`` with at most ``batch`` problems (and blocks) at once; figures of the run."""
    from evaluation.lce.engine import LCEInferenceConfig, LCEInferenceEngine

    backend.max_batch_size = batch
    config = LCEInferenceConfig(max_new_tokens_per_block=tokens, max_concurrent_problems=batch)
    engine = LCEInferenceEngine(backend, sessions, config)
    first_batch = len(backend.batch_sizes)
    started = time.perf_counter()
    solutions = asyncio.run(engine.solve_many(questions))
    synchronize(torch.device(backend.device))
    seconds = time.perf_counter() - started
    counters: Counter[str] = Counter()
    for solution in solutions:
        counters.update(solution.counters)
    batches = backend.batch_sizes[first_batch:]
    return {
        "problems": len(questions),
        "seconds": round(seconds, 3),
        "problems_per_s": round(len(questions) / seconds, 3),
        "generate_calls": len(batches),
        "mean_rows_per_call": round(sum(batches) / len(batches), 2) if batches else 0,
        "finish_reasons": dict(Counter(solution.finish_reason for solution in solutions)),
        "code_blocks_run": counters.get("execution_blocks", 0),
        "errors": [solution.error for solution in solutions if solution.finish_reason == "error"][:3],
    }


def phase_generation(ctx: Context) -> dict[str, Any]:
    from evaluation.lce.backends import TransformersBackend
    from mathcode_pile.lce.execution import SandboxSessions
    from mathcode_pile.lce.tokens import add_lce_tokens

    args = ctx.args
    if ctx.remaining_s < 45:
        raise PhaseSkippedError(f"{ctx.remaining_s:.0f} s of the budget left")
    if ctx.tokenizer is None:
        raise PhaseSkippedError("no tokenizer (the data phase failed)")
    tokenizer = copy.deepcopy(ctx.tokenizer)  # adding the markers must not change the tokenizer training uses
    add_lce_tokens(tokenizer)  # an LCE model's vocabulary: the block markers are single tokens that stop a block
    config = match_tokenizer(load_architecture(args.gen_model), tokenizer)
    dtype = "bfloat16" if ctx.device.type == "cuda" else "float32"
    started = time.perf_counter()
    model = build_random_model(config, dtype, "sdpa", ctx.device, args.seed)
    folder = write_model_folder(ctx.work_dir / "gen_model", config, tokenizer, model)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    free_accelerator_memory()
    # whole blocks: the early stop on malformed starts would end a random model's every block after a token or two
    backend = TransformersBackend(
        str(folder), context_length=2048, device=str(ctx.device), dtype="auto", stop_malformed_starts=False
    )
    setup_s = time.perf_counter() - started
    questions = generation_questions(max(args.gen_batch, args.gen_single_problems))
    with SandboxSessions(workers=2) as sessions:
        solve_timed(backend, sessions, questions[:1], 1, 4)  # warm-up: sandbox pool, kernels, caches
        single = solve_timed(backend, sessions, questions[: args.gen_single_problems], 1, args.gen_tokens)
        batched = solve_timed(backend, sessions, questions[: args.gen_batch], args.gen_batch, args.gen_tokens)
    del backend
    free_accelerator_memory()
    speedup = batched["problems_per_s"] / single["problems_per_s"] if single["problems_per_s"] else None
    figures = {
        "status": "ok",
        "architecture": args.gen_model,
        "parameters": parameters,
        "dtype": dtype,
        "tokens_per_block": args.gen_tokens,
        "setup_s": round(setup_s, 2),
        "one_at_a_time": single,
        "batched": {**batched, "batch": args.gen_batch},
        "speedup": round(speedup, 2) if speedup else None,
        "note": "random weights write no LCE blocks: each problem is one generated block that the loop rejects "
        "as malformed, and no code runs; the figure is the engine's batched decoding, not solving",
    }
    print(
        f"generation: {single['problems_per_s']:.2f} problems/s one at a time, {batched['problems_per_s']:.2f} "
        f"with {args.gen_batch} at once ({figures['speedup']}x); {args.gen_tokens}-token blocks"
    )
    return figures


# -------------------------------------------------------------------------------------------------------- reload


def phase_reload(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    if ctx.saved_step is None:
        raise PhaseSkippedError("no checkpoint was saved")
    needed = 2 * (ctx.save_seconds or 0) + 30
    if ctx.remaining_s < needed:
        raise PhaseSkippedError(f"{ctx.remaining_s:.0f} s of the budget left, about {needed:.0f} s needed")
    saved = ctx.saved_step
    figures: dict[str, Any] = {"status": "running", "from_step": saved, "checkpoint_mode": ctx.saved_mode}

    def update(callback: CheckCallback) -> None:
        ctx.report.set("reload", {**figures, **progress_figures(callback)})

    # other weights than the checkpoint's: only a real reload brings the loss back to where training left it
    trainer, model, callback, _, _ = train_with_check(
        ctx, saved + args.resume_steps, None, args.seed + 1, update, stop_at=None
    )
    checkpoint = resume_checkpoint(trainer.args)
    if checkpoint is None:
        raise RuntimeError(f"no complete checkpoint found in {trainer.args.output_dir}")
    size = folder_bytes(checkpoint)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint))
    reload_s = (callback.train_begin or started) - started
    resumed = [(step, loss) for step, loss in callback.losses if step > saved]
    free_accelerator_memory(trainer)
    del trainer, model
    free_accelerator_memory()
    first_loss, last_loss = ctx.losses[0][1], ctx.losses[-1][1]
    figures.update(
        status="ok",
        checkpoint=str(checkpoint),
        bytes=size,
        reload_s=round(reload_s, 2),
        read_gb_per_s=round(size / 1e9 / reload_s, 2) if reload_s > 0 else None,
        reload_includes="train() from its call to its first step: weights (with a full checkpoint also the "
        "optimizer, scheduler and RNG states) loaded, optimizer created, data skipped to the saved position",
        resumed_losses=resumed,
        loss_before_save=last_loss,
        loss_at_start=first_loss,
    )
    print(
        f"reload: {size / 1e9:.2f} GB in {reload_s:.1f} s; loss {last_loss:.3f} at step {saved} -> "
        + ", ".join(f"{loss:.3f} at step {step}" for step, loss in resumed)
    )
    return figures


# ------------------------------------------------------------------------------------------------------- running


def run_phase(ctx: Context, name: str, phase: Callable[[Context], dict[str, Any]]) -> None:
    print(f"== {name} ({max(ctx.remaining_s, 0):.0f} s of the budget left)", flush=True)
    started = time.perf_counter()
    try:
        figures = phase(ctx)
    except PhaseSkippedError as reason:
        figures = {"status": "skipped", "reason": str(reason)}
        print(f"{name}: skipped: {reason}")
    except Exception as error:  # one failed phase must not cost the figures of the others
        traceback.print_exc()
        message = f"{type(error).__name__}: {error}"
        figures = {**(ctx.report.data.get(name) or {}), "status": "error", "error": message}
        ctx.report.data["errors"].append({"phase": name, "error": message})
    free_accelerator_memory()  # after the except block, whose traceback holds the failed phase's tensors
    figures["phase_s"] = round(time.perf_counter() - started, 2)
    ctx.report.set(name, figures)


def evaluate_checks(data: dict[str, Any]) -> dict[str, bool | None]:
    """Pass / fail of each claim the run makes (None: the phase did not run)."""
    training = data.get("training") or {}
    reload = data.get("reload") or {}
    generation = data.get("generation") or {}
    checks: dict[str, bool | None] = {}
    losses = [loss for _, loss in training.get("losses") or []]
    if training.get("status") == "ok":
        checks["loss_finite"] = all(math.isfinite(loss) for loss in losses)
        checks["loss_falls"] = len(losses) >= 2 and losses[-1] < LOSS_FALL_FACTOR * losses[0]
    else:
        checks["loss_finite"] = checks["loss_falls"] = None
    if reload.get("status") == "ok":
        resumed = reload["resumed_losses"]
        midpoint = (reload["loss_at_start"] + reload["loss_before_save"]) / 2
        checks["reload_continues"] = (
            bool(resumed)
            and resumed[0][0] == reload["from_step"] + 1
            and all(math.isfinite(loss) and loss < midpoint for _, loss in resumed)
        )
    else:
        checks["reload_continues"] = None
    if generation.get("status") == "ok":
        runs = [generation["one_at_a_time"], generation["batched"]]
        checks["generation_ran"] = all(run["problems"] > 0 and "error" not in run["finish_reasons"] for run in runs)
    else:
        checks["generation_ran"] = None
    return checks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {REPORT_FILE}")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke mode: tiny model, short rows, few steps")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where a GPU is present")
    parser.add_argument("--work_dir", type=Path, default=None, help="models and checkpoints (default: a temp folder)")
    parser.add_argument("--keep_work_dir", action="store_true", help="keep the work folder (checkpoints are large)")
    parser.add_argument("--train_model", default=None, help="architecture trained (training/architectures/*.json)")
    parser.add_argument("--num_layers", type=int, default=None, help="decoder layers (default: as many as fit)")
    parser.add_argument("--gen_model", default=None, help="architecture of the generation phase")
    parser.add_argument("--max_length", type=int, default=None, help="packed row length in tokens")
    parser.add_argument("--per_device_train_batch_size", type=int, default=1, help="packed rows per step")
    parser.add_argument("--steps", type=int, default=None, help="training steps (the last one saves)")
    parser.add_argument("--skip_steps", type=int, default=None, help="first steps left out of the timing")
    parser.add_argument("--resume_steps", type=int, default=None, help="steps after reloading the checkpoint")
    parser.add_argument("--learning_rate", type=float, default=None, help="random weights need more than 4e-5")
    parser.add_argument("--dtype", default=None, help="weights dtype (default: the recipe's bfloat16)")
    parser.add_argument("--attn_implementation", default=None, help="default: the recipe's (flash-attn or sdpa)")
    parser.add_argument(
        "--checkpoint",
        choices=["full", "model", "none"],
        default="full",
        help="what the last step saves: weights + optimizer + scheduler (resumable; weights only when the disk "
        "cannot take it), weights only, or nothing",
    )
    parser.add_argument("--gen_batch", type=int, default=None, help="problems solved at once in the batched run")
    parser.add_argument("--gen_single_problems", type=int, default=None, help="problems of the one-at-a-time run")
    parser.add_argument("--gen_tokens", type=int, default=None, help="new tokens per generated block")
    parser.add_argument("--skip", nargs="*", default=[], choices=["generation", "reload"], help="phases to leave out")
    parser.add_argument("--peak_tflops", type=float, default=None, help="device bf16 dense peak (default by name)")
    parser.add_argument("--budget_s", type=float, default=None, help="wall-clock bound of the whole run")
    parser.add_argument("--seed", type=int, default=3407)
    args = parser.parse_args(argv)
    preset = TINY_PRESET if args.tiny else GPU_PRESET
    for key, value in dataclasses.asdict(preset).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.skip_steps < 1 or args.steps <= args.skip_steps:
        parser.error("need --skip_steps >= 1 and --steps > --skip_steps (the timed steps come after the skipped)")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    use_cuda = torch.cuda.is_available() and not (args.cpu or args.tiny)
    device = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work_dir.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, [sys.executable, *sys.argv] if argv is None else ["gpu_check.py", *argv])
    report.set("mode", "gpu" if use_cuda else "cpu-smoke")
    report.set("settings", {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    ctx = Context(args=args, report=report, device=device, work_dir=work_dir, deadline=started + args.budget_s)
    try:
        run_phase(ctx, "environment", phase_environment)
        run_phase(ctx, "data", phase_data)
        run_phase(ctx, "plan", phase_plan)
        run_phase(ctx, "training", phase_training)
        if "generation" not in args.skip:
            run_phase(ctx, "generation", phase_generation)
        if "reload" not in args.skip:
            run_phase(ctx, "reload", phase_reload)
    finally:
        if not args.keep_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    checks = evaluate_checks(report.data)
    report.set("checks", checks)
    passed = all(value is True for name, value in checks.items() if name.split("_")[0] not in args.skip)
    report.set("status", "ok" if passed and not report.data["errors"] else "failed")
    report.set("seconds", round(time.monotonic() - started, 1))
    print_summary(report.data)
    return 0 if report.data["status"] == "ok" else 1


def print_summary(data: dict[str, Any]) -> None:
    training = data.get("training") or {}
    generation = data.get("generation") or {}
    reload = data.get("reload") or {}
    checkpoint = training.get("checkpoint") or {}
    rows = [
        ("mode", data.get("mode")),
        ("device", (data.get("environment") or {}).get("device_name")),
        ("model", f"{training.get('architecture')} x {training.get('layers')} layers, {training.get('dtype')}"),
        ("tokens/s per device", training.get("tokens_per_s_per_device")),
        ("step time (median, s)", training.get("step_s_median")),
        ("MFU", training.get("mfu")),
        ("peak memory (GiB)", training.get("peak_memory_allocated_gib") or training.get("peak_host_rss_gib")),
        ("loss first -> last", f"{training.get('loss_first')} -> {training.get('loss_last')}"),
        ("checkpoint save (s)", checkpoint.get("save_s")),
        ("checkpoint reload (s)", reload.get("reload_s")),
        ("generation speed-up", generation.get("speedup")),
        ("checks", data.get("checks")),
        ("status", f"{data.get('status')} in {data.get('seconds')} s"),
    ]
    print("== summary")
    for name, value in rows:
        print(f"{name:>24}: {value}")
    for error in data.get("errors") or []:
        print(f"{'error':>24}: {error['phase']}: {error['error']}")


if __name__ == "__main__":
    sys.exit(main())
