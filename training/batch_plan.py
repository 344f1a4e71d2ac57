"""The global batch of a training recipe: rows per device x accumulation x GPUs x context = tokens per step.

``python -m training.batch_plan RECIPE`` prints that product as the recipe states it. ``make train`` and
``make train-lce`` print it before launching (``make -n`` shows it too), so the batch a run will have, such as
MathCoder2's 2M tokens per step for its ablations, can be read before any GPU is booked. It reads the YAML only
(no trainer import), so it takes a fraction of a second.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from mathcode_pile.config import RecipeError, read_recipe

BATCH_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length")


def tokens_per_step(rows_per_device: int, accumulation: int, processes: int, context: int) -> int:
    """Tokens per optimizer step when every packed row is full."""
    return rows_per_device * accumulation * processes * context


def describe_batch(values: Mapping[str, Any], recipe: str = "recipe") -> str:
    """One line with the arithmetic, on the GPUs the recipe states (``hardware_gpus``; one process otherwise)."""
    missing = [key for key in BATCH_KEYS if not isinstance(values.get(key), int)]
    if missing:
        return f"{recipe}: {', '.join(missing)} not set in the recipe: the trainer's defaults apply"
    rows, accumulation, context = (values[key] for key in BATCH_KEYS)
    gpus = values.get("hardware_gpus") or 1
    where = f"{gpus} GPUs" if values.get("hardware_gpus") else "1 process"
    tokens = tokens_per_step(rows, accumulation, gpus, context)
    return (
        f"{recipe}: global batch = {rows} rows/device x {accumulation} accumulation x {where} x {context:,} tokens "
        f"= {rows * accumulation * gpus:,} rows = {tokens:,} tokens per step"
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        print("usage: python -m training.batch_plan RECIPE.yaml", file=sys.stderr)
        return 2
    try:
        print(describe_batch(read_recipe(arguments[0]), arguments[0]))
    except RecipeError as exc:
        print(f"training.batch_plan: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
