"""Turn rows of an SFT dataset into ``input_ids`` + ``labels``, counting every row that cannot be used.

The block syntax (:mod:`mathcode_pile.lce.syntax`) says how a row reads and which of its characters the model is
trained to write; this module applies it to a ``datasets.Dataset`` and counts the drops. Accepted rows:

* LCE (:data:`~mathcode_pile.lce.syntax.LCE_SYNTAX`): ``messages`` with typed parts (MathCodeInstruct) or strings
  (NuminaMath-TIR Markdown, or assistant strings that already hold LCE markers), or ``text``, one serialized LCE
  conversation. A missing system turn is added empty, as MathCoder prompts.
* Chat (:class:`~mathcode_pile.lce.syntax.FencedSyntax`): ``messages`` with string content, or ``problem`` +
  ``solution`` (the NuminaMath-CoT / NuminaMath-TIR columns), rendered by the model's chat template.

A row is dropped with a reason rather than failing the whole run: ``unclosed_code_fence`` (a ```` ```python ```` or
```` ```output ```` fence never closed), ``output_without_code`` (an output block with no code block before it),
``no_assistant_turn``, ``no_text_or_code`` (no block the model writes), ``too_long`` (more tokens than the context:
the row is dropped, never truncated, since a cut answer teaches a solution without its end), ``invalid_format``
(anything else unreadable, logged with its index and the error).
Nothing is cut silently; the counts go to the run's statistics.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from mathcode_pile.lce.format import LCEFormatError
from mathcode_pile.lce.labels import LabelAlignmentError, TokenizedExample, tokenize_segments
from mathcode_pile.lce.syntax import LCE_SYNTAX, conversation_from_row, has_model_written_block
from mathcode_pile.stages.base import DROP_COLUMN, Batch

logger = logging.getLogger(__name__)

__all__ = ["conversation_from_row", "has_model_written_block", "prepare_lce_dataset", "tokenize_row"]


def tokenize_row(row: dict[str, Any], tokenizer: Any, syntax: Any = LCE_SYNTAX) -> TokenizedExample:
    """Token ids and labels of one row; raises :class:`LCEFormatError` (with its drop reason) when it is unusable.

    A BOS the chat template already wrote is not added a second time by the tokenizer.
    """
    segments = syntax.row_segments(row)
    text = "".join(segment.text for segment in segments)
    bos = getattr(tokenizer, "bos_token", None)
    return tokenize_segments(segments, tokenizer, add_special_tokens=not (bos and text.startswith(bos)))


def tokenize_lce_batch(
    batch: Batch, tokenizer: Any, max_length: int | None, first_index: int = 0, syntax: Any = LCE_SYNTAX
) -> Batch:
    """Batched ``Dataset.map`` function: ``input_ids``, ``labels`` and :data:`DROP_COLUMN` for every row."""
    columns = [name for name in syntax.columns if name in batch]
    if not columns:
        raise KeyError(f"the dataset has none of the columns {list(syntax.columns)}; found {sorted(batch)}")
    size = len(batch[columns[0]])
    output: Batch = {"input_ids": [], "labels": [], DROP_COLUMN: []}
    for offset in range(size):
        row = {name: batch[name][offset] for name in columns}
        input_ids: list[int] = []
        labels: list[int] = []
        reason = None
        try:
            example = tokenize_row(row, tokenizer, syntax)
            input_ids, labels = example.input_ids, example.labels
            if max_length is not None and len(input_ids) > max_length:
                reason = "too_long"
        except LCEFormatError as error:
            reason = error.reason
            if reason == "invalid_format":
                logger.warning("row %d: %s", first_index + offset, error)
        except (LabelAlignmentError, ValueError) as error:
            logger.warning("row %d: column %s: %s", first_index + offset, columns[0], error)
            reason = "invalid_format"
        output["input_ids"].append(input_ids)
        output["labels"].append(labels)
        output[DROP_COLUMN].append(reason)
    return output


def prepare_lce_dataset(
    dataset: Any, tokenizer: Any, max_length: int | None, num_proc: int | None = None, syntax: Any = LCE_SYNTAX
) -> tuple[Any, Counter[str]]:
    """Tokenize and label a ``datasets.Dataset``; returns the kept rows (``input_ids``, ``labels``) and counters."""
    tokenized = dataset.map(
        lambda batch, indices: tokenize_lce_batch(batch, tokenizer, max_length, indices[0] if indices else 0, syntax),
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="Tokenizing conversations",
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
