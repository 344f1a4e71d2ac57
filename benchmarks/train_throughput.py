"""Training throughput of a continued-pretraining recipe: ``SFTTrainer`` against a bare PyTorch loop, same run.

    python benchmarks/train_throughput.py --config recipes/tiny-llama/cpt/config_full.yaml [--steps 8] [--key val]

Both sides train the same model (loaded fresh from the recipe's path, same dtype and attention), on the same packed
batches (taken from the trainer's own dataloader) with the same optimizer settings, gradient accumulation and
clipping. The bare loop is the ceiling: forward, backward, clip, AdamW step, nothing else. Steady-state tokens/s
leaves out the warm-up steps; each side runs ``--rounds`` times, alternating, and keeps its best round, so a busy
machine penalises both alike. The ratio trainer / bare is printed (goal >= 0.8).

On a CUDA device the script also prints MFU: achieved model FLOPs per second over the device's peak (bf16 dense
tensor throughput, looked up by device name or given with ``--peak_tflops``). Model FLOPs per token are counted
by ``training.throughput`` over the packed documents of the measured batches (dense products plus causal attention
per document).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import parse_cpt_args
from training.cpt import prepare_run
from training.throughput import StepTimer, Throughput, flops_per_token, peak_flops


def move(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def capture_batches(trainer: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` micro-batches of the trainer's dataloader (cycled if the data is shorter), on CPU."""
    batches: list[dict[str, Any]] = []
    while len(batches) < count:
        for batch in trainer.get_train_dataloader():
            batches.append(move(batch, torch.device("cpu")))
            if len(batches) == count:
                break
    return batches


def run_bare_loop(
    model_path: str,
    init_kwargs: dict[str, Any],
    training_args: Any,
    batches: list[dict[str, Any]],
    warmup: int,
    device: torch.device,
) -> Throughput:
    """Forward, backward, clip, AdamW: the same steps as the trainer with nothing around them."""
    torch.manual_seed(training_args.seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, **init_kwargs).to(device)
    if training_args.activation_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    fused = "fused" in str(training_args.optim.value)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=training_args.learning_rate,
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
        weight_decay=training_args.weight_decay,
        fused=fused,
    )
    accumulation = training_args.gradient_accumulation_steps
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(training_args.bf16))
    steps = len(batches) // accumulation
    start, tokens = 0.0, 0
    for step in range(steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, tokens = time.perf_counter(), 0
        for batch in batches[step * accumulation : (step + 1) * accumulation]:
            batch = move(batch, device)
            with autocast:
                loss = model(**batch, use_cache=False).loss / accumulation
            loss.backward()
            tokens += batch["input_ids"].numel()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training_args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return Throughput(tokens, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="measured optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps left out of the timing")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side; the best is kept")
    parser.add_argument("--peak_tflops", type=float, default=None, help="device peak for MFU (default by name)")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for both sides (default: torch's); 1 on a busy machine"
    )
    args, recipe_args = parser.parse_known_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    workdir = Path(tempfile.mkdtemp(prefix="train_throughput_"))
    overrides = [
        "--max_steps", str(args.warmup + args.steps), "--save_strategy", "no", "--report_to", "none",
        "--push_to_hub", "false", "--output_dir", str(workdir), "--disable_tqdm", "true",
    ]  # fmt: skip
    trainer_rates: list[Throughput] = []
    bare_rates: list[Throughput] = []
    batches: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        script_args, training_args, model_args = parse_cpt_args([*recipe_args, *overrides])
        device = training_args.device
        timer = StepTimer(device)
        prepared = prepare_run(script_args, training_args, model_args, callbacks=[timer])
        trainer = prepared.trainer
        accumulation = training_args.gradient_accumulation_steps
        if round_index == 0:
            batches = capture_batches(trainer, (args.warmup + args.steps) * accumulation)
            tokens_per_step = sum(b["input_ids"].numel() for b in batches) / (args.warmup + args.steps)
            print(
                f"recipe {recipe_args}: {training_args.per_device_train_batch_size} row(s) x "
                f"{training_args.max_length} tokens x {accumulation} accumulation "
                f"(~{tokens_per_step:,.0f} tokens per step) on {device}"
            )
        init_kwargs = dict(training_args.model_init_kwargs or {})
        bare_rates.append(
            run_bare_loop(model_args.model_name_or_path, init_kwargs, training_args, batches, args.warmup, device)
        )
        trainer.train()
        trainer_rates.append(timer.steady_state(args.warmup))
        print(
            f"round {round_index + 1}: bare loop {bare_rates[-1].tokens_per_second:,.0f} tokens/s, "
            f"SFTTrainer {trainer_rates[-1].tokens_per_second:,.0f} tokens/s"
        )

    best_trainer = max(trainer_rates, key=lambda r: r.tokens_per_second)
    best_bare = max(bare_rates, key=lambda r: r.tokens_per_second)
    ratio = best_trainer.tokens_per_second / best_bare.tokens_per_second
    print(f"SFTTrainer: {best_trainer.tokens_per_second:,.0f} tokens/s (best of {args.rounds})")
    print(f"bare loop:  {best_bare.tokens_per_second:,.0f} tokens/s (best of {args.rounds})")
    print(f"ratio SFTTrainer / bare loop: {ratio:.2f} (goal >= 0.8)")

    peak, peak_source = peak_flops(device, args.peak_tflops)
    if peak is None:
        print(f"MFU: n/a ({peak_source})")
    else:
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **init_kwargs)
        per_token = flops_per_token(model, batches)
        for name, rate in (("SFTTrainer", best_trainer), ("bare loop", best_bare)):
            mfu = rate.tokens_per_second * per_token / peak
            print(f"MFU {name}: {mfu:.1%} ({per_token / 1e9:.2f} GFLOP/token, peak {peak / 1e12:.0f} TFLOP/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
