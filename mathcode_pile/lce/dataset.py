"""Turn rows of an LCE dataset into ``input_ids`` + ``labels`` for SFT, counting every row that cannot be used.

Accepted row shapes (the first present column wins):

* ``messages``: chat messages, content as typed parts (MathCodeInstruct) or strings (NuminaMath-TIR Markdown, or
  assistant strings that already hold LCE markers). A missing system turn is added empty, as MathCoder prompts.
* ``text``: one serialized LCE conversation.

A row is dropped with a reason rather than failing the whole run: ``invalid_format`` (logged with its index and the
parse error), ``no_text_or_code`` (no block the model writes), ``too_long`` (more tokens than the context: packing
would truncate the answer).
Nothing is cut silently; the counts go to the run's statistics.

For MathCoder's ablations the same rows can be trained as CoT or PoT solutions (``solution_format``, converted by
:mod:`mathcode_pile.lce.variants`) and with execution output in the loss (``mask_execution=False``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from mathcode_pile.lce.format import LCEFormatError, Message, from_chat_messages, parse_conversation, text_message
from mathcode_pile.lce.labels import LabelAlignmentError, tokenize_conversation
from mathcode_pile.lce.variants import conversation_as
from mathcode_pile.stages.base import DROP_COLUMN, Batch

logger = logging.getLogger(__name__)

SUPPORTED_COLUMNS = ("messages", "text")


def conversation_from_row(row: dict[str, Any]) -> list[Message]:
    """The LCE conversation held by one dataset row (see the module docstring for the accepted shapes)."""
    if row.get("messages") is not None:
        messages = from_chat_messages(row["messages"])
    elif row.get("text") is not None:
        messages = parse_conversation(row["text"])
    else:
        raise LCEFormatError(f"row has none of the columns {list(SUPPORTED_COLUMNS)}")
    if not messages or messages[0].role != "system":
        messages.insert(0, text_message("system", ""))
    return messages


def has_model_written_block(messages: list[Message]) -> bool:
    """True when an assistant turn holds a text or code block (execution output alone teaches nothing)."""
    return any(
        block.kind != "execution" for message in messages if message.role == "assistant" for block in message.blocks
    )


def tokenize_lce_batch(
    batch: Batch,
    tokenizer: Any,
    max_length: int | None,
    first_index: int = 0,
    solution_format: str = "lce",
    mask_execution: bool = True,
) -> Batch:
    """Batched ``Dataset.map`` function: ``input_ids``, ``labels`` and :data:`DROP_COLUMN` for every row."""
    columns = [name for name in SUPPORTED_COLUMNS if name in batch]
    if not columns:
        raise KeyError(f"the dataset has none of the columns {list(SUPPORTED_COLUMNS)}; found {sorted(batch)}")
    size = len(batch[columns[0]])
    output: Batch = {"input_ids": [], "labels": [], DROP_COLUMN: []}
    for offset in range(size):
        row = {name: batch[name][offset] for name in columns}
        input_ids: list[int] = []
        labels: list[int] = []
        reason = None
        try:
            messages = conversation_as(conversation_from_row(row), solution_format)
            example = tokenize_conversation(messages, tokenizer, mask_execution=mask_execution)
            input_ids, labels = example.input_ids, example.labels
            if not has_model_written_block(messages):
                reason = "no_text_or_code"
            elif max_length is not None and len(input_ids) > max_length:
                reason = "too_long"
        except (LCEFormatError, LabelAlignmentError, ValueError) as error:
            logger.warning("row %d: column %s: %s", first_index + offset, columns[0], error)
            reason = "invalid_format"
        output["input_ids"].append(input_ids)
        output["labels"].append(labels)
        output[DROP_COLUMN].append(reason)
    return output


def prepare_lce_dataset(
    dataset: Any,
    tokenizer: Any,
    max_length: int | None,
    num_proc: int | None = None,
    solution_format: str = "lce",
    mask_execution: bool = True,
) -> tuple[Any, Counter[str]]:
    """Tokenize and label a ``datasets.Dataset``; returns the kept rows (``input_ids``, ``labels``) and counters."""
    tokenized = dataset.map(
        lambda batch, indices: tokenize_lce_batch(
            batch, tokenizer, max_length, indices[0] if indices else 0, solution_format, mask_execution
        ),
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="Tokenizing LCE conversations",
    )
    reasons = Counter(reason for reason in tokenized[DROP_COLUMN] if reason is not None)
    kept = tokenized.filter(lambda reason: reason is None, input_columns=DROP_COLUMN).remove_columns(DROP_COLUMN)
    counters: Counter[str] = Counter(rows_in=len(dataset), rows_kept=len(kept))
    counters.update({f"dropped_{reason}": count for reason, count in reasons.items()})
    counters["trained_tokens"] = sum(sum(label != -100 for label in labels) for labels in kept["labels"])
    counters["tokens"] = sum(len(ids) for ids in kept["input_ids"])
    for reason, count in sorted(reasons.items()):
        logger.warning("dropped %d of %d rows: %s", count, len(dataset), reason)
    return kept, counters
