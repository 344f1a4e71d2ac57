"""CoT, PoT and LCE solutions of the same problems, derived from one LCE solution (MathCoder's format ablation).

MathCoder compares training on natural language alone (chain of thought, CoT), on code alone (program of thought,
PoT) and on its interleaved format (LCE). Deriving the first two from the LCE solutions keeps everything else equal:
the same problems, the same reasoning, the same executed results. Each stays an LCE conversation, so the one label
rule, the one trainer and the one inference loop serve all three:

* ``lce``: the solution as it is.
* ``pot``: the code blocks and their execution blocks only; the answer is what the last code block prints (the
  inference loop's grader reads the last execution output when no text follows it).
* ``cot``: one text block: the text blocks in order, each execution output stated in words where it was printed
  ("This gives 38."). The code is gone, so a CoT model has to produce those numbers itself.

A solution with nothing left in the chosen format (PoT of a solution without code) becomes an assistant message
without blocks, which the SFT data preparation drops and counts as ``no_text_or_code``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mathcode_pile.lce.format import Block, Message

#: Solution formats of MathCoder's ablation, in the paper's order.
SOLUTION_FORMATS = ("cot", "pot", "lce")


def _stated(output: str) -> str:
    """An execution output as a sentence of a chain of thought."""
    value = output.strip()
    return f"This gives {value}." if "\n" not in value else f"This gives:\n{value}"


def solution_blocks(blocks: Sequence[Block], solution_format: str) -> tuple[Block, ...]:
    """The blocks of one assistant solution in ``solution_format`` (see the module docstring)."""
    if solution_format == "lce":
        return tuple(blocks)
    if solution_format == "pot":
        return tuple(block for block in blocks if block.kind in ("code", "execution"))
    if solution_format == "cot":
        paragraphs = []
        for block in blocks:
            if block.kind == "text" and block.content.strip():
                paragraphs.append(block.content.strip())
            elif block.kind == "execution" and block.content.strip():
                paragraphs.append(_stated(block.content))
        return (Block("text", "\n\n".join(paragraphs)),) if paragraphs else ()
    raise ValueError(f"unknown solution format {solution_format!r}; expected one of {list(SOLUTION_FORMATS)}")


def conversation_as(messages: Sequence[Message], solution_format: str) -> list[Message]:
    """The conversation with every assistant message rewritten in ``solution_format``; other turns unchanged."""
    return [
        Message(message.role, solution_blocks(message.blocks, solution_format))
        if message.role == "assistant"
        else message
        for message in messages
    ]
