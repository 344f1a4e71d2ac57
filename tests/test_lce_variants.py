"""CoT / PoT / LCE solutions derived from the same LCE solutions (MathCoder's format ablation), and the SFT data
preparation that trains each of them with the one label rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset

from mathcode_pile.lce.dataset import conversation_from_row, prepare_lce_dataset
from mathcode_pile.lce.format import Block, Message, build_conversation
from mathcode_pile.lce.labels import IGNORE_INDEX
from mathcode_pile.lce.syntax import LCESyntax
from mathcode_pile.lce.tokens import add_lce_tokens
from mathcode_pile.lce.variants import SOLUTION_FORMATS, conversation_as, solution_blocks

SOLUTION = (
    Block("text", "First the area, length times width."),
    Block("code", "length = 15\nwidth = 11\narea = length * width\nprint(area)"),
    Block("execution", "165"),
    Block("text", "Now the perimeter and the sum."),
    Block("code", "perimeter = 2 * (length + width)\nprint(area + perimeter)"),
    Block("execution", "217\n"),
    Block("text", "The answer is $\\boxed{217}$."),
)


def test_lce_is_the_solution_itself() -> None:
    assert solution_blocks(SOLUTION, "lce") == SOLUTION


def test_pot_keeps_the_code_and_what_it_printed() -> None:
    assert solution_blocks(SOLUTION, "pot") == (SOLUTION[1], SOLUTION[2], SOLUTION[4], SOLUTION[5])


def test_cot_keeps_the_words_and_states_each_result_where_it_was_printed() -> None:
    (block,) = solution_blocks(SOLUTION, "cot")
    assert block == Block(
        "text",
        "First the area, length times width.\n\nThis gives 165.\n\nNow the perimeter and the sum.\n\n"
        "This gives 217.\n\nThe answer is $\\boxed{217}$.",
    )


def test_only_assistant_turns_change_and_unknown_formats_are_refused() -> None:
    messages = build_conversation(
        "A rectangle is 15 by 11. Area plus perimeter?", system="Be brief.", solution=SOLUTION
    )
    for solution_format in SOLUTION_FORMATS:
        converted = conversation_as(messages, solution_format)
        assert converted[:2] == messages[:2]
        assert converted[2].blocks == solution_blocks(SOLUTION, solution_format)
    assert conversation_as([Message("assistant", (Block("text", "no code"),))], "pot")[0].blocks == ()
    with pytest.raises(ValueError, match="unknown solution format 'tot'"):
        solution_blocks(SOLUTION, "tot")


@pytest.fixture(scope="module")
def lce_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    add_lce_tokens(tokenizer)
    return tokenizer


def test_the_three_formats_train_on_the_same_problems(lce_tokenizer: Any, repo_root: Path) -> None:
    demo = repo_root / "mathcode_pile" / "lce" / "data" / "lce_demo.jsonl"
    rows = [json.loads(line) for line in demo.read_text(encoding="utf-8").splitlines()[:12]]
    no_code = [("user", "2+2?"), ("assistant", "It is 4.")]
    rows.append({"messages": [{"role": r, "content": [{"type": "text", "content": c}]} for r, c in no_code]})
    dataset = Dataset.from_list([{"messages": row["messages"]} for row in rows])
    prepared = {
        solution_format: prepare_lce_dataset(dataset, lce_tokenizer, 512, syntax=LCESyntax(solution_format))
        for solution_format in SOLUTION_FORMATS
    }
    for solution_format, (_, counters) in prepared.items():
        # the row without code has no PoT solution: dropped and counted, never silently
        assert counters["rows_kept"] == (12 if solution_format == "pot" else 13)
        assert counters["dropped_no_text_or_code"] == (1 if solution_format == "pot" else 0)
    # every format's first example is the same question, tokenized identically up to the assistant's answer
    question = conversation_from_row(rows[0])[1].text
    for kept, _ in prepared.values():
        prompt = lce_tokenizer.decode([t for t, label in zip(kept[0]["input_ids"], kept[0]["labels"], strict=True)
                                       if label == IGNORE_INDEX])  # fmt: skip
        assert question in prompt
    cot_trained = lce_tokenizer.decode([t for t in prepared["cot"][0][0]["labels"] if t != IGNORE_INDEX])
    assert "<|code|>" not in cot_trained and "This gives" in cot_trained
    pot_trained = lce_tokenizer.decode([t for t in prepared["pot"][0][0]["labels"] if t != IGNORE_INDEX])
    assert pot_trained.startswith("<|code|>") and "<|text|>" not in pot_trained
    _, counters = prepare_lce_dataset(dataset, lce_tokenizer, 512, syntax=LCESyntax(mask_execution=False))
    assert counters["trained_tokens"] > prepared["lce"][1]["trained_tokens"]
