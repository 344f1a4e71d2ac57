"""Local base models for the CPU smoke recipes (``make train MODEL=tiny`` / ``MODEL=smollm2``), made offline.

- ``smollm2``: the embedded SmolLM2-135M-Instruct, dequantized once to safetensors and linked into
  ``outputs/models/smollm2``. Its tokenizer adds no BOS, like SmolLM2's.
- ``tiny``: a random-init two-layer Llama with SmolLM2's vocabulary whose tokenizer adds a BOS, like Llama's and
  Mistral's, so the smoke run goes through the same special-token path as the 7B recipes. One step takes well under
  a second on a laptop CPU.

Usage: ``python -m training.local_models tiny [--output outputs/models/tiny]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

MODELS_DIR = Path("outputs/models")
LOCAL_MODELS = ("tiny", "smollm2")


def add_bos_post_processor(tokenizer: object) -> None:
    """Make a fast tokenizer put its BOS token in front of every text (what Llama-family tokenizers do)."""
    from tokenizers import processors

    bos = tokenizer.bos_token  # type: ignore[attr-defined]
    bos_id = tokenizer.bos_token_id  # type: ignore[attr-defined]
    if bos is None or bos_id is None:
        raise ValueError("the tokenizer has no BOS token to add")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(  # type: ignore[attr-defined]
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )


def prepare_smollm2(target: Path) -> Path:
    """Link the converted embedded model at ``target`` (the conversion is cached, so this is cheap after once)."""
    from mathcode_pile.llm.embedded import convert_embedded_to_safetensors

    if target.is_dir():
        return target
    converted = convert_embedded_to_safetensors()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():  # a dangling link left by a removed cache
        target.unlink()
    target.symlink_to(converted.resolve(), target_is_directory=True)
    logger.info("linked %s -> %s", target, converted)
    return target


def prepare_tiny(target: Path, seed: int = 0, add_bos: bool = True) -> Path:
    """Write a random-init tiny Llama (weights, config, tokenizer) to ``target`` unless it exists.

    ``add_bos`` makes the tokenizer put a BOS in front of every text, as Llama-family tokenizers do (the training
    recipes exercise that path); without it the tokenizer behaves like SmolLM2's own.
    """
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mathcode_pile.llm.embedded import convert_embedded_to_safetensors

    tokenizer = AutoTokenizer.from_pretrained(convert_embedded_to_safetensors())
    if add_bos:
        add_bos_post_processor(tokenizer)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    target.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    logger.info("wrote a random-init tiny Llama to %s", target)
    return target


def prepare_local_model(name: str, target: Path | None = None) -> Path:
    target = target or MODELS_DIR / name
    if name == "tiny":
        return prepare_tiny(target)
    if name == "smollm2":
        return prepare_smollm2(target)
    raise ValueError(f"unknown local model '{name}'; choose one of {LOCAL_MODELS}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=LOCAL_MODELS)
    parser.add_argument("--output", type=Path, default=None, help="folder to write (default outputs/models/<name>)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = prepare_local_model(args.name, args.output)
    print(f"{args.name} model ready at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
