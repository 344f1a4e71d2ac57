"""Token-level loss labels of LCE SFT: only what the model writes is trained, also once examples are packed.

The expected mask is computed independently of ``mathcode_pile.lce.labels``: a small state machine walks the token
ids, sees the markers, and decides per token from the rule documented in that module.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from mathcode_pile.lce.format import (
    ASSISTANT_TOKEN,
    CODE_TOKEN,
    END_OF_BLOCK,
    END_OF_MESSAGE,
    EXECUTION_TOKEN,
    SYSTEM_TOKEN,
    TEXT_TOKEN,
    USER_TOKEN,
    Block,
    Message,
    build_conversation,
    serialize_conversation,
)
from mathcode_pile.lce.labels import IGNORE_INDEX, tokenize_conversation
from mathcode_pile.lce.tokens import add_lce_tokens


@pytest.fixture(scope="module")
def lce_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    add_lce_tokens(tokenizer)
    return tokenizer


def two_turn_conversation() -> list[Message]:
    first = build_conversation(
        "Tom has 3 boxes of 12 pens. How many pens?",
        system="Solve step by step.",
        solution=(
            Block("text", "Multiply boxes by pens per box."),
            Block("code", "boxes = 3\npens = boxes * 12\nprint(pens)"),
            Block("execution", "36\nsecret execution words"),
            Block("text", "He has 36 pens."),
        ),
    )
    return [
        *first,
        Message("user", (Block("text", "And with 5 boxes?"),)),
        Message(
            "assistant",
            (Block("code", "print(5 * 12)"), Block("execution", "60"), Block("text", "60 pens.")),
        ),
    ]


def expected_trained_mask(input_ids: list[int], tokenizer: Any, mask_execution: bool = True) -> list[bool]:
    """Independent statement of the rule: assistant text/code blocks with their markers and the closing message end
    (and, with ``mask_execution=False``, the assistant's execution blocks too)."""
    marker = {tokenizer.convert_tokens_to_ids(t): t for t in (SYSTEM_TOKEN, USER_TOKEN, ASSISTANT_TOKEN, TEXT_TOKEN,
                                                              CODE_TOKEN, EXECUTION_TOKEN, END_OF_BLOCK,
                                                              END_OF_MESSAGE)}  # fmt: skip
    role, block = None, None
    mask = []
    for token_id in input_ids:
        token = marker.get(token_id)
        if token in (SYSTEM_TOKEN, USER_TOKEN, ASSISTANT_TOKEN):
            role, block = token, None
            mask.append(False)
        elif token in (TEXT_TOKEN, CODE_TOKEN, EXECUTION_TOKEN):
            block = token
            mask.append(role == ASSISTANT_TOKEN and (token != EXECUTION_TOKEN or not mask_execution))
        elif token == END_OF_BLOCK:
            mask.append(role == ASSISTANT_TOKEN and (block != EXECUTION_TOKEN or not mask_execution))
            block = None
        elif token == END_OF_MESSAGE:
            mask.append(role == ASSISTANT_TOKEN)
            role = None
        else:
            trained_blocks = (TEXT_TOKEN, CODE_TOKEN) if mask_execution else (TEXT_TOKEN, CODE_TOKEN, EXECUTION_TOKEN)
            mask.append(role == ASSISTANT_TOKEN and block in trained_blocks)
    return mask


def test_exactly_text_and_code_tokens_and_their_markers_are_trained(lce_tokenizer: Any) -> None:
    messages = two_turn_conversation()
    example = tokenize_conversation(messages, lce_tokenizer)

    assert example.input_ids == lce_tokenizer(serialize_conversation(messages))["input_ids"]
    mask = expected_trained_mask(example.input_ids, lce_tokenizer)
    assert [label != IGNORE_INDEX for label in example.labels] == mask
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(example.labels, example.input_ids, strict=True))

    trained_text = lce_tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX])
    assert trained_text == (
        "<|text|>Multiply boxes by pens per box.<|endofblock|>"
        "<|code|>boxes = 3\npens = boxes * 12\nprint(pens)<|endofblock|>"
        "<|text|>He has 36 pens.<|endofblock|><|endofmessage|>"
        "<|code|>print(5 * 12)<|endofblock|><|text|>60 pens.<|endofblock|><|endofmessage|>"
    )
    ignored_text = lce_tokenizer.decode([t for t, lab in zip(example.input_ids, example.labels, strict=True)
                                         if lab == IGNORE_INDEX])  # fmt: skip
    for never_trained in (
        "Tom has 3 boxes",
        "Solve step by step",
        "secret execution words",
        "And with 5 boxes",
        "60<",
    ):
        assert never_trained in ignored_text


