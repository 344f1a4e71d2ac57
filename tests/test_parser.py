"""The translation prompt and the response parser: the paper's sections in any markdown dress; failures counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mathcode_pile.translation.parser import parse_translation
from mathcode_pile.translation.prompt import (
    INSTRUCTION,
    build_translation_messages,
    document_passages,
    render_raw_prompt,
    split_document,
    truncate_document,
)

FIXTURES = Path(__file__).parent / "fixtures" / "translation"
FENCE = "```"


def one(response: str) -> dict[str, str]:
    outcome = parse_translation(response)
    assert outcome.issues == [], outcome.issues
    assert len(outcome.computations) == 1
    return outcome.computations[0].to_dict()


PLAIN = f"""Conditions Needed: The price is $20 and the discount is 15%.
Computation Expression: $20 \\times (1 - 0.15)$
Computation Result: 17
Python Code Snippet:
{FENCE}python
print(20 * (1 - 0.15))
{FENCE}
"""


def test_paper_format_gives_all_four_fields() -> None:
    computation = one(PLAIN)
    assert computation == {
        "conditions": "The price is $20 and the discount is 15%.",
        "expression": "20 \\times (1 - 0.15)",
        "result": "17",
        "code": "print(20 * (1 - 0.15))",
    }


@pytest.mark.parametrize(
    "heading",
    [
        "{name}:",  # the paper's own
        "**{name}:**",  # bold, colon inside
        "**{name}**:",  # bold, colon outside
        "__{name}__:",
        "*{name}:*",
        "### {name}",  # markdown heading, no colon
        "## {name}:",
        "1. {name}:",  # numbered
        "2) **{name}**:",
        "- {name}:",  # bulleted
        "* **{name}:**",
        "> {name}:",
        "{upper}:",  # case
    ],
)
def test_markdown_variations_of_the_section_headings(heading: str) -> None:
    def head(name: str) -> str:
        return heading.format(name=name, upper=name.upper())

    response = (
        f"{head('Conditions Needed')}\n7 boxes hold 8 pens each.\n"
        f"{head('Computation Expression')}\n$7 \\times 8$\n"
        f"{head('Computation Result')}\n56\n"
        f"{head('Python Code Snippet')}\n{FENCE}python\nprint(7 * 8)\n{FENCE}\n"
    )
    computation = one(response)
    assert computation["conditions"] == "7 boxes hold 8 pens each."
    assert computation["expression"] == "7 \\times 8"
    assert computation["result"] == "56"
    assert computation["code"] == "print(7 * 8)"


@pytest.mark.parametrize(
    ("opening", "closing"),
    [(f"{FENCE}python", FENCE), (FENCE, FENCE), (f"{FENCE}py", FENCE), ("~~~python", "~~~"), ("````python", "````")],
)
def test_code_fences_with_or_without_a_language(opening: str, closing: str) -> None:
    response = PLAIN.replace(f"{FENCE}python\n", f"{opening}\n").replace(f"\n{FENCE}\n", f"\n{closing}\n")
    assert one(response)["code"] == "print(20 * (1 - 0.15))"


def test_values_on_the_heading_line_and_several_computations() -> None:
    response = f"""### Computation 1
- **Conditions Needed**: speed 60 km/h for 3 hours
- **Computation Expression**: $60 \\times 3$
- **Computation Result**: 180 km
- **Python Code Snippet**: {FENCE}python
print(60 * 3)
{FENCE}

