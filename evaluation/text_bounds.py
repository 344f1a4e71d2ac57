"""Bounds on untrusted math text before any parser turns it into numbers.

Model answers, printed snippet output and stated results are untrusted: ``10^{10^{10}}``, ``9999999!`` or
``\\binom{10^7}{5 \\cdot 10^6}`` are a few characters that make sympy (through math-verify's LaTeX parser or our own
reader of Python notation) compute numbers with millions of digits, inside C code that no Python-level timeout can
interrupt. These checks look at the text only (no parsing, linear time) and name the first bound a text breaks, so the
caller can refuse it cheaply. They are a first line: the parsers still run in a judging process that is killed when it
overruns its time (:mod:`evaluation.judge`).

The limits are far above what a real answer needs: the largest integers in MATH / OCW answers have a few dozen
digits, and Python refuses to print an integer of more than 4,300 digits anyway.
"""

from __future__ import annotations

import math
import re

#: Longest answer (characters) handed to a symbolic parser; longer text is compared by spelling only.
MAX_SYMBOLIC_CHARS = 2000
#: Most digits of an integer literal, and of an integer any bounded operation may produce.
MAX_INTEGER_DIGITS = 1000
#: Largest literal exponent of a power.
MAX_EXPONENT = 10_000
#: Largest argument of a factorial (``449!`` has 997 digits).
MAX_FACTORIAL_ARGUMENT = 449
#: Most terms of a written-out sum or product (``\\sum_{k=1}^{1000}``); sympy adds them one by one.
MAX_SERIES_TERMS = 1000

_DIGIT_RUN = re.compile(r"\d+")
_POWER = re.compile(r"\^|\*\*")
_FACTORIAL = re.compile(r"(\d+)\s*!(?!=)|[)}\]]\s*!(?!=)")
_BINOMIAL = re.compile(r"\\[dt]?binom\s*\{([^{}]*)\}\s*\{([^{}]*)\}|\{([^{}]*)\\choose([^{}]*)\}")
_NUMBER_LITERAL = re.compile(r"^\s*\d+\s*$")
#: A power or factorial of a number inside an exponent: ``10^{10^{10}}``, ``2^{(5!)}`` (``e^{x^2}`` is fine).
_NUMERIC_POWER = re.compile(r"(?<![A-Za-z_\\])\d+\s*[)}]?\s*(?:\^|\*\*)\s*[{(]?\s*[+-]?\d")
_NUMERIC_FACTORIAL = re.compile(r"\d\s*[)}]?\s*!(?!=)")
_SERIES = re.compile(r"\\(?:sum|prod)\s*_")


def integer_digits_estimate(value: int) -> int:
    """Decimal digits of ``value`` from its bit length (never converts it to text)."""
    return int(abs(value).bit_length() * math.log10(2)) + 1


def factorial_digits(n: float) -> float:
    """Decimal digits of ``n!`` (from ``lgamma``; exact enough to compare with a bound)."""
    return math.lgamma(n + 1) / math.log(10) if n > 1 else 1.0


def binomial_digits(n: float, k: float) -> float:
    """Decimal digits of ``C(n, k)`` for ``0 <= k <= n``."""
    if k < 0 or k > n:
        return 1.0
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(10) + 1


def power_digits(base: float, exponent: float) -> float:
    """Decimal digits of ``base ** exponent`` for a real base and exponent (0 for a result below 1)."""
    magnitude = abs(base)
    if magnitude in (0.0, 1.0):
        return 1.0
    return max(0.0, exponent * math.log10(magnitude)) + 1


def _chained_power(text: str, start: int) -> bool:
    """Whether the power whose exponent starts at ``start`` is followed by another power of numbers without braces
    (``2**3**4**5``, which Python reads as ``2**(3**(4**5))``)."""
    token = re.match(r"\s*[+-]?\d+\s*(?:\^|\*\*)\s*[+-]?\d", text[start:])
    return token is not None


def _exponent_text(text: str, start: int) -> str:
    """The exponent written right after a ``^`` / ``**`` ending at ``start``: a braced group, a parenthesized group,
    or one number or letter."""
    rest = text[start:].lstrip()
    if not rest:
        return ""
    opening = rest[0]
    if opening in "{(":
        closing = "}" if opening == "{" else ")"
        depth = 0
        for index, char in enumerate(rest):
            depth += (char == opening) - (char == closing)
            if depth == 0:
                return rest[1:index]
        return rest[1:]
    match = re.match(r"[+-]?\d+|\\?[A-Za-z]+", rest)
    return match.group(0) if match else rest[:1]


