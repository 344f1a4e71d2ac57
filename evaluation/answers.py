"""Text helpers behind the grader: find the final answer in a solution and bring answers to comparable forms.

Everything here is a pure function of its arguments: no caches, no globals that change, no ``eval``. The grader
(:mod:`evaluation.grading`) combines them; they are public so that other evaluation code (the LCE loop, task utils)
can reuse exactly the same extraction rules instead of growing its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")
_FINAL_ANSWER = re.compile(
    r"final answer is[: \t]*(.+?)[ \t]*(?:\.[ \t]*)?(?:I hope it is correct|\n|$)", re.IGNORECASE
)
_ANSWER_IS = re.compile(r"\banswer(?:\s+is|\s*:)[:\s]*", re.IGNORECASE)
_CHOICE_IS = re.compile(r"\b(?:option|choice)(?:\s+is|\s*:)[:\s]*", re.IGNORECASE)
_INLINE_MATH = re.compile(r"(?<!\\)\$((?:[^$\\]|\\.)+)\$")
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n")
_HASHES = re.compile(r"####\s*([^\n]+)")
_NUMBER_IN_TEXT = re.compile(
    r"(?<![\w.])-?(?:\$\s?\d{1,3}(?: \d{3})+(?![\d,])|\$?\s?\d{1,3}(?:,\d{3})+(?!\d)|\$?\s?\d+)(?:\.\d+)?"
)
_AFTER_LAST_EQUALS = re.compile(r"^\s*\\?\$?\s*(?=[-\d.$])")
_SHORT_ANSWER_MAX_CHARS = 64
_SHORT_ANSWER_MAX_WORDS = 3
_PLAIN_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")

_LATEX_SPACING = ("\\!", "\\,", "\\;", "\\:", "\\ ", "~", "\\quad", "\\qquad", "\\displaystyle")
_UNIT_GROUP_AT_END = re.compile(
    r"(?<=\S)\s*\\(?:text|mathrm|mbox|textrm|rm)\s*\{\s*~?\s*[A-Za-z][^{}]*\}(?:\^\{?\d\}?)?\s*$"
)
_UNIT_WORDS_AT_END = re.compile(r"^(.*?[\d}])\s+(?:[a-z]{2,}[.]?)(?:\s+[a-z]{2,}[.]?)*(?:\^\{?\d\}?)?\s*$")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox|textrm|mathbf)\s*\{([^{}]*)\}")
_SIMPLE_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?[\w]+\}?)?\s*=\s*(?P<rhs>[^=]+)$")
_AND_WORD = re.compile(r"(?<![A-Za-z\\])and(?![A-Za-z])")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_SCIENTIFIC = re.compile(
    r"^(?P<mantissa>[+-]?(?:\d+\.?\d*|\.\d+))\s*(?:\\times|\\cdot|\*|x|×)\s*10\s*\^\s*\{?\s*(?P<exp>[+-]?\d+)\s*\}?$"
)
_POWER_OF_TEN = re.compile(r"^(?P<sign>[+-]?)10\s*\^\s*\{?\s*(?P<exp>[+-]?\d+)\s*\}?$")
_LATEX_FRACTION = re.compile(r"^(?P<sign>[+-]?)\\frac\{(?P<num>[^{}]+)\}\{(?P<den>[^{}]+)\}$")
_SLASH_FRACTION = re.compile(r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))\s*/\s*(?P<den>[+-]?(?:\d+\.?\d*|\.\d+))$")
_LEADING_CHOICE = re.compile(r"^\(?\s*([A-J])\s*\)?(?![A-Za-z0-9])")
#: Greek-letter commands name variables in answers (``\\pi`` is a number and is not listed).
_GREEK_LETTERS = frozenset(
    (
        "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
        "kappa", "lambda", "mu", "nu", "xi", "rho", "varrho", "sigma", "tau", "upsilon", "phi", "varphi", "chi",
        "psi", "omega", "hbar", "ell",
    )
)  # fmt: skip
# Option letters A-J: MMLU and SAT use A-D (some SAT sets go to E), MMLU-Pro to J.
_CHOICE_PATTERNS = (
    re.compile(r"^\(?\s*([A-Ja-j])\s*\)?\s*[.:]?$"),  # B  (b)  b.  B:
    re.compile(r"^\(\s*([A-J])\s*\)\s+\S.*$", re.DOTALL),  # (B) 12
    re.compile(r"^([A-J])\s*[.):]\s+\S.*$", re.DOTALL),  # B) 12   B. 12
)


def find_last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces allowed), or ``None``.

    ``\\boxed 5`` (no braces) is accepted too. An unbalanced box yields ``None`` rather than a truncated answer.
    """
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    position = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
    while position < len(text) and text[position] == " ":
        position += 1
    if position >= len(text):
        return None
    if text[position] != "{":
        match = re.match(r"[^\s$]+", text[position:])
        return match.group(0) if match else None
    depth = 0
    for index in range(position, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[position + 1 : index]
    return None


def strip_math_delimiters(answer: str) -> str:
    """Trim whitespace, ``$`` / ``\\(`` / ``\\[`` wrappers and a trailing full stop from an extracted answer."""
    answer = answer.strip()
    if answer.count("$") == 1 and answer.startswith("$"):  # a currency sign ("$18"), not a math delimiter
        answer = answer[1:]
    for _ in range(3):
        before = answer
        answer = answer.strip().rstrip(".").strip()
        if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
            answer = answer.strip("$")
        for opening, closing in (("\\(", "\\)"), ("\\[", "\\]")):
            if answer.startswith(opening) and answer.endswith(closing):
                answer = answer[len(opening) : -len(closing)]
        if answer == before:
            break
    return answer.strip()


def _text_after(pattern: re.Pattern[str], text: str) -> str | None:
    """The sentence that follows the last match of ``pattern`` (up to ". " or a newline), or ``None``."""
    matches = list(pattern.finditer(text))
    if not matches:
        return None
    tail = text[matches[-1].end() :]
    end = _SENTENCE_END.search(tail)
    sentence = tail[: end.start()] if end else tail
    return sentence if sentence.strip() else None


def last_inline_math(sentence: str) -> str | None:
    """The last ``$...$`` span of a sentence that also holds words (``the image is $\\frac{1}{2}$ cm`` ->
    ``\\frac{1}{2}``); ``None`` when the sentence is only math or has none."""
    spans = _INLINE_MATH.findall(sentence)
    if not spans or not _INLINE_MATH.sub("", sentence).strip(" .,;:"):
        return None
    return spans[-1]


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


def looks_like_short_answer(text: str) -> bool:
    """A bare final answer (``-2, 3, 5``, ``\\frac{1}{2}``, ``18 dollars``, ``(b)``) rather than a worked solution:
    one short line with at most a few plain words (LaTeX commands do not count as words)."""
    stripped = text.strip()
    if not stripped or "\n" in stripped or len(stripped) > _SHORT_ANSWER_MAX_CHARS:
        return False
    if "=" in stripped and not _SIMPLE_ASSIGNMENT.match(strip_math_delimiters(stripped)):
        return False  # a computation ("9 * 2 = 18"), not an answer
    words = _PLAIN_WORD.findall(stripped)
    return len(words) <= _SHORT_ANSWER_MAX_WORDS


def find_final_answer(text: str, multiple_choice: bool = False) -> str | None:
    """The final answer in a model output or reference solution, by the first rule that applies.

    1. the last ``\\boxed{}``; 2. Minerva's "Final Answer: The final answer is X. I hope it is correct."; 3. "the
    answer is X" / "Answer: X"; 4. GSM8K's ``#### X``; 5. for multiple choice, "option/choice is X" or a reply that is
    only a letter; 6. a short reply taken whole; 7. the result of the last line (:func:`result_of_last_line`);
    8. the number after the last ``=``; 9. the last number. GSM8K calculator annotations
    (``<<3*4=12>>``) are removed first so they never pass for the answer.
    """
    if not text or not text.strip():
        return None
    text = _CALCULATOR_ANNOTATION.sub("", text)
    boxed = find_last_boxed(text)
    if boxed is not None and boxed.strip():
        return strip_math_delimiters(boxed)
    final = list(_FINAL_ANSWER.finditer(text))
    if final:
        sentence = final[-1].group(1)
        return strip_math_delimiters(last_inline_math(sentence) or sentence)
    for pattern in (_ANSWER_IS, _CHOICE_IS) if multiple_choice else (_ANSWER_IS,):
        sentence = _text_after(pattern, text)
        if sentence is not None:
            return strip_math_delimiters(last_inline_math(sentence) or sentence)
    hashes = _HASHES.findall(text)
    if hashes:
        return strip_math_delimiters(hashes[-1])
    if multiple_choice:
        letter = choice_letter(text.strip().splitlines()[0])
        if letter is not None:
            return letter
    if looks_like_short_answer(text):
        return strip_math_delimiters(text)
    return result_of_last_line(text) or number_after_last_equals(text) or last_number(text)


def _keep_digit_spaces_then_squash(text: str) -> str:
    """Remove whitespace except a single space between two digits (so ``-2 3 5`` never becomes ``-235``)."""
    collapsed = re.sub(r"\s+", " ", text.strip())
    protected = re.sub(r"(?<=\d) (?=[\d.])", "\x00", collapsed)
    return protected.replace(" ", "").replace("\x00", " ")


def clean_answer(answer: str, squash: bool = True) -> str:
    """A canonical spelling of an answer, used for string comparison, number parsing and list splitting.

    Removes LaTeX spacing and sizing commands, ``$`` and ``%`` signs, degree marks, trailing unit words and
    ``\\text{}`` units, a ``x =`` prefix naming a single variable, and thousands separators; rewrites ``\\dfrac`` /
    ``\\tfrac`` and the ``\\frac12`` shorthand. With ``squash`` whitespace is removed except between two digits;
    without it (the form handed to math-verify, where ``\\sin x`` must not become ``\\sinx``) it is only collapsed.
    """
    text = strip_math_delimiters(answer)
    for spacing in _LATEX_SPACING:
        text = text.replace(spacing, " ")
    text = text.replace("\\left", "").replace("\\right", "")
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = text.replace("{,}", ",")
    for mark in ("^{\\circ}", "^\\circ", "\\circ", "°", "\\%", "%", "\\$", "$"):
        text = text.replace(mark, "")
    text = _UNIT_GROUP_AT_END.sub("", text).strip()
    text = _TEXT_WRAPPER.sub(r"\1", text).strip()
    unit_words = _UNIT_WORDS_AT_END.match(text)
    if unit_words and "\\" not in text[unit_words.end(1) :]:
        text = unit_words.group(1)
    assignment = _SIMPLE_ASSIGNMENT.match(text)
    if assignment:
        text = assignment.group("rhs")
    text = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\sqrt(?:\{\})?\s*(\d|[A-Za-z](?![A-Za-z]))", r"\\sqrt{\1}", text)
    if not squash:
        return re.sub(r"\s+", " ", text).strip().rstrip(".")
    text = text.replace("\\\\", "\\")
    text = _keep_digit_spaces_then_squash(text).rstrip(".")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    if text.startswith("+"):
        text = text[1:]
    return text


def parse_number(cleaned: str) -> float | None:
    """The value of a cleaned answer that is a plain number, a fraction of numbers or a power-of-ten product.

    ``4.5e33``, ``4.5\\times10^{33}``, ``10^{-3}``, ``\\frac{3}{4}``, ``-1./3`` parse; anything symbolic returns
    ``None`` and is left to math-verify.
    """
    text = cleaned.strip()
    if not text:
        return None
    try:
        if _PLAIN_NUMBER.match(text):
            return _finite(float(text))
        scientific = _SCIENTIFIC.match(text)
        if scientific:
            return _finite(float(scientific.group("mantissa")) * 10.0 ** int(scientific.group("exp")))
        power = _POWER_OF_TEN.match(text)
        if power:
            value = 10.0 ** int(power.group("exp"))
            return _finite(-value if power.group("sign") == "-" else value)
        fraction = _LATEX_FRACTION.match(text) or _SLASH_FRACTION.match(text)
        if fraction:
            numerator = parse_number(fraction.group("num"))
            denominator = parse_number(fraction.group("den"))
            if numerator is None or denominator is None or denominator == 0:
                return None
            value = numerator / denominator
            return _finite(-value if fraction.groupdict().get("sign") == "-" else value)
    except (OverflowError, ValueError):
        return None
    return None


def has_free_symbol(answer: str) -> bool:
    """Whether an answer names a variable (``x``, ``C_{1}``, ``2.2 \\tau``): a Latin letter outside LaTeX commands,
    or a Greek-letter command other than ``\\pi``. Pass the unsquashed clean form: ``\\omega i`` squashed to
    ``\\omegai`` would read as one command.

    ``e`` and ``i`` count as variables too; in our benchmarks a plain number never equals an expression holding either,
    and math-verify would reach the same verdict far more slowly.
    """
    commands = re.findall(r"\\([A-Za-z]+)", answer)
    if any(command.lower() in _GREEK_LETTERS for command in commands):
        return True
    return bool(re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", " ", answer)))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class AnswerList:
    """An answer made of several values: ``ordered`` for a bracketed tuple, unordered for a bare list."""

    items: tuple[str, ...]
    ordered: bool


def _split_top_level(text: str, separators: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char in separators and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def split_answer_list(cleaned: str) -> AnswerList | None:
    """Split a cleaned answer into its values when it holds more than one, else ``None``.

    ``(1,2)`` and ``[1,2]`` are ordered tuples; ``1,2``, ``1;2``, ``1\\text{and}2`` and space-separated numbers
    (``-2 3 5``) are unordered lists. Intervals such as ``(0,1]`` are not lists (math-verify compares them).
    """
    text = _AND_WORD.sub(",", cleaned)
    ordered = len(text) >= 2 and (text[0], text[-1]) in (("(", ")"), ("[", "]"))
    if ordered and not _brackets_wrap_whole(text):
        ordered = False
    inner = text[1:-1] if ordered else text
    parts = _split_top_level(inner, ",;")
    if len(parts) < 2 and not ordered:
        words = inner.split(" ")
        if len(words) >= 2 and all(parse_number(word) is not None for word in words):
            parts = words
    if len(parts) < 2 or any(not part for part in parts):
        return None
    return AnswerList(items=tuple(parts), ordered=ordered)


def _brackets_wrap_whole(text: str) -> bool:
    """True when the opening bracket at position 0 closes at the last position (``(1,2)`` but not ``(1)+(2)``)."""
    depth = 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0 and index != len(text) - 1:
                return False
    return depth == 0
