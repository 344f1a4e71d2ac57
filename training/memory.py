"""Per-GPU memory estimates for the continued-pretraining recipes (the figures in ``recipes/README.md``).

A first-order model, good to a few GB, for choosing hardware before a launch:

- model states: 16 bytes per parameter (bf16 weights and gradients, fp32 master weights and two Adam moments),
  divided by the number of GPUs under ZeRO-3 / FSDP full sharding, whole on every GPU under DDP; a run without a
  sharding engine that loads the weights in bf16 keeps no fp32 copy, and PyTorch's AdamW holds its moments in the
  weights' dtype: 8 bytes per parameter (``state_bytes_per_parameter``);
- gathered weights under sharding: two of the largest parameter blocks (embedding or one decoder layer) in bf16,
  the one computing and the one being prefetched;
- activations: with activation checkpointing, each layer's input (2·b·s·h bytes) plus one layer recomputed
  (34·b·s·h bytes, Korthikanti et al. 2022 with FlashAttention, so no s² term); without it, every layer's;
  TRL's chunked loss never holds the b·s·vocab logits; with ``fused_lm_head: false`` they are held in fp32 with
  their gradient (8·b·s·vocab bytes);
- a fixed 3 GiB for the CUDA context, NCCL buffers and allocator fragmentation.

The architectures are the base models' published configs, so the estimate needs no download:
``python -m training.memory`` prints one README row per recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
OVERHEAD_BYTES = 3 * GIB


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only (Llama-style, gated MLP) architecture that memory depends on."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    num_attention_heads: int
    num_key_value_heads: int
    tie_word_embeddings: bool = False

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """The shape of a transformers config (``LlamaConfig`` and the like)."""
        return cls(
            num_layers=config.num_hidden_layers,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            vocab_size=config.vocab_size,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_key_value_heads or config.num_attention_heads,
            tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        )

    @property
    def layer_parameters(self) -> int:
        head_dim = self.hidden_size // self.num_attention_heads
        attention = (
            2 * self.hidden_size * self.hidden_size + 2 * self.hidden_size * self.num_key_value_heads * head_dim
        )
        mlp = 3 * self.hidden_size * self.intermediate_size
        return attention + mlp + 2 * self.hidden_size

    @property
    def embedding_parameters(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def parameters(self) -> int:
        heads = 1 if self.tie_word_embeddings else 2
        return self.num_layers * self.layer_parameters + heads * self.embedding_parameters + self.hidden_size


#: Published configs of the recipes' base models (config.json of each Hub repository).
KNOWN_SHAPES: dict[str, ModelShape] = {
    "meta-llama/Meta-Llama-3-8B": ModelShape(32, 4096, 14336, 128256, 32, 8),
    "deepseek-ai/deepseek-math-7b-base": ModelShape(30, 4096, 11008, 102400, 32, 32),
    "mistralai/Mistral-7B-v0.1": ModelShape(32, 4096, 14336, 32000, 32, 8),
    "codellama/CodeLlama-7b-hf": ModelShape(32, 4096, 11008, 32016, 32, 32),
    "outputs/models/smollm2": ModelShape(30, 576, 1536, 49152, 9, 3, tie_word_embeddings=True),
    "outputs/models/tiny": ModelShape(2, 64, 128, 49152, 4, 2, tie_word_embeddings=True),
}


@dataclass(frozen=True)
class MemoryEstimate:
    model_states: int
    gathered_weights: int
    activations: int
    overhead: int

    @property
    def total(self) -> int:
        return self.model_states + self.gathered_weights + self.activations + self.overhead

    @property
    def total_gib(self) -> float:
        return self.total / GIB


def estimate_memory(
    shape: ModelShape,
    micro_batch: int,
    seq_len: int,
    shards: int,
    activation_checkpointing: bool,
    activation_bytes: int = 2,
    overhead: int = OVERHEAD_BYTES,
    fused_lm_head: bool = True,
    state_bytes_per_parameter: int = 16,
) -> MemoryEstimate:
    """Bytes per device for one training step; ``shards`` is the GPU count under ZeRO-3 / FSDP, 1 under DDP."""
    states = state_bytes_per_parameter * shape.parameters // shards
    gathered = 0 if shards == 1 else 2 * 2 * max(shape.layer_parameters, shape.embedding_parameters)
    tokens_by_width = micro_batch * seq_len * shape.hidden_size
    per_layer = 34 * tokens_by_width * activation_bytes // 2
    if activation_checkpointing:
        activations = shape.num_layers * activation_bytes * tokens_by_width + per_layer
    else:
        activations = shape.num_layers * per_layer
    if not fused_lm_head:
        activations += 8 * micro_batch * seq_len * shape.vocab_size
    return MemoryEstimate(states, gathered, activations, overhead)


def layers_that_fit(shape: ModelShape, budget_bytes: int, **estimate_kwargs: Any) -> tuple[int, MemoryEstimate]:
    """The most decoder layers of ``shape`` (full width) whose :func:`estimate_memory` stays within ``budget_bytes``.

    Returns 0 layers and the one-layer estimate when not even one layer fits. ``estimate_kwargs`` are those of
    :func:`estimate_memory` after the shape.
    """
    for layers in range(shape.num_layers, 0, -1):
        estimate = estimate_memory(dataclasses.replace(shape, num_layers=layers), **estimate_kwargs)
        if estimate.total <= budget_bytes:
            return layers, estimate
    return 0, estimate_memory(dataclasses.replace(shape, num_layers=1), **estimate_kwargs)


def estimate_recipe_memory(recipe: str | Path) -> tuple[MemoryEstimate, str]:
    """The estimate for a cpt recipe (sharded over its ``hardware_gpus``; CPU smoke recipes unsharded, fp32)."""
    from training.config import parse_cpt_args

    script_args, training_args, model_args = parse_cpt_args(["--config", str(recipe), "--use_cpu", "true"])
    name = model_args.model_name_or_path or ""
    if name not in KNOWN_SHAPES:
        raise KeyError(f"no architecture on record for '{name}'; add it to training.memory.KNOWN_SHAPES")
    gpus = script_args.hardware_gpus
    on_gpu = gpus is not None
    estimate = estimate_memory(
        KNOWN_SHAPES[name],
        micro_batch=training_args.per_device_train_batch_size,
        seq_len=training_args.max_length or 0,
        shards=gpus or 1,
        activation_checkpointing=bool(training_args.activation_checkpointing),
        activation_bytes=2 if training_args.bf16 else 4,
        overhead=OVERHEAD_BYTES if on_gpu else GIB,
        fused_lm_head=training_args.fused_lm_head,
    )
    where = f"{gpus} GPUs, ZeRO-3" if on_gpu else "CPU"
    return estimate, where


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Estimated per-device memory of continued-pretraining recipes.")
    parser.add_argument("recipes", nargs="*", help="recipe files (default: every recipes/*/cpt/*.yaml)")
    args = parser.parse_args(argv)
    recipes = args.recipes or sorted(str(p) for p in Path("recipes").glob("*/cpt/*.yaml"))
    for recipe in recipes:
        estimate, where = estimate_recipe_memory(recipe)
        print(
            f"{recipe}: {estimate.total_gib:.0f} GiB per device ({where}; states {estimate.model_states / GIB:.1f}, "
            f"gathered weights {estimate.gathered_weights / GIB:.1f}, activations {estimate.activations / GIB:.1f}, "
            f"overhead {estimate.overhead / GIB:.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
