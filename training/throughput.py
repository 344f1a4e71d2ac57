"""Training speed as the benchmarks report it: step timing, model FLOPs per token, device peaks, MFU.

Model FLOPs per token count the work the model needs, not what an implementation spends: ``6 x`` the parameters
used in matrix products (forward 2, backward 4; the input embedding is a lookup unless it is also the LM head), plus
causal self-attention per document, ``6 x layers x hidden x n`` for a token of an ``n``-token document (QK^T and
attention x V cost ``2 x n^2 x hidden`` each per layer in the forward pass, halved by the causal mask, tripled for
the backward pass). Packed rows attend within each document only, so the attention term uses document lengths, not
row lengths. Activation checkpointing recomputes the forward pass; that recomputation is not counted (MFU, not
hardware FLOPs utilisation).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

#: bf16 dense tensor-core peak, FLOP/s, by a substring of ``torch.cuda.get_device_name()`` (vendor datasheets; the
#: sparse figures are twice these). More specific names come first.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "L4": 121e12,
}

ATTENTION_FLOPS_FORMULA = (
    "6 x matmul parameters + 6 x layers x hidden x n per token of an n-token document "
    "(causal attention, forward + backward, per packed document; recomputation not counted)"
)


@dataclass
class Throughput:
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class StepTimer(TrainerCallback):
    """Time and tokens seen at the end of every optimizer step (the trainer counts input tokens)."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        synchronize(self.device)
        self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))
        return control

    def steady_state(self, warmup: int) -> Throughput:
        """Tokens and seconds from the end of step ``warmup`` to the last step (the first steps warm caches up)."""
        (t0, n0), (t1, n1) = self.marks[warmup - 1], self.marks[-1]
        return Throughput(n1 - n0, t1 - t0)

    def step_seconds(self, warmup: int) -> list[float]:
        """Duration of every step after the first ``warmup`` ones."""
        times = [t for t, _ in self.marks]
        return [b - a for a, b in zip(times[warmup - 1 : -1], times[warmup:], strict=True)]


def synchronize(device: Any) -> None:
    """Wait for queued device work, so a host clock read after it covers that work."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        torch.cuda.synchronize()


def matmul_parameters(model: Any) -> int:
    """Parameters used in matrix products: all of them except an input embedding that is not also the LM head."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    return total if tied else total - embedding.numel()


def batch_document_lengths(batch: dict[str, Any]) -> list[int]:
    """Lengths of the documents in a padding-free packed batch (``cu_seq_lens_q``), else one per row."""
    if "cu_seq_lens_q" in batch:
        return [int(n) for n in batch["cu_seq_lens_q"].diff().tolist()]
    rows, width = batch["input_ids"].shape
    return [int(width)] * int(rows)


def attention_flops_per_token(num_layers: int, hidden_size: int, document_lengths: Iterable[int]) -> float:
    """Causal attention FLOPs (forward + backward) per token, averaged over tokens of the given documents."""
    lengths = list(document_lengths)
    tokens = sum(lengths)
    if tokens == 0:
        return 0.0
    return sum(6 * num_layers * hidden_size * n * n for n in lengths) / tokens


def model_flops_per_token(model: Any, document_lengths: Sequence[int]) -> float:
    """Training FLOPs per token: dense matrix products plus per-document causal attention (module docstring)."""
    config = model.config
    dense = 6 * matmul_parameters(model)
    return dense + attention_flops_per_token(config.num_hidden_layers, config.hidden_size, document_lengths)


def flops_per_token(model: Any, batches: list[dict[str, Any]]) -> float:
    """:func:`model_flops_per_token` over the documents of captured training batches."""
    lengths = [n for batch in batches for n in batch_document_lengths(batch)]
    return model_flops_per_token(model, lengths)


def peak_flops(device: Any, override_tflops: float | None = None) -> tuple[float | None, str]:
    """The device's bf16 dense peak in FLOP/s and where the figure comes from; ``(None, reason)`` when unknown."""
    if override_tflops:
        return override_tflops * 1e12, "given with --peak_tflops"
    if getattr(device, "type", str(device)) != "cuda":
        return None, "no peak for a CPU: MFU is only reported on a CUDA device"
    import torch

    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_FLOPS.items():
        if key in name:
            return peak, f"datasheet bf16 dense peak of {key} (device '{name}')"
    return None, f"unknown device '{name}': give --peak_tflops"
