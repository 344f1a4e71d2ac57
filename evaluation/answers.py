"""Find the final answer in a model output or a reference solution.

Everything here is a pure function of its arguments: no caches, no globals that change, no ``eval``. The grader
(:mod:`evaluation.grading`) uses it; it is public so that other evaluation code (the LCE loop, task utils) can reuse
exactly the same extraction rules instead of growing its own. How answers are compared once found lives in
:mod:`evaluation.answer_forms`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from evaluation.answer_forms import strip_math_delimiters

_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")
#: Tokens that end a chat turn: a generation that ran past its end keeps them, and the next turn after them.
_CHAT_TURN_TOKEN = re.compile(
    r"<\|(?:im_start|im_end|endoftext|eot_id|end_of_text|start_header_id|end|user|assistant|system)\|>|</s>"
    r"|<｜end▁of▁sentence｜>"
)
_FINAL_ANSWER = re.compile(
    r"final answer(?:\s+is|\s*:)[: \t]*(.+?)[ \t]*(?:\.[ \t]*)?(?:I hope it is correct|\n|$)", re.IGNORECASE
)
_ANSWER_IS = re.compile(r"\banswer(?:\s+is|\s*:)[:\s]*", re.IGNORECASE)
#: "Answer $ 9 $", "Answer \\( 9 \\)": the word followed directly by math.
_ANSWER_THEN_MATH = re.compile(r"\banswer[ \t]*(?=\$|\\\(|\\\[)", re.IGNORECASE)
_CHOICE_IS = re.compile(r"\b(?:option|choice)(?:\s+is|\s*:)[:\s]*", re.IGNORECASE)
_INLINE_MATH = re.compile(r"(?<!\\)\$((?:[^$\\]|\\.)+)\$")
_MATH_SPAN = re.compile(
    r"\$\$(?P<display>(?:[^$\\]|\\.)+?)\$\$|(?<!\\)\$(?P<inline>(?:[^$\\\n]|\\.)+?)\$"
    r"|\\\((?P<paren>.+?)\\\)|\\\[(?P<bracket>.+?)\\\]",
    re.DOTALL,
)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n")
_HASHES = re.compile(r"####\s*([^\n]+)")
#: "Final Answer: The final answer is X": the second half repeats the marker.
_MINERVA_PREFIX = re.compile(r"^\s*the final answer is\s*", re.IGNORECASE)
_QUOTES = re.compile(r'^\\?"|\\?"$')
_VERB = re.compile(r"\b(?:is|are|equals|was|be)\s+|=\s*", re.IGNORECASE)
#: A number in prose: ``-3``, ``$1,000.50``, ``$400 000``, and a fraction written with a slash (``2/3``).
_NUMBER_IN_TEXT = re.compile(
    r"(?<![\w.])-?(?:\$\s?\d{1,3}(?: \d{3})+(?![\d,])|\$?\s?\d{1,3}(?:,\d{3})+(?!\d)|\$?\s?\d+)(?:\.\d+)?"
    r"(?:/\d+(?:\.\d+)?(?![\d/]))?"
)
_AFTER_LAST_EQUALS = re.compile(r"^\s*\\?\$?\s*(?=[-\d.$])")
_SHORT_ANSWER_MAX_CHARS = 64
_SHORT_ANSWER_MAX_WORDS = 3
_PLAIN_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_LIST_SEPARATOR = re.compile(r"[,;]|\\text\{\s*(?:and|or)\s*\}|\b(?:and|or)\b")
_SIMPLE_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?[\w]+\}?)?\s*=\s*(?P<rhs>[^=]+)$")
#: Text allowed between boxes (or math spans) that together give one answer: punctuation, spacing, "and", "or",
#: or a few words ("\\boxed{1} papers and \\boxed{2} bins").
_MAX_CONNECTOR_CHARS = 40
_MAX_CONNECTOR_WORDS = 3
_LEADING_CHOICE = re.compile(r"^\(?\s*([A-J])\s*\)?(?![A-Za-z0-9])")
# Option letters A-J: MMLU and SAT use A-D (some SAT sets go to E), MMLU-Pro to J.
_CHOICE_PATTERNS = (
    re.compile(r"^\(?\s*([A-Ja-j])\s*\)?\s*[.:]?$"),  # B  (b)  b.  B:
    re.compile(r"^\(\s*([A-J])\s*\)\s+\S.*$", re.DOTALL),  # (B) 12
    re.compile(r"^([A-J])\s*[.):]\s+\S.*$", re.DOTALL),  # B) 12   B. 12
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|textnormal|textbf|mathrm|mbox|textrm|mathbf)\s*\{([^{}]*)\}")

#: How an answer was found. The first five are explicit markers: the writer said "this is my answer".
MARKED_SOURCES = frozenset({"boxed", "final_answer", "answer_is", "hashes", "choice"})


@dataclass(frozen=True)
class FoundAnswer:
    """A final answer and the rule that found it (one of ``boxed``, ``final_answer``, ``answer_is``, ``hashes``,
    ``choice``, ``short``, ``math_span``, ``last_line``, ``last_equals``, ``last_number``)."""

    text: str
    source: str

    @property
    def marked(self) -> bool:
        return self.source in MARKED_SOURCES


# -- boxes ----------------------------------------------------------------------------------------------------------


def _box_spans(text: str) -> list[tuple[int, int, str]]:
    """Every ``\\boxed{...}`` / ``\\fbox{...}`` as (start, end, content); unbalanced boxes are left out."""
    spans = []
    for match in re.finditer(r"\\(?:boxed|fbox)", text):
        position = match.end()
        while position < len(text) and text[position] == " ":
            position += 1
        if position >= len(text):
            continue
        if text[position] != "{":
            bare = re.match(r"[^\s$]+", text[position:])
            if bare:
                spans.append((match.start(), position + bare.end(), bare.group(0)))
            continue
        depth = 0
        for index in range(position, len(text)):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    spans.append((match.start(), index + 1, text[position + 1 : index]))
                    break
    return spans


def find_last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces allowed), or ``None``.

    ``\\boxed 5`` (no braces) is accepted too. An unbalanced last box yields ``None`` rather than a truncated answer.
    """
    spans = _box_spans(text)
    if not spans:
        return None
    last_start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    start, _, content = spans[-1]
    return content if start == last_start else None