def math_text_problem(text: str, max_chars: int = MAX_SYMBOLIC_CHARS) -> str | None:
    """Why ``text`` must not reach a symbolic parser, or ``None`` when it is within every bound.

    Refused: text longer than ``max_chars``; an integer literal of more than :data:`MAX_INTEGER_DIGITS` digits; a
    power whose literal exponent exceeds :data:`MAX_EXPONENT` or holds another power or a factorial of numbers
    (``10^{10^{10}}``, ``2**3**4**5``); a factorial of a number above :data:`MAX_FACTORIAL_ARGUMENT`, or of a
    bracketed expression holding a power or a long number (``(10^7)!``); a binomial whose value would exceed
    :data:`MAX_INTEGER_DIGITS` digits or whose arguments hold powers.
    """
    if len(text) > max_chars:
        return f"text of {len(text)} characters exceeds {max_chars}"
    longest = max((len(run) for run in _DIGIT_RUN.findall(text)), default=0)
    if longest > MAX_INTEGER_DIGITS:
        return f"an integer of {longest} digits exceeds {MAX_INTEGER_DIGITS}"
    for match in _POWER.finditer(text):
        exponent = _exponent_text(text, match.end())
        if _NUMERIC_POWER.search(exponent) or _NUMERIC_FACTORIAL.search(exponent) or _chained_power(text, match.end()):
            return f"nested power of numbers in exponent '{exponent[:40]}'"
        for run in _DIGIT_RUN.findall(exponent):
            if len(run) > 6 or int(run) > MAX_EXPONENT:
                return f"exponent {run[:20]} exceeds {MAX_EXPONENT}"
    for match in _FACTORIAL.finditer(text):
        argument = match.group(1)
        if argument is not None and (len(argument) > 6 or int(argument) > MAX_FACTORIAL_ARGUMENT):
            return f"factorial of {argument[:20]} exceeds {MAX_FACTORIAL_ARGUMENT}!"
        if argument is None and _bracketed_factorial_is_large(text, match.start()):
            return "factorial of a bracketed expression holding a power or a large number"
    for match in _SERIES.finditer(text):
        problem = _series_problem(text, match.end())
        if problem:
            return problem
    for match in _BINOMIAL.finditer(text):
        upper = match.group(1) if match.group(1) is not None else match.group(3)
        lower = match.group(2) if match.group(2) is not None else match.group(4)
        problem = _binomial_problem(upper, lower)
        if problem:
            return problem
    return None


def _bracketed_factorial_is_large(text: str, closing_at: int) -> bool:
    """Whether the bracketed group that ends at ``closing_at`` (just before a ``!``) holds a power or a number above
    the factorial bound: ``(10^7)!`` is, ``(n+1)!`` and ``(2n)!`` are not."""
    closing = text[closing_at]
    opening = {")": "(", "}": "{", "]": "["}[closing]
    depth = 0
    for index in range(closing_at, -1, -1):
        depth += (text[index] == closing) - (text[index] == opening)
        if depth == 0:
            group = text[index + 1 : closing_at]
            break
    else:
        group = text[:closing_at]
    if _POWER.search(group) and _DIGIT_RUN.search(group):
        return True
    return any(len(run) > 6 or int(run) > MAX_FACTORIAL_ARGUMENT for run in _DIGIT_RUN.findall(group))


def _binomial_problem(upper: str, lower: str) -> str | None:
    if _POWER.search(upper + lower) and _DIGIT_RUN.search(upper + lower):
        return "binomial with a power of numbers in its arguments"
    if _NUMBER_LITERAL.match(upper) and _NUMBER_LITERAL.match(lower):
        if max(len(upper.strip()), len(lower.strip())) > 12:
            return "binomial argument of more than 12 digits"
        n, k = int(upper), int(lower)
        if binomial_digits(n, k) > MAX_INTEGER_DIGITS:
            return f"binomial C({n}, {k}) exceeds {MAX_INTEGER_DIGITS} digits"
    return None


def _series_problem(text: str, after_subscript: int) -> str | None:
    """A ``\\sum`` / ``\\prod`` whose upper limit is a number above :data:`MAX_SERIES_TERMS` or holds a power."""
    lower = _exponent_text(text, after_subscript)
    rest = text[after_subscript:].lstrip()
    rest = rest[len(lower) + 2 :] if rest.startswith("{") else rest[len(lower) :]
    if not rest.lstrip().startswith("^"):
        return None
    upper = _exponent_text(rest, rest.index("^") + 1)
    if _POWER.search(upper) and _DIGIT_RUN.search(upper):
        return f"sum or product up to '{upper[:40]}'"
    runs = _DIGIT_RUN.findall(upper)
    if any(len(run) > 6 or int(run) > MAX_SERIES_TERMS for run in runs):
        return f"sum or product of more than {MAX_SERIES_TERMS} terms"
    return None