def test_execution_in_the_loss_trains_the_execution_blocks_too(lce_tokenizer: Any) -> None:
    """MathCoder's ablation: ``mask_execution=False`` adds exactly the assistant's execution blocks to the loss."""
    messages = two_turn_conversation()
    masked = tokenize_conversation(messages, lce_tokenizer)
    in_loss = tokenize_conversation(messages, lce_tokenizer, mask_execution=False)
    assert in_loss.input_ids == masked.input_ids
    mask = expected_trained_mask(in_loss.input_ids, lce_tokenizer, mask_execution=False)
    assert [label != IGNORE_INDEX for label in in_loss.labels] == mask
    added = [t for t, a, b in zip(in_loss.input_ids, in_loss.labels, masked.labels, strict=True) if a != b]
    assert lce_tokenizer.decode(added) == (
        "<|execution|>36\nsecret execution words<|endofblock|><|execution|>60<|endofblock|>"
    )
    ignored = lce_tokenizer.decode([t for t, lab in zip(in_loss.input_ids, in_loss.labels, strict=True)
                                    if lab == IGNORE_INDEX])  # fmt: skip
    assert "Tom has 3 boxes" in ignored and "And with 5 boxes" in ignored and "secret" not in ignored


def test_a_bos_added_by_the_tokenizer_is_not_trained(lce_tokenizer: Any) -> None:
    from tokenizers import processors

    tokenizer = lce_tokenizer.__class__.from_pretrained(lce_tokenizer.name_or_path)
    add_lce_tokens(tokenizer)
    bos = tokenizer.bos_token
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    example = tokenize_conversation(two_turn_conversation(), tokenizer)
    assert example.input_ids[0] == tokenizer.bos_token_id
    assert example.labels[0] == IGNORE_INDEX
    assert [lab != IGNORE_INDEX for lab in example.labels[1:]] == expected_trained_mask(
        example.input_ids[1:], tokenizer
    )


def test_a_conversation_without_an_answer_is_refused(lce_tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="at least one assistant message"):
        tokenize_conversation(build_conversation("q"), lce_tokenizer)


def test_dataset_rows_are_tokenized_or_dropped_with_a_counted_reason(lce_tokenizer: Any) -> None:
    from datasets import Dataset

    from mathcode_pile.lce.dataset import prepare_lce_dataset

    good = serialize_conversation(two_turn_conversation())
    rows = {
        "text": [
            good,
            "<|user|><|text|>unclosed",
            serialize_conversation(build_conversation("q", solution=(Block("execution", "1"),))),
            good + good.replace("Tom", "Ann"),
        ]
    }
    kept, counters = prepare_lce_dataset(Dataset.from_dict(rows), lce_tokenizer, max_length=150)
    assert len(tokenize_conversation(two_turn_conversation(), lce_tokenizer).input_ids) <= 150
    assert kept.column_names == ["input_ids", "labels"]
    assert counters["rows_in"] == 4 and counters["rows_kept"] == 1
    assert counters["dropped_invalid_format"] == 1
    assert counters["dropped_no_text_or_code"] == 1
    assert counters["dropped_too_long"] == 1
    assert kept[0]["labels"] == tokenize_conversation(two_turn_conversation(), lce_tokenizer).labels


def test_labels_survive_packing_and_packed_examples_stay_isolated(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Through the real trainer: packed rows keep every example's labels, and attention stays inside each example."""
    import torch

    from mathcode_pile.lce.dataset import conversation_from_row
    from training.sft_lce import build_lce_trainer, parse_lce_args

    demo = Path(__file__).resolve().parents[1] / "mathcode_pile" / "lce" / "data" / "lce_demo.jsonl"
    args = parse_lce_args(
        ["--config", "recipes/tiny-llama/sft/config_lce.yaml", "--model_name_or_path", str(tiny_model_dir),
         "--output_dir", str(tmp_path), "--dataset_name", str(demo), "--max_train_samples", "12",
         "--per_device_train_batch_size", "2", "--push_to_hub", "false"]
    )  # fmt: skip
    trainer, counters = build_lce_trainer(*args)
    tokenizer = trainer.processing_class
    assert counters["rows_kept"] == 12

    rows = [json.loads(line) for line in demo.read_text(encoding="utf-8").splitlines()[:12]]
    standalone = {}
    for row in rows:
        example = tokenize_conversation(conversation_from_row(row), tokenizer)
        standalone[tuple(example.input_ids)] = example.labels

    batch = next(iter(trainer.get_train_dataloader()))
    input_ids, labels, positions = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
    starts = [*(positions == 0).nonzero().flatten().tolist(), len(input_ids)]
    assert len(starts) - 1 >= 3, "rows of 256 tokens should hold several examples of about 115 tokens"
    model = trainer.model.eval()
    with torch.no_grad():
        packed_logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits[0]
        for begin, end in itertools.pairwise(starts):
            ids = input_ids[begin:end].tolist()
            assert tuple(ids) in standalone, "a packed segment is not one whole example"
            expected = standalone[tuple(ids)]
            assert labels[begin:end].tolist() == [IGNORE_INDEX, *expected[1:]]
            assert [lab != IGNORE_INDEX for lab in labels[begin:end].tolist()] == expected_trained_mask(ids, tokenizer)
            alone_logits = model(input_ids=input_ids[begin:end][None], use_cache=False).logits[0]
            assert torch.allclose(packed_logits[begin:end], alone_logits, atol=1e-4), "attention crossed examples"
