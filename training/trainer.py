"""``SFTTrainer`` with a choice of loss head for continued pretraining.

TRL computes the loss with a chunked LM-head kernel that never holds the ``batch x length x vocabulary`` logits: at
8192 tokens and Llama-3's 128k vocabulary those would take over 8 GB per micro-batch, so the paper recipes keep it.
The kernel recomputes logit tiles in the backward pass and also derives entropy and accuracy metrics, which costs
little when the LM head is a small share of the model (about 6% of Llama-3-8B's FLOPs) but most of a step when it
dominates (the tiny smoke model). ``fused_lm_head: false`` then uses the model's own loss from full logits instead;
both ignore the first token of every packed document, so the loss is the same.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer
from trl import SFTTrainer


class CPTTrainer(SFTTrainer):
    """``SFTTrainer`` whose loss head follows ``args.fused_lm_head`` (TRL's chunked kernel, or the model's loss)."""

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if getattr(self.args, "fused_lm_head", True):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs["use_cache"] = False  # packed documents stay apart only without a cache
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