def _is_connector(between: str, alternatives: bool = True) -> bool:
    """Whether the text between two answers only joins them: punctuation, spacing, "and", a few plain words
    (``, ``, `` and ``, ``\\quad \\text{and} \\quad``, `` papers and ``). With ``alternatives=False`` an "or" does not
    join: boxed answers offered as alternatives (``\\boxed{15\\frac{39}{40}}, or \\boxed{\\frac{639}{40}}``) are
    often one value in two forms, and the last one is the answer."""
    if len(between) > _MAX_CONNECTOR_CHARS * 3 or "\n\n" in between:
        return False
    plain = _TEXT_WRAPPER.sub(r" \1 ", between)
    plain = re.sub(r"\\q?quad|\\[()\[\]]|\\(?![A-Za-z])|\$|[\s,;:.&+=]", " ", plain)
    if re.search(r"\\[A-Za-z]", plain):
        return False  # an operator or another command: the boxes are parts of one expression
    words = plain.split()
    if not alternatives and any(word.lower() == "or" for word in words):
        return False
    others = [word for word in words if word.lower() not in ("and", "or")]
    if others and len(others) == len(words) and "," not in between:
        return False  # words that do not join ("first \\boxed{3} then \\boxed{4}")
    return len(plain.strip()) <= _MAX_CONNECTOR_CHARS and len(others) <= _MAX_CONNECTOR_WORDS


def several_answers(contents: list[str]) -> str:
    """One answer made of several (several boxes, several math spans): a set, ``\\{a, b\\}``."""
    return "\\{" + ", ".join(strip_math_delimiters(content) for content in contents) + "\\}"


