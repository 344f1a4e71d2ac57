"""Random-weight models of published architectures, with a tokenizer trained on the training text: no download.

A throughput or memory check needs a model of the right *shape* (its FLOPs, memory and kernels), not its weights.
``training/architectures/<name>.json`` holds architectures: Llama-3-8B and Llama-3.2-1B as published, and two small
Llama-3-style ones for CPU runs. The tokenizer is a byte-level BPE trained in about a second on the text the check
trains on, and it puts a BOS in front of every text as Llama's tokenizer does, so documents go through the same
special-token path as the paper recipes. Embedding rows past its vocabulary are never used, like Llama-3's reserved
special tokens: the matrices keep the published size, and so the cost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ARCHITECTURES_DIR = Path(__file__).resolve().parent / "architectures"
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"
PAD_TOKEN = "<|pad|>"
#: Target BPE vocabulary: large enough for realistic token counts on English math text, small enough to learn fast.
TOKENIZER_VOCAB_SIZE = 8000


def architecture_names() -> list[str]:
    return sorted(path.stem for path in ARCHITECTURES_DIR.glob("*.json"))


def load_architecture(name: str, num_layers: int | None = None) -> Any:
    """The transformers config of architecture ``name`` (a file stem in ``training/architectures``).

    ``num_layers`` keeps the width and cuts the depth (for a device that cannot hold every layer).
    """
    from transformers import AutoConfig

    path = ARCHITECTURES_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown architecture '{name}'; choose one of {architecture_names()}")
    values = {key: value for key, value in json.loads(path.read_text(encoding="utf-8")).items() if key[0] != "_"}
    model_type = values.pop("model_type")
    config = AutoConfig.for_model(model_type, **values)
    if num_layers is not None:
        if not 1 <= num_layers <= config.num_hidden_layers:
            raise ValueError(f"{name}: num_layers must be within 1..{config.num_hidden_layers}, got {num_layers}")
        config.num_hidden_layers = num_layers
    return config


def train_tokenizer(texts: Iterable[str], vocab_size: int = TOKENIZER_VOCAB_SIZE) -> Any:
    """A byte-level BPE trained on ``texts`` that adds one BOS in front of every text (as Llama's does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from training.local_models import add_bos_post_processor

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TOKEN, EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN
    )
    add_bos_post_processor(tokenizer)
    return tokenizer


def match_tokenizer(config: Any, tokenizer: Any) -> Any:
    """Set the config's special token ids from the tokenizer; every tokenizer id must have an embedding row."""
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} ids but the model only {config.vocab_size} rows")
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    return config


def torch_dtype(dtype: Any) -> Any:
    """``"bfloat16"`` / ``torch.bfloat16`` / ``None`` (float32) as a torch dtype."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def build_random_model(
    config: Any, dtype: Any = None, attn_implementation: str | None = None, device: Any = "cpu", seed: int = 0
) -> Any:
    """A causal LM of ``config`` with freshly initialised weights, created directly on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model


def write_model_folder(target: Path, config: Any, tokenizer: Any, model: Any | None = None) -> Path:
    """``config.json`` and the tokenizer (and the weights, when a model is given) in ``target``, loadable with
    ``from_pretrained``."""
    target.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save_pretrained(target)
    else:
        config.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
