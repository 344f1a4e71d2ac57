"""LLM labelling for round 2 of the classifier: one topic from a small taxonomy per document, parsed robustly.

The prompt lists lettered topics; seven are mathematical, two are not. Models answer in many shapes ("B",
"(B) Algebra", "Answer: C.", "The topic is geometry", "**C. Geometry**", "Not mathematics"), so the parser accepts
a leading letter, a letter after "answer"/"topic", or a topic name, and returns ``None`` rather than guessing when
the answer names no topic or names two. Generation stops at the first line break: only the first line is parsed.
Every request goes through :class:`mathcode_pile.llm.LLMClient`, so it is cached and a rerun pays for nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from mathcode_pile.llm.client import LLMClient, LLMRequestError
from mathcode_pile.translation.prompt import truncate_document

#: (letter, topic, is_math)
TOPICS: tuple[tuple[str, str, bool], ...] = (
    ("A", "Arithmetic and word problems", True),
    ("B", "Algebra", True),
    ("C", "Geometry and trigonometry", True),
    ("D", "Calculus and analysis", True),
    ("E", "Probability and statistics", True),
    ("F", "Number theory and combinatorics", True),
    ("G", "Other mathematics", True),
    ("H", "Science or engineering without mathematics", False),
    ("I", "Not mathematics", False),
)
_BY_LETTER = {letter: (topic, is_math) for letter, topic, is_math in TOPICS}
_LETTERS = "".join(_BY_LETTER)
#: Distinctive words of each topic name, matched when the model writes a name instead of a letter.
_NAME_PATTERNS = {
    "I": r"\bnot (?:about )?math(?:ematics|ematical|s)?\b|\bnon-?math",
    "H": r"\bscience\b|\bengineering\b",
    "A": r"\barithmetic\b|\bword problems?\b",
    "B": r"\balgebra\b",
    "C": r"\bgeometry\b|\btrigonometry\b",
    "D": r"\bcalculus\b|\banalysis\b",
    "E": r"\bprobability\b|\bstatistics\b",
    "F": r"\bnumber theory\b|\bcombinatorics\b",
    "G": r"\bother mathematics\b",
}
_LEADING_LETTER = re.compile(rf"^[\s*_#>\"'`(\[]*([{_LETTERS}])\b(.*)$")
_ANSWER_LETTER = re.compile(
    rf"(?i:\b(?:answer|topic|category|choice|option)\b)[^A-Za-z]*(?:is\b[^A-Za-z]*)?([{_LETTERS}])\b(.*)$"
)
_FIRST_WORD = re.compile(r"[a-z]+")

LABEL_INSTRUCTION = """Which topic best describes the passage below? Choose exactly one:
{topics}

Reply with the letter and the topic name only, for example "B. Algebra".

Passage:
{passage}"""


@dataclass(frozen=True)
class TopicLabel:
    """A parsed answer: the topic letter and name and whether it is mathematics (all ``None`` when unparseable)."""

    letter: str | None
    topic: str | None
    is_math: bool | None
    raw: str


def build_label_prompt(text: str, max_chars: int = 1500) -> str:
    topics = "\n".join(f"{letter}. {topic}" for letter, topic, _ in TOPICS)
    return LABEL_INSTRUCTION.format(topics=topics, passage=truncate_document(text, max_chars))


def _consistent_letter(letter: str, rest: str) -> str | None:
    """``letter`` when nothing follows it or its own topic name does ("B. Algebra"), else ``None``.

    "A. Breast milk is ..." (the model picked an option of the passage) or "I think ..." name no topic.
    """
    rest = rest.strip(" \t.:)]*-_,'\"`").lower()
    if not rest:
        return letter
    word = _FIRST_WORD.match(rest)
    return letter if word and _BY_LETTER[letter][0].lower().startswith(word.group(0)) else None


def parse_topic_label(answer: str) -> TopicLabel:
    """The topic an answer names, or an all-``None`` label when it names none or several.

    Only the first non-empty line counts (small models go on listing the other options). A letter counts when it
    stands alone or is followed by its own topic name, at the start or after "answer is" / "topic:"; otherwise a
    single topic name in the line decides.
    """
    first_line = next((line for line in answer.strip().splitlines() if line.strip()), "")
    letter = None
    for pattern in (_LEADING_LETTER, _ANSWER_LETTER):
        match = pattern.search(first_line) if pattern is _ANSWER_LETTER else pattern.match(first_line)
        if match:
            letter = _consistent_letter(match.group(1), match.group(2))
            if letter is not None:
                break
    if letter is None:
        lowered = first_line.lower()
        named = [code for code, name_pattern in _NAME_PATTERNS.items() if re.search(name_pattern, lowered)]
        if "I" in named:
            named = ["I"]  # "not mathematics" contains a math word: the negation decides
        if len(named) == 1:
            letter = named[0]
    if letter is None:
        return TopicLabel(None, None, None, answer)
    topic, is_math = _BY_LETTER[letter]
    return TopicLabel(letter, topic, is_math, answer)


async def _label_one(client: LLMClient, text: str, max_new_tokens: int, max_chars: int) -> TopicLabel:
    prompt = build_label_prompt(text, max_chars)
    try:
        if client.config.llm_mode == "chat":
            response = await client.generate(
                messages=[{"role": "user", "content": prompt}],
                max_new_tokens=max_new_tokens,
                temperature=0.0,
                stop=["\n"],
            )
        else:
            response = await client.generate(
                prompt=prompt, max_new_tokens=max_new_tokens, temperature=0.0, stop=["\n"]
            )
    except LLMRequestError as exc:
        return TopicLabel(None, None, None, f"<request failed: {exc}>")
    return parse_topic_label(response.text)


async def label_texts(
    client: LLMClient, texts: Sequence[str], max_new_tokens: int = 16, max_chars: int = 1500
) -> list[TopicLabel]:
    """Labels for ``texts`` in order (concurrency bounded by the client)."""
    return list(await asyncio.gather(*(_label_one(client, t, max_new_tokens, max_chars) for t in texts)))
