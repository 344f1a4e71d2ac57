"""How the base model is loaded: dtype, revision, and FlashAttention when it is installed (SDPA otherwise).

Recipes ask for ``flash_attention_2``; a machine without the ``flash_attn`` package or without CUDA falls back to
PyTorch SDPA with a warning instead of failing, so the same recipe runs on a laptop for a smoke test. Both isolate
packed documents: the trainer passes per-document ``position_ids`` and ``use_cache=False``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from trl import ModelConfig

from mathcode_pile.config import RecipeError

logger = logging.getLogger(__name__)

FLASH_IMPLEMENTATIONS = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
FALLBACK_ATTENTION = "sdpa"
#: Local folders the Makefile prepares for the CPU smoke recipes, with the command that creates each.
LOCAL_MODEL_HINTS = {"outputs/models/": "python -m training.local_models {name}  (or `make train MODEL={name}`)"}


def resolve_attn_implementation(requested: str | None, cuda_available: bool | None = None) -> str | None:
    """``requested`` if it can run here, else SDPA for a FlashAttention request that cannot."""
    if requested not in FLASH_IMPLEMENTATIONS:
        return requested
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    package = FLASH_IMPLEMENTATIONS[requested]
    if cuda_available and importlib.util.find_spec(package) is not None:
        return requested
    reason = "no CUDA device" if not cuda_available else f"package '{package}' not installed"
    logger.warning("attn_implementation=%s unavailable (%s): using %s", requested, reason, FALLBACK_ATTENTION)
    return FALLBACK_ATTENTION


def check_model_path(model_name_or_path: str) -> None:
    """A missing local smoke-test model gets an error that says how to create it."""
    for prefix, hint in LOCAL_MODEL_HINTS.items():
        if model_name_or_path.startswith(prefix) and not Path(model_name_or_path).is_dir():
            name = Path(model_name_or_path).name
            raise RecipeError(
                f"model folder {model_name_or_path} does not exist; create it with: {hint.format(name=name)}"
            )


def model_init_kwargs(model_args: ModelConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained`` (``SFTConfig.model_init_kwargs``), recipe extras last."""
    kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "dtype": model_args.dtype,
        "attn_implementation": resolve_attn_implementation(model_args.attn_implementation),
    }
    kwargs.update(extra or {})
    return kwargs