def last_boxed_answer(text: str) -> tuple[str, int] | None:
    """The answer boxed last, and where its group of boxes starts. Boxes right next to each other (``\\boxed{2},
    \\boxed{3}`` or ``\\boxed{(3, 3)} \\text{ and } \\boxed{(1, 1)}``) are one answer with several values: a set."""
    spans = _box_spans(text)
    last_start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if not spans or spans[-1][0] != last_start or not spans[-1][2].strip():
        return None
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        if not span[2].strip() or not _is_connector(text[span[1] : group[0][0]], alternatives=False):
            break
        group.insert(0, span)
    if len(group) == 1:
        return strip_math_delimiters(group[0][2]), group[0][0]
    return several_answers([content for _, _, content in group]), group[0][0]


# -- sentences ------------------------------------------------------------------------------------------------------


def strip_chat_tokens(text: str) -> str:
    """The text of the first turn: a generation that ran past its end (``... I hope it is correct.
    <|im_start|>user ...``) is cut at the first turn token that follows some text."""
    position = 0
    for match in _CHAT_TURN_TOKEN.finditer(text):
        if text[position : match.start()].strip():
            return text[: match.start()]
        position = match.end()
    return text[position:] if position else text


def _text_after(pattern: re.Pattern[str], text: str) -> tuple[str, int] | None:
    """The sentence that follows the last match of ``pattern`` (up to ". " or a newline) and where the match is."""
    matches = list(pattern.finditer(text))
    if not matches:
        return None
    tail = text[matches[-1].end() :]
    end = _SENTENCE_END.search(tail)
    sentence = tail[: end.start()] if end else tail
    return (sentence, matches[-1].start()) if sentence.strip() else None


def _math_after(pattern: re.Pattern[str], text: str) -> tuple[str, int] | None:
    """The math span that directly follows the last match of ``pattern`` (``Answer \\( 9 \\)``)."""
    matches = list(pattern.finditer(text))
    if not matches:
        return None
    span = _MATH_SPAN.match(text, matches[-1].end())
    if span is None:
        return None
    content = next(group for group in span.groups() if group is not None)
    return (content, matches[-1].start()) if content.strip() else None


def last_inline_math(sentence: str) -> str | None:
    """The last ``$...$`` span of a sentence that also holds words (``the image is $\\frac{1}{2}$ cm`` ->
    ``\\frac{1}{2}``); ``None`` when the sentence is only math or has none."""
    spans = _INLINE_MATH.findall(sentence)
    if not spans or not _INLINE_MATH.sub("", sentence).strip(" .,;:"):
        return None
    return spans[-1]


def answer_in_sentence(sentence: str) -> str:
    """The answer a sentence states after a marker: the value after its last "is" / "=" (``The largest $n$ is 34``
    -> ``34``), else its last math span, else its only number (``Jane started 3 hours ago`` -> ``3``), else the
    sentence."""
    sentence = _QUOTES.sub("", _MINERVA_PREFIX.sub("", sentence).strip())
    spans_only = only_math_spans(sentence)
    if spans_only is not None:
        return spans_only  # "$x-2y+z-1=0$", "$12$ and $13$": the math is the answer
    sentence = strip_math_delimiters(sentence)
    for verb in reversed(list(_VERB.finditer(sentence))):
        if _INLINE_MATH.sub("", sentence[: verb.start()]).count("$") % 2:
            continue  # inside a math span
        value = _QUOTES.sub("", sentence[verb.end() :].strip())
        if looks_like_short_answer(value) and (
            _NUMBER_IN_TEXT.search(value) or _INLINE_MATH.search(value) or choice_letter(value)
        ):
            return only_math_spans(value) or strip_math_delimiters(last_inline_math(value) or value)
        break
    inline = last_inline_math(sentence)
    if inline is not None:
        return strip_math_delimiters(inline)
    if len(_PLAIN_WORD.findall(sentence)) > _SHORT_ANSWER_MAX_WORDS and "$" not in sentence and "\\" not in sentence:
        numbers = _NUMBER_IN_TEXT.findall(sentence)
        if len(numbers) == 1:
            return numbers[0].replace("$", "").replace(" ", "").rstrip(",")
    return strip_math_delimiters(sentence)


