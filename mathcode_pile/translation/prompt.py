"""The translation prompt: ask the model for every computation of a passage, each with code that prints its result.

Long documents are cut on the document side (at a paragraph or sentence boundary when possible); the instruction
itself is never truncated.
"""

from __future__ import annotations

INSTRUCTION = """You are given a passage of mathematical text. Find every computation in it that a reader would \
need a scratchpad for. For each computation, write these four sections, in this order and with these exact headings:

Conditions Needed: the facts and values from the passage that the computation uses.
Computation Expression: the computation written in LaTeX.
Computation Result: the value the passage obtains.
Python Code Snippet:
```python
# self-contained code that computes the result and prints it with print()
```

Number the computations 1, 2, 3, ... If the passage contains no computation, answer "No computations."
"""


def truncate_document(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars``, preferring a paragraph, then a sentence boundary."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for boundary in ("\n\n", "\n", ". "):
        cut = head.rfind(boundary)
        if cut >= max_chars // 2:
            return head[: cut + len(boundary)].rstrip()
    return head.rstrip()


def build_translation_messages(document: str, max_doc_chars: int) -> list[dict[str, str]]:
    """Chat messages for one document (the server applies the model's chat template)."""
    passage = truncate_document(document, max_doc_chars)
    return [{"role": "user", "content": f"{INSTRUCTION}\nPassage:\n{passage}"}]
