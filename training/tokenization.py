"""Documents to token ids with exactly the special tokens pretraining wants.

Every document becomes ``[BOS] + text + [EOS]``: one BOS where the tokenizer's model uses one (Llama, Mistral,
DeepSeek; not SmolLM2), never two even when the text itself starts with the BOS string, and exactly one EOS so
that packed rows have an EOS between neighbouring documents. We tokenize ourselves rather than let the trainer do
it: ``SFTTrainer`` appends the EOS *string* and lets the tokenizer add BOS, which doubles BOS on documents that
already carry one. A dataset that holds ``input_ids`` is taken as is by the trainer.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from mathcode_pile.config import RecipeError
from training.data import SOURCE_COLUMN

logger = logging.getLogger(__name__)


def tokenizer_adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the model expects a BOS token: its tokenizer puts one in front of plain text by default."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def frame_document(token_ids: list[int], bos_id: int | None, eos_id: int) -> list[int]:
    """``[BOS] + ids + [EOS]``: leading BOS / trailing EOS already in the text are folded into the single ones."""
    start, end = 0, len(token_ids)
    if bos_id is not None:
        while start < end and token_ids[start] == bos_id:
            start += 1
    while end > start and token_ids[end - 1] == eos_id:
        end -= 1
    prefix = [bos_id] if bos_id is not None else []
    return [*prefix, *token_ids[start:end], eos_id]


def tokenize_documents(
    batch: dict[str, list[Any]], tokenizer: PreTrainedTokenizerBase, text_field: str, add_bos: bool
) -> dict[str, list[Any]]:
    """Batched ``Dataset.map`` function: ``text_field`` → ``input_ids`` framed by :func:`frame_document`."""
    encoded = tokenizer(batch[text_field], add_special_tokens=False)["input_ids"]
    bos_id = tokenizer.bos_token_id if add_bos else None
    input_ids = [frame_document(ids, bos_id, tokenizer.eos_token_id) for ids in encoded]
    return {"input_ids": input_ids, "num_tokens": [len(ids) for ids in input_ids]}


def tokenize_dataset(
    documents: Dataset, tokenizer: PreTrainedTokenizerBase, text_field: str = "text", num_proc: int | None = None
) -> Dataset:
    """Columns ``input_ids``, ``num_tokens`` and ``source`` (when present) for every document."""
    if tokenizer.eos_token_id is None:
        raise RecipeError(
            f"tokenizer {type(tokenizer).__name__} has no EOS token; set eos_token in the recipe so documents can be "
            "separated"
        )
    add_bos = tokenizer_adds_bos(tokenizer)
    logger.info(
        "tokenizing %d documents: %sEOS=%r",
        len(documents),
        f"BOS={tokenizer.bos_token!r}, " if add_bos else "no BOS (the model uses none), ",
        tokenizer.eos_token,
    )
    return documents.map(
        tokenize_documents,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "text_field": text_field, "add_bos": add_bos},
        remove_columns=[c for c in documents.column_names if c != SOURCE_COLUMN],
        num_proc=num_proc,
        desc="tokenizing documents",
    )


def count_tokens_by_source(tokenized: Dataset) -> dict[str, int]:
    """Tokens per source (one epoch), read in large batches so that millions of rows stay cheap."""
    totals: Counter[str] = Counter()
    if SOURCE_COLUMN not in tokenized.column_names:
        return {"all": int(sum(tokenized["num_tokens"]))}
    for batch in tokenized.select_columns([SOURCE_COLUMN, "num_tokens"]).iter(batch_size=100_000):
        for source, count in zip(batch[SOURCE_COLUMN], batch["num_tokens"], strict=True):
            totals[source] += count
    return dict(totals)
