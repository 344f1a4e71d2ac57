"""The translation prompt: ask the model for every computation of a passage, each with code that prints its result.

The instruction (with one short worked example, which small models need to follow the format) is fixed; only the
document side is cut. A long document is either truncated at a paragraph or sentence boundary or split into such
chunks, each sent with the full instruction. Chat messages go to ``chat_completion`` (the server applies the model's
chat template); for TGI's raw ``text_generation`` route the same messages are rendered with the model's own chat
template by its tokenizer, or sent as plain text when no tokenizer is named.
"""

from __future__ import annotations

from functools import cache
from typing import Any

INSTRUCTION = """Read the passage below and find every calculation in it that a reader would have to work out on \
scratch paper. For each calculation, write the four parts below, in this order and with exactly these headings:

Conditions Needed: the facts and values from the passage that the calculation relies on.
Computation Expression: the calculation written in LaTeX.
Computation Result: the value the passage arrives at.
Python Code Snippet: a self-contained Python program in a ```python code block that computes the value and prints \
it with print().

Number the calculations Computation 1, Computation 2, and so on. If the passage has no calculation, answer \
"No computations."

Example passage: A shirt costs $20 and is sold at a 15% discount, so the price is $17.
Example answer:
Computation 1
Conditions Needed: The shirt costs $20; the discount is 15%.
Computation Expression: $20 \\times (1 - 0.15)$
Computation Result: 17
Python Code Snippet:
```python
price = 20 * (1 - 0.15)
print(price)
```
"""


def split_document(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars``, each ending at a paragraph, line or sentence boundary when
    one lies in its second half (a hard cut otherwise)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    pieces = []
    rest = text
    while len(rest) > max_chars:
        head = rest[:max_chars]
        cut = max_chars
        for boundary in ("\n\n", "\n", ". "):
            position = head.rfind(boundary)
            if position >= max_chars // 2:
                cut = position + len(boundary)
                break
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def truncate_document(text: str, max_chars: int) -> str:
    """The first piece of :func:`split_document`: the document cut to at most ``max_chars`` at a boundary."""
    return split_document(text, max_chars)[0]


def document_passages(text: str, max_chars: int, mode: str = "truncate", max_chunks: int = 8) -> list[str]:
    """The passages sent for one document: one truncated passage, or up to ``max_chunks`` consecutive chunks."""
    if mode == "truncate":
        return [truncate_document(text, max_chars)]
    if mode == "chunk":
        return split_document(text, max_chars)[:max_chunks]
    raise ValueError(f"mode must be 'truncate' or 'chunk', got {mode!r}")


def build_translation_messages(passage: str, max_doc_chars: int | None = None) -> list[dict[str, str]]:
    """Chat messages for one passage; with ``max_doc_chars`` the passage is truncated first (never the instruction)."""
    if max_doc_chars is not None:
        passage = truncate_document(passage, max_doc_chars)
    return [{"role": "user", "content": f"{INSTRUCTION}\nPassage:\n{passage}"}]


@cache
def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def render_raw_prompt(messages: list[dict[str, str]], tokenizer_name: str | None) -> str:
    """The prompt for a raw ``text_generation`` route: the model's chat template applied by its tokenizer (local
    folder or Hub id), or the user message itself when no tokenizer is named (base models)."""
    if tokenizer_name is None:
        return "\n\n".join(message["content"] for message in messages) + "\n\n"
    tokenizer = _load_tokenizer(tokenizer_name)
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