def choice_letter(answer: str) -> str | None:
    """The option letter an answer names (``"(b)"`` -> ``"B"``, ``"C) 12"`` -> ``"C"``), or ``None``.

    Only whole-answer shapes count: a letter somewhere inside a sentence is not a choice, which is what stops an
    answer like ``(b)`` from matching any gold that happens to contain a ``b``.
    """
    candidate = strip_math_delimiters(answer)
    candidate = _TEXT_WRAPPER.sub(r"\1", candidate).strip()
    for pattern in _CHOICE_PATTERNS:
        match = pattern.match(candidate)
        if match:
            return match.group(1).upper()
    return None


def leading_choice_letter(sentence: str) -> str | None:
    """A capital option letter opening a sentence (``D because 4 > 3`` -> ``D``); for multiple-choice answers only,
    where the sentence already follows "the answer is" / "the option is"."""
    match = _LEADING_CHOICE.match(strip_math_delimiters(sentence))
    return match.group(1) if match else None


# -- numbers in prose -----------------------------------------------------------------------------------------------


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (``$1,000.50`` -> ``1,000.50``), or ``None``."""
    matches = _NUMBER_IN_TEXT.findall(text)
    if not matches:
        return None
    return matches[-1].replace("$", "").replace(" ", "").rstrip(",")


def number_after_last_equals(text: str) -> str | None:
    """The number right after the last ``=`` of a worked solution (``... 9 + 6 = 15 liters of ...`` -> ``15``).

    A solution's last equation usually computes the asked quantity, while the sentence around it may name other
    numbers afterwards (``... = 75 bees in the last 6 hours``), so this beats the plain last number.
    """
    position = text.rfind("=")
    if position < 0:
        return None
    tail = text[position + 1 :]
    if not _AFTER_LAST_EQUALS.match(tail):
        return None
    match = _NUMBER_IN_TEXT.search(tail)
    if match is None or tail[: match.start()].strip(" $\\"):
        return None
    return match.group(0).replace("$", "").replace(" ", "").rstrip(",")


def result_of_last_line(text: str) -> str | None:
    """The result stated by a solution's last line: the number after its last ``=``, else its last number.

    Worked solutions end on the line that answers the question (``The red rope was 20 cm long.``), and that line's
    own equation, when it has one, computes the answer.
    """
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    return number_after_last_equals(lines[-1]) or last_number(lines[-1])


def math_span_of_last_line(text: str) -> str | None:
    """The last math span of the last line that has one, when nothing but words follows it (``Therefore $x \\geq
    5$ is the solution.`` -> ``x \\geq 5``): a span followed by a number in prose (``the largest $n$ is 34``) is
    not the answer."""
    spans = list(_MATH_SPAN.finditer(text))
    if not spans:
        return None
    last = spans[-1]
    after = text[last.end() :]
    if "\n\n" in after.strip() or _NUMBER_IN_TEXT.search(after):
        return None
    content = next(group for group in last.groups() if group is not None)
    return strip_math_delimiters(content) or None


def only_math_spans(text: str) -> str | None:
    """The answer of a text that is nothing but math spans joined by connectors: ``$$f(y) = y$$`` -> ``f(y) = y``,
    ``$21,16$ or $11$`` -> ``\\{21,16, 11\\}``."""
    spans = list(_MATH_SPAN.finditer(text.strip()))
    if not spans or text.strip()[: spans[0].start()].strip() or text.strip()[spans[-1].end() :].strip(" .,;"):
        return None
    stripped = text.strip()
    if any(not _is_connector(stripped[a.end() : b.start()]) for a, b in pairwise(spans)):
        return None
    contents = [next(group for group in span.groups() if group is not None) for span in spans]
    if len(contents) == 1:
        return strip_math_delimiters(contents[0]) or None
    return several_answers(contents)


def looks_like_short_answer(text: str) -> bool:
    """A bare final answer (``-2, 3, 5``, ``\\frac{1}{2}``, ``18 dollars``, ``(b)``) rather than a worked solution:
    one short line with at most a few plain words (LaTeX commands do not count as words)."""
    stripped = text.strip()
    if not stripped or "\n" in stripped or len(stripped) > _SHORT_ANSWER_MAX_CHARS:
        return False
    if "=" in stripped and not all(
        "=" not in part or _SIMPLE_ASSIGNMENT.match(part.strip())
        for part in _LIST_SEPARATOR.split(strip_math_delimiters(stripped))
    ):
        return False  # a computation ("9 * 2 = 18"), not an answer ("x = 2, y = 3")
    words = _PLAIN_WORD.findall(stripped)
    return len(words) <= _SHORT_ANSWER_MAX_WORDS


# -- the rules, in order --------------------------------------------------------------------------------------------


def locate_final_answer(text: str, multiple_choice: bool = False) -> FoundAnswer | None:
    """The final answer in a model output or reference solution, by the first rule that applies.

    The text is cut at a chat turn token that follows it, and GSM8K calculator annotations (``<<3*4=12>>``) are
    removed, so neither passes for the answer. Then: 1. the last ``\\boxed{}`` (boxes right next to each other give
    one answer with several values), unless a "final answer" sentence comes after it; 2. "Final Answer: The final
    answer is X" / "Final Answer: X" (Minerva); 3. "the answer is X" / "Answer: X" / "Answer $X$"; 4. GSM8K's
    ``#### X``; 5. for multiple choice, "option/choice is X" or a reply that is only a letter; 6. a text that is only
    math (``$$f(y) = y$$``, ``$21,16$ or $11$``); 7. a short reply taken whole; 8. the last math span of the last
    line when only words follow it; 9. the result of the last line (:func:`result_of_last_line`); 10. the number
    after the last ``=``; 11. the last number. A sentence after a marker gives the value it states
    (:func:`answer_in_sentence`).
    """
    if not text or not text.strip():
        return None
    text = _CALCULATOR_ANNOTATION.sub("", strip_chat_tokens(text))
    if not text.strip():
        return None
    boxed = last_boxed_answer(text)
    final = list(_FINAL_ANSWER.finditer(text))
    if final and (boxed is None or final[-1].start() > boxed[1]):
        sentence = final[-1].group(1)
        stated = answer_in_sentence(sentence)
        # after a box, only a sentence that states a value overrides it ("The final answer is positive" does not)
        if "\\boxed" not in sentence and (boxed is None or re.search(r"[\d$\\]", stated)):
            return FoundAnswer(stated, "final_answer")
    if boxed is not None:
        return FoundAnswer(boxed[0], "boxed")
    if final:
        return FoundAnswer(answer_in_sentence(final[-1].group(1)), "final_answer")
    marked = [found for found in (_math_after(_ANSWER_THEN_MATH, text), _text_after(_ANSWER_IS, text)) if found]
    if multiple_choice:
        choice = _text_after(_CHOICE_IS, text)
        if choice is not None:
            marked.append(choice)
    if marked:
        sentence, _ = max(marked, key=lambda found: found[1])
        return FoundAnswer(answer_in_sentence(sentence), "answer_is")
    hashes = _HASHES.findall(text)
    if hashes:
        return FoundAnswer(strip_math_delimiters(hashes[-1]), "hashes")
    if multiple_choice:
        letter = choice_letter(text.strip().splitlines()[0])
        if letter is not None:
            return FoundAnswer(letter, "choice")
    spans_only = only_math_spans(text)
    if spans_only is not None:
        return FoundAnswer(spans_only, "short")
    if looks_like_short_answer(text):
        return FoundAnswer(strip_math_delimiters(text), "short")
    span = math_span_of_last_line(text)
    if span is not None:
        return FoundAnswer(span, "math_span")
    for source, finder in (
        ("last_line", result_of_last_line),
        ("last_equals", number_after_last_equals),
        ("last_number", last_number),
    ):
        found = finder(text)
        if found:
            return FoundAnswer(found, source)
    return None


def find_final_answer(text: str, multiple_choice: bool = False) -> str | None:
    """The text of :func:`locate_final_answer`, or ``None``."""
    found = locate_final_answer(text, multiple_choice)
    return found.text if found is not None else None
