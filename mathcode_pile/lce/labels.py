"""Token ids and loss labels for LCE supervised fine-tuning.

MathCoder computes the loss only on what the model itself writes at inference time. The rule, per token:

=====================================================  ========  ==================================================
tokens                                                 labels    why
=====================================================  ========  ==================================================
system and user turns, all their markers               -100      the prompt: given, never generated
``<|assistant|>``                                      -100      appended to the prompt by the inference loop
``<|text|>`` / ``<|code|>`` opening a block            trained   the model chooses which kind of block comes next
text and code content                                  trained   the solution itself
``<|endofblock|>`` closing a text or code block        trained   generation stops on it; the model must emit it
``<|execution|>``, its content, its ``<|endofblock|>``  -100      written by the sandbox, not the model
``<|endofmessage|>`` closing an assistant turn         trained   the model's way of saying the solution is done
BOS / tokens the tokenizer adds around the text        -100      not part of the conversation
=====================================================  ========  ==================================================

MathCoder's ablation also trains a model whose loss includes the execution results (``mask_execution=False``): the
execution blocks, markers and output, then carry the loss like text and code; every other row of the table holds.

Labels are aligned through the tokenizer's character offsets on the whole serialized string, so the token ids are
exactly those the inference prompt produces (tokenizing piece by piece could merge differently at boundaries). Every
boundary between a trained and an untrained span sits on a marker, and markers are atomic added tokens, so no token
can straddle two spans; if one ever does, :class:`LabelAlignmentError` says so instead of guessing.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mathcode_pile.lce.format import (
    ASSISTANT_TOKEN,
    END_OF_MESSAGE,
    Message,
    serialize_block,
    serialize_message,
)

IGNORE_INDEX = -100


class LabelAlignmentError(ValueError):
    """A token whose characters span a trained and an untrained part of the conversation."""


@dataclass(frozen=True)
class Segment:
    """A piece of the serialized conversation and whether the model is trained to produce it."""

    text: str
    trained: bool


def conversation_segments(messages: Sequence[Message], mask_execution: bool = True) -> list[Segment]:
    """The serialized conversation cut into trained / untrained pieces following the table in the module docstring
    (``mask_execution=False``: execution blocks are trained too)."""
    segments: list[Segment] = []
    for message in messages:
        if message.role != "assistant":
            segments.append(Segment(serialize_message(message), trained=False))
            continue
        segments.append(Segment(ASSISTANT_TOKEN, trained=False))
        for block in message.blocks:
            trained = block.kind != "execution" or not mask_execution
            segments.append(Segment(serialize_block(block), trained=trained))
        segments.append(Segment(END_OF_MESSAGE, trained=True))
    return segments


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def tokenize_conversation(
    messages: Sequence[Message], tokenizer: Any, add_special_tokens: bool = True, mask_execution: bool = True
) -> TokenizedExample:
    """Token ids of the serialized conversation plus labels (-100 where the model is not trained)."""
    if not any(message.role == "assistant" for message in messages):
        raise ValueError("a training conversation needs at least one assistant message")
    return tokenize_segments(conversation_segments(messages, mask_execution), tokenizer, add_special_tokens)


def tokenize_segments(
    segments: Sequence[Segment], tokenizer: Any, add_special_tokens: bool = True
) -> TokenizedExample:
    """Tokenize the concatenated segments once; each token is trained when the segment holding it is.

    This is the one alignment rule of every SFT format (LCE markers here, chat-template conversations with fenced
    code in :mod:`mathcode_pile.lce.syntax`): only the way a conversation is cut into segments differs.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"SFT labels need a fast tokenizer (character offsets); got {type(tokenizer).__name__}")
    text = "".join(segment.text for segment in segments)
    starts: list[int] = []
    cursor = 0
    for segment in segments:
        starts.append(cursor)
        cursor += len(segment.text)
    encoding = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    labels = []
    for token_id, (begin, end) in zip(input_ids, encoding["offset_mapping"], strict=True):
        if begin == end:  # BOS/EOS and other tokens the tokenizer adds: no characters of ours
            labels.append(IGNORE_INDEX)
            continue
        index = bisect.bisect_right(starts, begin) - 1
        segment_end = starts[index] + len(segments[index].text)
        if end > segment_end:
            raise LabelAlignmentError(
                f"token {tokenizer.convert_ids_to_tokens(token_id)!r} at characters {begin}-{end} crosses the "
                f"boundary at {segment_end} between {segments[index].text[:30]!r} and the next span"
            )
        labels.append(token_id if segments[index].trained else IGNORE_INDEX)
    return TokenizedExample(input_ids=input_ids, labels=labels)