**Computation 2:**
Conditions Needed: 180 km at 90 km/h
Computation Expression: \\[\\frac{{180}}{{90}}\\]
Computation Result: 2 hours
Python Code Snippet:
{FENCE}
print(180 / 90)
{FENCE}
"""
    outcome = parse_translation(response)
    assert outcome.issues == [] and outcome.blocks == 2
    first, second = (c.to_dict() for c in outcome.computations)
    assert (first["result"], first["code"]) == ("180 km", "print(60 * 3)")
    assert first["conditions"] == "speed 60 km/h for 3 hours"
    assert (second["expression"], second["result"]) == ("\\frac{180}{90}", "2 hours")


def test_a_new_conditions_heading_starts_the_next_block_without_separators() -> None:
    outcome = parse_translation(PLAIN + "\n" + PLAIN.replace("17", "17.0"))
    assert [c.result for c in outcome.computations] == ["17", "17.0"]


def test_headings_inside_code_are_code() -> None:
    response = PLAIN.replace("print(20 * (1 - 0.15))", "# Computation Result: not a heading\nprint(17)")
    assert one(response)["code"] == "# Computation Result: not a heading\nprint(17)"


def test_a_sentence_starting_with_a_section_word_is_not_a_heading() -> None:
    response = PLAIN.replace("The price is $20", "Result of the sale: the price is $20")
    assert one(response)["conditions"].startswith("Result of the sale")


def test_unfenced_code_is_accepted_only_when_it_is_python() -> None:
    python = PLAIN.replace(f"{FENCE}python\nprint(20 * (1 - 0.15))\n{FENCE}", "price = 20 * 0.85\nprint(price)")
    assert one(python)["code"] == "price = 20 * 0.85\nprint(price)"
    prose = PLAIN.replace(f"{FENCE}python\nprint(20 * (1 - 0.15))\n{FENCE}", "Multiply the price by the rest.")
    assert parse_translation(prose).issues == ["missing_code"]


@pytest.mark.parametrize(
    ("response", "issues"),
    [
        ("", ["empty_response"]),
        ("   \n", ["empty_response"]),
        ("No computations.", ["no_computations"]),
        ("The passage has no numbers, so there is nothing to do here.", ["no_sections"]),
        (PLAIN.replace("Computation Result: 17\n", ""), ["missing_result"]),
        (PLAIN.replace("Computation Expression: $20 \\times (1 - 0.15)$\n", ""), ["missing_expression"]),
        (PLAIN.split("Python Code Snippet:")[0], ["missing_code"]),
        (PLAIN.rsplit(FENCE, 1)[0], ["unclosed_code_fence"]),  # a response cut by the token budget
        (PLAIN.replace(f"{FENCE}python", f"{FENCE}javascript"), ["code_not_python"]),
        (PLAIN.replace("print(20 * (1 - 0.15))", ""), ["empty_code"]),
        (PLAIN + PLAIN.replace("Computation Result: 17\n", ""), ["missing_result"]),  # one good, one bad block
    ],
)
def test_unusable_responses_and_blocks_are_counted_with_a_reason(response: str, issues: list[str]) -> None:
    outcome = parse_translation(response)
    assert outcome.issues == issues
    assert len(outcome.computations) == (1 if response.startswith(PLAIN) and len(response) > len(PLAIN) else 0)


def test_fixture_responses_all_parse() -> None:
    for line in (FIXTURES / "responses.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        outcome = parse_translation(case["response"])
        assert outcome.issues == [], case["name"]
        assert len(outcome.computations) == len(case["expected"]), case["name"]


# -- the prompt ----------------------------------------------------------------------------------------------------


def test_the_instruction_is_never_cut_only_the_document() -> None:
    document = "A paragraph about trains.\n\n" + "The train goes 60 km per hour. " * 400
    content = build_translation_messages(document, max_doc_chars=500)[0]["content"]
    assert content.startswith(INSTRUCTION)
    passage = content.split("Passage:\n", 1)[1]
    assert len(passage) <= 500 and document.startswith(passage)
    for heading in ("Conditions Needed:", "Computation Expression:", "Computation Result:", "Python Code Snippet:"):
        assert heading in INSTRUCTION


def test_documents_are_cut_at_boundaries_and_chunked_without_loss() -> None:
    document = "First paragraph, short.\n\nSecond one. " + "More words here. " * 30 + "\n\nThird paragraph."
    pieces = split_document(document, 200)
    assert all(len(piece) <= 200 for piece in pieces)
    assert " ".join(p.replace("\n", " ") for p in pieces).split() == document.replace("\n", " ").split()
    assert all(piece.endswith(".") for piece in pieces)  # sentence boundaries, never mid-word
    with_break = "x" * 150 + ".\n\n" + "Second paragraph goes on. " * 10
    assert split_document(with_break, 200)[0] == "x" * 150 + "."  # a paragraph break in the second half wins
    assert truncate_document(document, 200) == pieces[0]
    assert document_passages(document, 200, "chunk", max_chunks=2) == pieces[:2]
    assert document_passages(document, 10_000, "chunk") == [document]
    with pytest.raises(ValueError, match="mode"):
        document_passages(document, 200, "summarize")


def test_raw_prompts_use_the_model_chat_template(converted_model_dir: Path) -> None:
    messages = build_translation_messages("Two plus two is four.")
    templated = render_raw_prompt(messages, str(converted_model_dir))
    assert "<|im_start|>user" in templated and templated.rstrip().endswith("<|im_start|>assistant")
    assert "Two plus two is four." in templated
    plain = render_raw_prompt(messages, None)
    assert plain.startswith(INSTRUCTION) and "<|im_start|>" not in plain
