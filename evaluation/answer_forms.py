"""Comparable forms of one answer: its canonical spelling, the numbers it can mean, its readings, its list structure.

Pure functions of their arguments (no caches, no globals that change, no ``eval``); the grader
(:mod:`evaluation.grading`) combines them, and the snippet verifier (:mod:`mathcode_pile.translation.verify`) reuses
them for stated results. Every function here runs in time linear (or, for list matching, quadratic) in a text whose
length the callers bound, so they are safe to run on untrusted text in the calling process.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# -- spelling -------------------------------------------------------------------------------------------------------

#: LaTeX spacing commands (a ``\\ `` that is part of a ``\\\\`` row break is not one).
_LATEX_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|~|\\q?quad|\\displaystyle")
#: ``1,\\!000`` and ``1{,}000``: thousands separators written with LaTeX spacing.
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|,\\!\s*)(?=\d)")
_RELATIONS = (
    (re.compile(r"\\geq?(?![A-Za-z])|\\geqslant|≥|>="), "\\geq "),
    (re.compile(r"\\leq?(?![A-Za-z])|\\leqslant|≤|<="), "\\leq "),
    (re.compile(r"\\neq?(?![A-Za-z])|≠|!="), "\\neq "),
    (re.compile(r"\\lt(?![A-Za-z])"), "<"),
    (re.compile(r"\\gt(?![A-Za-z])"), ">"),
)
_UNIT_GROUP_AT_END = re.compile(
    r"(?<=\S)\s*\\(?:text|textnormal|mathrm|mbox|textrm|rm)\s*\{\s*~?\s*[A-Za-z][^{}]*\}(?:\^\{?\d\}?)?\s*$"
)
_BRACED_UNIT_AT_END = re.compile(r"(?<=[\d}])\s*\{\s*[A-Za-z]{1,12}\s*\}(?:\^\{?\d\}?)?\s*$")
_UNIT_WORDS_AT_END = re.compile(r"^(.*?[\d}])\s+(?:[a-z]{2,}[.]?)(?:\s+[a-z]{2,}[.]?)*(?:\^\{?\d\}?)?\s*$")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textnormal|textbf|mathrm|mbox|textrm|mathbf)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"^[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")


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


def _keep_digit_spaces_then_squash(text: str) -> str:
    """Remove whitespace except a single space between two digits (so ``-2 3 5`` never becomes ``-235``)."""
    collapsed = re.sub(r"\s+", " ", text.strip())
    protected = re.sub(r"(?<=\d) (?=[\d.])", "\x00", collapsed)
    return protected.replace(" ", "").replace("\x00", " ")


def clean_answer(answer: str, squash: bool = True) -> str:
    """A canonical spelling of an answer, used for string comparison, number parsing and list splitting.

    Removes LaTeX spacing and sizing commands, ``$`` and ``%`` signs, degree marks, trailing unit words and
    ``\\text{}`` / ``\\textnormal{}`` / ``{ml}`` units, and thousands separators (``1,000``; never ``1, 000``, which
    is a list); writes relations one way (``>=``, ``\\ge`` and ``\\geq`` are ``\\geq``; ``!=`` is ``\\neq``;
    ``\\lt`` is ``<``); rewrites ``\\dfrac`` / ``\\tfrac`` and the ``\\frac12`` shorthand. With ``squash``
    whitespace is removed except between two digits; without it (the form handed to math-verify, where ``\\sin x``
    must not become ``\\sinx``) it is only collapsed.
    """
    text = strip_math_delimiters(answer)
    text = text.replace("\\\\", "\\") if re.search(r"\\\\[A-Za-z]", text) and "&" not in text else text
    text = _LATEX_THOUSANDS.sub(",", text)
    text = _LATEX_SPACING.sub(" ", text)
    text = text.replace("\\left", "").replace("\\right", "")
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    for pattern, replacement in _RELATIONS:
        text = pattern.sub(lambda _match, written=replacement: written, text)
    for mark in ("^{\\circ}", "^\\circ", "\\circ", "°", "\\%", "%", "\\$", "$"):
        text = text.replace(mark, "")
    text = _UNIT_GROUP_AT_END.sub("", text).strip()
    text = _BRACED_UNIT_AT_END.sub("", text).strip()
    text = _TEXT_WRAPPER.sub(r"\1", text).strip()
    unit_words = _UNIT_WORDS_AT_END.match(text)
    if unit_words and "\\" not in text[unit_words.end(1) :]:
        text = unit_words.group(1)
    text = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\sqrt(?:\{\})?\s*(\d|[A-Za-z](?![A-Za-z]))", r"\\sqrt{\1}", text)
    if not squash:
        return re.sub(r"\s+", " ", text).strip().rstrip(".")
    spaced_commas = bool(re.search(r",\s", text))
    text = text.replace("\\\\", "\\")
    text = _keep_digit_spaces_then_squash(text).rstrip(".")
    if _THOUSANDS.match(text) and not spaced_commas:
        text = text.replace(",", "")
    if text.startswith("+"):
        text = text[1:]
    return text


# -- numbers --------------------------------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_SCIENTIFIC = re.compile(
    r"^(?P<mantissa>[+-]?(?:\d+\.?\d*|\.\d+))\s*(?:\\times|\\cdot|\*|x|×)\s*10\s*\^\s*\{?\s*(?P<exp>[+-]?\d+)\s*\}?$"
)
_POWER_OF_TEN = re.compile(r"^(?P<sign>[+-]?)10\s*\^\s*\{?\s*(?P<exp>[+-]?\d+)\s*\}?$")
_LATEX_FRACTION = re.compile(r"^(?P<sign>[+-]?)\\frac\{(?P<num>[^{}]+)\}\{(?P<den>[^{}]+)\}$")
_SLASH_FRACTION = re.compile(r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))\s*/\s*(?P<den>[+-]?(?:\d+\.?\d*|\.\d+))$")
_SPACED_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^(?P<integer>[+-]?\d+),(?P<fraction>\d+)$")
_DECIMAL_LITERAL = re.compile(r"^[+-]?\d*\.(?P<decimals>\d+)$")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


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


def number_readings(cleaned: str) -> list[float]:
    """Every number a cleaned answer can mean: its plain value (:func:`parse_number`), digits grouped by spaces
    (``1 000``), and a decimal comma where the comma cannot separate thousands (``1,22``, ``1000,99``, ``0,111``;
    never ``1,000``). ``2,5`` reads as 2.5, so it is never 25; as a list it still reads as 2 and 5 (see
    :func:`split_answer_list`)."""
    value = parse_number(cleaned)
    if value is not None:
        return [value]
    if _SPACED_THOUSANDS.match(cleaned):
        grouped = parse_number(cleaned.replace(" ", ""))
        return [grouped] if grouped is not None else []
    comma = _DECIMAL_COMMA.match(cleaned)
    if comma:
        integer, fraction = comma.group("integer").lstrip("+-"), comma.group("fraction")
        if len(fraction) != 3 or len(integer) > 3 or integer == "0":
            decimal = parse_number(f"{comma.group('integer')}.{fraction}")
            return [decimal] if decimal is not None else []
    return []


def decimal_places(text: str) -> int | None:
    """Decimals of an answer written as a plain decimal literal (``7.03`` -> 2), else ``None``."""
    match = _DECIMAL_LITERAL.match(text.strip())
    return len(match.group("decimals")) if match else None


def rounds_to(value: float, rounded: float, decimals: int) -> bool:
    """Whether ``value`` rounds to ``rounded`` at ``decimals`` places (either way at an exact half)."""
    return abs(value - rounded) <= 0.5 * 10.0 ** (-decimals) * (1 + 1e-9)


# -- symbols --------------------------------------------------------------------------------------------------------

#: Greek-letter commands name variables in answers (``\\pi`` is a number and is not listed).
_GREEK_LETTERS = frozenset(
    (
        "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
        "kappa", "lambda", "mu", "nu", "xi", "rho", "varrho", "sigma", "tau", "upsilon", "phi", "varphi", "chi",
        "psi", "omega", "hbar", "ell",
    )
)  # fmt: skip


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


# -- labels and readings --------------------------------------------------------------------------------------------

_EQUALS = re.compile(r"(?<![<>!\\:])=(?!=)")
_APPROX = re.compile(r"\\approx|≈|\\simeq")
_LETTER_TUPLE = re.compile(r"^\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])+\s*\)$")
_SUBSCRIPT = re.compile(r"_\s*(?:\{[^{}]*\}|[A-Za-z0-9])")
_NAME_COMMANDS = re.compile(r"\\(?:angle|overline|overrightarrow|vec|mathrm|text|textnormal|operatorname|mid|vert)\b")
_FRACTION_OF_NAMES = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FUNCTION_ARGUMENT = re.compile(r"(?<=[A-Za-z])\(\s*[A-Za-z0-9]\s*\)")
_INDEXED = re.compile(r"^(?P<base>.*?)_\s*\{?\s*\d+\s*\}?$")


def is_label(text: str) -> bool:
    """Whether ``text`` names a quantity rather than computes one: ``x``, ``AB``, ``|AB|``, ``f(x)``, ``x_{1}``,
    ``A:B``, ``(p,q)``, ``\\frac{NO}{BO}``, ``\\angle ABC``; not ``2x+4y-3``, ``f(x+1)`` or a number."""
    candidate = text.strip().strip("$").strip()
    if not candidate or len(candidate) > 40:
        return False
    if _LETTER_TUPLE.match(candidate):
        return True
    candidate = _SUBSCRIPT.sub("", candidate)
    candidate = candidate.replace("^{\\prime}", "").replace("^\\prime", "").replace("'", "")
    candidate = _NAME_COMMANDS.sub("", candidate)
    candidate = _FRACTION_OF_NAMES.sub(r"\1:\2", candidate)
    candidate = _FUNCTION_ARGUMENT.sub("", candidate)
    candidate = re.sub(r"\\([A-Za-z]+)", lambda m: "a" if m.group(1).lower() in _GREEK_LETTERS else "#", candidate)
    candidate = re.sub(r"[|:{}\s]", "", candidate)
    return bool(re.fullmatch(r"[A-Za-z]{1,12}", candidate))


def split_label(item: str) -> tuple[str, str] | None:
    """``(label, value)`` for an item written ``label = value`` (``AB = 4``, ``x_{1}=10``), else ``None``."""
    parts = _EQUALS.split(item)
    if len(parts) != 2 or not parts[1].strip() or not is_label(parts[0]):
        return None
    return parts[0].strip(), parts[1].strip()


def answer_readings(answer: str) -> list[str]:
    """The ways one answer can be read, the answer itself first.

    ``x = 5`` also reads as ``5`` and ``f(x) = 1`` as ``1`` (a label is not part of the value); a chain of equalities
    ``z = 3 + 3 = 2`` reads as its last part; ``2\\sqrt{2} \\approx 2.83`` as either side of the approximation.
    An answer with several top-level values (``AB=4, CD=5``) is split into values by :func:`split_answer_list`, not
    here.
    """
    readings = [answer]
    text = strip_math_delimiters(answer)
    if not _has_top_level(text, ",;"):
        parts = [part.strip() for part in _split_top_level(text, "=")]
        if len(parts) == 2 and is_label(parts[0]) and parts[1]:
            readings.append(parts[1])
        elif len(parts) > 2 and parts[-1]:
            readings.append(parts[-1])
    sides = [side.strip() for side in _APPROX.split(readings[-1])]
    if len(sides) > 1:
        readings.extend(side for side in sides if side and not is_label(side))
    unique: list[str] = []
    for reading in readings:
        if reading not in unique:
            unique.append(reading)
    return unique


# -- lists ----------------------------------------------------------------------------------------------------------

_CONNECTOR_WORD = re.compile(r"(?<![A-Za-z\\])(?:and|or)(?![A-Za-z])")
#: Kinds of answer lists, and whether their order matters.
ORDERED_KINDS = frozenset({"tuple", "sequence", "named"})
MAX_LIST_ITEMS = 40


@dataclass(frozen=True)
class AnswerList:
    """An answer made of several values, and how they compare.

    ``kind`` is ``tuple`` (bracketed: a point, a vector, an ordered pair), ``sequence`` (numbers separated by
    spaces: ``12 3 0``), ``named`` (distinct labels: ``x=2, y=3``; ``labels`` holds them), all three compared in order;
    or ``set`` (braces ``\\{1, 2\\}``, several tuples ``(5,2),(7,2)``, one label repeated or indexed
    ``x_1=2, x_2=3``) and ``list`` (bare values separated by commas, semicolons, "and", "or": MATH's "enter all the
    solutions, separated by commas"), compared as sets.
    """

    items: tuple[str, ...]
    kind: str
    labels: tuple[str, ...] = ()

    @property
    def ordered(self) -> bool:
        return self.kind in ORDERED_KINDS


def _split_top_level(text: str, separators: str) -> list[str]:
    parts, depth, current = [], 0, []
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char in separators and depth == 0 and not (char == "=" and index > 0 and text[index - 1] in "<>!\\:"):
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _has_top_level(text: str, separators: str) -> bool:
    return len(_split_top_level(text, separators)) > 1


def _wraps_whole(text: str, opening: str, closing: str) -> bool:
    """True when ``text`` opens with ``opening`` and the bracket closes at its very end (``(1,2)``, not
    ``(1)+(2)``)."""
    if not (text.startswith(opening) and text.endswith(closing)) or len(text) < len(opening) + len(closing):
        return False
    depth = 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0 and index != len(text) - 1:
                return False
    return depth == 0


def _is_tuple(item: str) -> bool:
    return (_wraps_whole(item, "(", ")") or _wraps_whole(item, "[", "]")) and _has_top_level(item[1:-1], ",;")


def split_answer_list(cleaned: str) -> AnswerList | None:
    """Split a cleaned answer into its values when it holds more than one, else ``None``.

    ``(1,2)`` and ``[1,2]`` are tuples; ``\\{1,2\\}`` a set; ``1,2``, ``1;2``, ``1\\text{and}2`` bare lists;
    ``-2 3 5`` a sequence; ``(5,2),(7,2)`` a set of tuples; ``p=5,q=2;p=7,q=2`` a set of two named groups;
    ``AB=4,CD=5`` a named list. Intervals such as ``(0,1]`` are not lists (math-verify compares them).
    """
    text = _CONNECTOR_WORD.sub(",", cleaned).strip(",; ")
    kind = "list"
    if text.startswith("\\{") and text.endswith("\\}") and _wraps_whole(text[1:], "{", "}"):
        text, kind = text[2:-2].strip(), "set"
    elif _wraps_whole(text, "{", "}"):  # a LaTeX group, not a set: ``{1,3}`` is 1, 3 as written
        text = text[1:-1].strip()
    bracketed = kind != "set" and _is_tuple(text)
    inner = text[1:-1] if bracketed else text
    groups = _split_top_level(inner, ";")
    items = groups if len(groups) > 1 else _split_top_level(inner, ",")
    if len(items) < 2 and not bracketed:
        words = inner.split(" ")
        if len(words) >= 2 and all(parse_number(word) is not None for word in words):
            return AnswerList(items=tuple(words), kind="sequence")
    if len(items) < 2 or len(items) > MAX_LIST_ITEMS or any(not item for item in items):
        return None
    if bracketed:
        return AnswerList(items=tuple(items), kind="tuple")
    if kind == "list" and all(_is_tuple(item) for item in items):
        kind = "set"
    labelled = [split_label(item) for item in items]
    if all(pair is not None for pair in labelled):
        labels = tuple(pair[0] for pair in labelled if pair is not None)
        values = tuple(pair[1] for pair in labelled if pair is not None)
        bases = {_label_base(label) for label in labels}
        if len(set(labels)) == len(labels) and len(bases) == len(labels):
            return AnswerList(items=values, kind="named", labels=labels)
        if len(bases) == 1:
            return AnswerList(items=values, kind="set")
    return AnswerList(items=tuple(items), kind=kind)


def _label_base(label: str) -> str:
    """The variable an indexed label belongs to: ``x_{1}`` and ``x_2`` are both ``x``."""
    indexed = _INDEXED.match(label.replace(" ", ""))
    return indexed.group("base") if indexed else label.replace(" ", "")
