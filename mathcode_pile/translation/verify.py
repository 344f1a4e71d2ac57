"""Does a snippet's printed output match the result the model stated?

The printed value is the output's last non-empty line, or the whole output when that is one value (a multi-line
list). The stated result is LaTeX or text (``\\frac{3}{4}``, ``2\\sqrt{2} \\approx 2.83``, ``25%``, ``$12``); the
printed value is usually Python's or sympy's notation (``0.75``, ``2*sqrt(2)``, ``(1, 2)``, ``Interval.Ropen(1, 3)``,
``np.float64(0.25)``). That notation is read by a small AST walker that only builds sympy objects (never ``eval``:
the text comes from untrusted code) and written as LaTeX. A line of text verifies only when it has the form of a value:
``x = 5``, ``Total: 17``, ``The answer is 17``, ``60 km/h``. A line of prose that happens to hold one number (a file
path, ``Step 1 done``, ``Error at index 0``) is no value (reason ``no_value``): its number says nothing about the
result. The comparison itself is the project's one grader, :func:`evaluation.grading.answers_match` (exact spelling,
numbers with relative + absolute tolerance, tuples and lists, then math-verify for fractions, radicals, intervals,
sets and matrices), with this module's tolerances. Two rules are added for stated results, which are often rounded:
a value that rounds to a result stated with k decimals matches (``0.3333`` for 1/3, ``3.14`` for pi), and ``25%``
also reads as 0.25.

The printed text and the stated result are untrusted, so verification is bounded. The output is read from its last
:data:`MAX_OUTPUT_CHARS` characters and the value from at most :data:`MAX_VALUE_CHARS`; the AST walker refuses
integers of more than :data:`evaluation.text_bounds.MAX_INTEGER_DIGITS` digits, and powers, factorials and binomials
whose value would exceed them, before computing anything (``factorial(5000)``, ``binomial(10**7, 5*10**6)``); all
parsing and comparison runs in a judging process (:mod:`evaluation.judge`) that is killed after
:data:`VERIFY_TIMEOUT_S` seconds. A pair that cannot be judged is not verified, with reason
``verify_error: <why>``: :func:`verify_printed_output` never raises on the text it is given, and works in any thread.
"""

from __future__ import annotations

import ast
import cmath
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from evaluation.answer_forms import clean_answer, parse_number, rounds_to, split_answer_list
from evaluation.judge import JudgeError, judged, run_judged
from evaluation.text_bounds import (
    MAX_FACTORIAL_ARGUMENT,
    MAX_INTEGER_DIGITS,
    binomial_digits,
    integer_digits_estimate,
)

logger = logging.getLogger(__name__)

#: Verification outcomes: the part of ``reason`` before any ``:`` (``match: numeric``, ``match: math_verify``,
#: ``match: rounded`` say how a match was found; ``verify_error: <why>`` a pair that could not be judged).
VERIFY_REASONS = ("match", "empty_output", "no_stated_result", "no_value", "mismatch", "verify_error")
#: The end of a snippet's output that is read (the value is on its last lines).
MAX_OUTPUT_CHARS = 65_536
MAX_VALUE_CHARS = 2000
#: Longest stated result that is read.
MAX_STATED_CHARS = 2000
MAX_AST_NODES = 400
#: Seconds one verification may take in the judging process before it is killed (``verify_error``).
VERIFY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class VerificationSettings:
    """How strictly a printed value must match the stated result."""

    rel_tol: float = 1e-4
    abs_tol: float = 1e-6
    #: accept a printed value that rounds to the stated one when the result is a decimal (``3.14`` for pi)
    match_rounded_decimals: bool = True

    def __post_init__(self) -> None:
        if self.rel_tol < 0 or self.abs_tol < 0:
            raise ValueError("rel_tol and abs_tol must be >= 0")


@dataclass(frozen=True)
class Verdict:
    verified: bool
    reason: str
    #: the printed value that was compared
    value: str = ""


# -- the printed value ----------------------------------------------------------------------------------------------


def _parses_as_one_value(text: str) -> bool:
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return isinstance(tree.body, ast.List | ast.Tuple | ast.Set | ast.Dict | ast.Call)


def extract_printed_value(output: str) -> str | None:
    """The value a snippet printed: the whole output when it is one (multi-line) value, else its last non-empty
    line. Only the last :data:`MAX_OUTPUT_CHARS` characters are read."""
    stripped = output[-MAX_OUTPUT_CHARS:].strip()
    if not stripped:
        return None
    if "\n" in stripped and len(stripped) <= MAX_VALUE_CHARS and _parses_as_one_value(stripped):
        return " ".join(line.strip() for line in stripped.splitlines())
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    return lines[-1]


class UnsupportedValueError(ValueError):
    """Printed text outside the notation :func:`python_value_to_sympy` reads."""


class OversizedValueError(UnsupportedValueError):
    """A value too large to build safely (``10**10**10``, ``factorial(5000)``): refused before it is computed."""


_CONSTANTS = {"pi": "pi", "E": "E", "e": "E", "I": "I", "oo": "oo", "inf": "oo", "infinity": "oo", "nan": "nan"}
_FUNCTIONS = {
    "sqrt": "sqrt",
    "cbrt": "cbrt",
    "root": "root",
    "exp": "exp",
    "log": "log",
    "ln": "log",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "asin": "asin",
    "acos": "acos",
    "atan": "atan",
    "Abs": "Abs",
    "abs": "Abs",
    "factorial": "factorial",
    "binomial": "binomial",
    "Rational": "Rational",
    "Fraction": "Rational",
    "Integer": "Integer",
    "Float": "Float",
    "float": "Float",
    "int": "Integer",
    "Matrix": "Matrix",
    "Tuple": "Tuple",
    "FiniteSet": "FiniteSet",
    "Interval": "Interval",
}
_INTERVAL_KINDS = {"open", "Lopen", "Ropen"}
_NUMPY_SCALARS = re.compile(r"^(?:float|int|uint|complex)(?:8|16|32|64|128)?_?$")


def _log10_magnitude(value: Any) -> float:
    """log10 of ``|value|`` for a sympy number, without computing anything large (``inf`` when it is huge)."""
    import sympy

    if isinstance(value, sympy.Integer):
        return (
            math.log10(abs(int(value)))
            if integer_digits_estimate(int(value)) < 300
            else float(integer_digits_estimate(int(value)))
        )
    if isinstance(value, sympy.Rational):
        return _log10_magnitude(sympy.Integer(value.p)) - _log10_magnitude(sympy.Integer(value.q))
    try:
        magnitude = float(abs(complex(sympy.N(value, 15))))
    except (TypeError, ValueError, OverflowError):
        return math.inf
    return math.log10(magnitude) if magnitude > 0 else -math.inf


def _check_power(base: Any, exponent: Any) -> None:
    """Refuse ``base ** exponent`` when its magnitude would pass 10^MAX_INTEGER_DIGITS (or 10^-MAX_INTEGER_DIGITS)."""
    if not (base.is_number and exponent.is_number):
        return
    try:
        size = abs(complex(exponent))
    except (TypeError, ValueError, OverflowError):
        raise OversizedValueError("power with an exponent that cannot be bounded") from None
    magnitude = abs(_log10_magnitude(base))
    if magnitude in (math.inf,) or size * magnitude > MAX_INTEGER_DIGITS:
        raise OversizedValueError(f"power with more than {MAX_INTEGER_DIGITS} digits")


def _check_call(name: str, args: list[Any]) -> None:
    """Refuse factorials and binomials of numbers whose value would exceed the digit bound."""
    if (
        name == "factorial"
        and args
        and args[0].is_number
        and _log10_magnitude(args[0]) > math.log10(MAX_FACTORIAL_ARGUMENT)
    ):
        raise OversizedValueError(
            f"factorial argument {_short(args[0])} exceeds {MAX_FACTORIAL_ARGUMENT} "
            f"(its value would pass {MAX_INTEGER_DIGITS} digits)"
        )
    if name == "binomial" and len(args) == 2 and all(arg.is_number for arg in args):
        if any(_log10_magnitude(arg) > 12 for arg in args):
            raise OversizedValueError("binomial of a number above 10^12")
        n, k = (complex(arg).real for arg in args)
        if binomial_digits(abs(n), abs(k)) > MAX_INTEGER_DIGITS:
            raise OversizedValueError(
                f"binomial({_short(args[0])}, {_short(args[1])}) would pass {MAX_INTEGER_DIGITS} digits"
            )


def _short(value: Any) -> str:
    """A number for a message (an integer too long to print is not printed)."""
    return str(value)[:40] if _log10_magnitude(value) < 40 else "a number above 10^40"


def _check_size(value: Any) -> Any:
    """Refuse an exact number (integer or fraction) with more than MAX_INTEGER_DIGITS digits."""
    import sympy

    if isinstance(value, sympy.Rational):
        for part in (value.p, value.q):
            if integer_digits_estimate(int(part)) > MAX_INTEGER_DIGITS:
                raise OversizedValueError(f"a number of more than {MAX_INTEGER_DIGITS} digits")
    return value


def python_value_to_sympy(text: str) -> Any:
    """A sympy object for Python / sympy printed notation, built node by node from the AST (no ``eval``).

    Raises ``ValueError`` for anything outside numbers, names, arithmetic, containers and a whitelist of functions,
    and :class:`OversizedValueError` for a value too large to build safely (checked before it is computed).
    """
    import sympy

    if len(text) > MAX_VALUE_CHARS:
        raise OversizedValueError("value too long")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (RecursionError, MemoryError) as exc:
        raise OversizedValueError("value nested too deeply") from exc
    if sum(1 for _ in ast.walk(tree)) > MAX_AST_NODES:
        raise OversizedValueError("value too complex")

    def build(node: ast.AST) -> Any:
        return _check_size(build_node(node))

    def build_node(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float | complex):
                raise UnsupportedValueError("not a number")
            if isinstance(node.value, complex):
                return sympy.Float(node.value.real) + sympy.I * sympy.Float(node.value.imag)
            if isinstance(node.value, int) and integer_digits_estimate(node.value) > MAX_INTEGER_DIGITS:
                raise OversizedValueError(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
            return sympy.Integer(node.value) if isinstance(node.value, int) else sympy.Float(repr(node.value))
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return getattr(sympy, _CONSTANTS[node.id])
            return sympy.Symbol(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = build(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            left, right = build(node.left), build(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                return left / right
            if isinstance(node.op, ast.Pow):
                _check_power(left, right)
                return left**right
            raise UnsupportedValueError("operator")
        if isinstance(node, ast.Tuple | ast.List):
            return sympy.Tuple(*(build(item) for item in node.elts))
        if isinstance(node, ast.Set):
            return sympy.FiniteSet(*(build(item) for item in node.elts))
        if isinstance(node, ast.Call) and not node.keywords:
            return build_call(node)
        raise UnsupportedValueError(type(node).__name__)

    def build_call(node: ast.Call) -> Any:
        function = node.func
        # np.float64(0.75), numpy.int64(3): numpy 2's repr of scalars
        if isinstance(function, ast.Attribute) and _NUMPY_SCALARS.match(function.attr) and len(node.args) == 1:
            return build(node.args[0])
        if (
            isinstance(function, ast.Attribute)
            and function.attr in _INTERVAL_KINDS
            and isinstance(function.value, ast.Name)
            and function.value.id == "Interval"
        ):
            return getattr(sympy.Interval, function.attr)(*(build(a) for a in node.args))
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
            function = ast.Name(function.attr)  # math.sqrt, sympy.Rational, sp.pi ...
        if not isinstance(function, ast.Name) or function.id not in _FUNCTIONS:
            raise UnsupportedValueError("function")
        name = _FUNCTIONS[function.id]
        if name == "Matrix":
            rows = build(node.args[0]) if len(node.args) == 1 else None
            if rows is None:
                raise UnsupportedValueError("matrix")
            return sympy.Matrix([list(row) if isinstance(row, sympy.Tuple) else [row] for row in rows])
        args = [build(a) for a in node.args]
        _check_call(name, args)
        if name == "Float":
            return sympy.Float(args[0]) if args else sympy.Float(0)
        if name == "Integer":
            if args and args[0].is_number and abs(_log10_magnitude(args[0])) > MAX_INTEGER_DIGITS:
                raise OversizedValueError(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
            return sympy.Integer(int(args[0])) if args else sympy.Integer(0)
        if name == "Rational" and len(args) == 2:
            return sympy.Rational(args[0], args[1])
        return getattr(sympy, name)(*args)

    try:
        return build(tree.body)
    except (TypeError, AttributeError, ZeroDivisionError, OverflowError, RecursionError) as exc:
        raise UnsupportedValueError(str(exc)[:200]) from exc


# -- a line of text -------------------------------------------------------------------------------------------------

#: "x = 5", "Total: 17", "The answer is 17": a label of words, a connector, then the value.
_LABELLED_VALUE = re.compile(
    r"^(?P<label>[A-Za-z][\w ()',\-]{0,60}?)\s*(?:=|:|\bis\b|\bare\b|\bequals\b|\bwas\b|\bwere\b)\s*(?P<value>\S.*)$"
)
#: A number with up to three unit tokens after it: "60", "-3.5 km/h", "$12", "25%", "1,000 apples".
_NUMBER_WITH_UNITS = re.compile(
    r"^(?P<number>[-+]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?\s*%?)"
    r"(?:\s*[A-Za-z][A-Za-z/^.\d]*){0,3}$"
)


def _is_value(text: str) -> bool:
    """Whether ``text`` is a value: Python / sympy notation, a number with units, or a LaTeX expression."""
    try:
        python_value_to_sympy(text)
        return True
    except OversizedValueError:
        return True  # a value, too large to read: the caller reports it
    except (SyntaxError, ValueError):
        pass
    if _NUMBER_WITH_UNITS.match(text):
        return True
    if "\\" in text or "$" in text:
        words = re.findall(r"(?<![\\A-Za-z])[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", " ", text))
        return len(words) <= 1
    return False


def printed_text_value(line: str) -> str | None:
    """The value a printed line states, or ``None`` for prose: the line itself when it is a value, else the value
    after a label (``x = 5``, ``Total: 17``, ``The answer is 17``, ``The speed is 60 km/h``)."""
    line = line.strip().rstrip(".").strip()
    if not line:
        return None
    if _is_value(line):
        return line
    labelled = _LABELLED_VALUE.match(line)
    if labelled and _is_value(labelled.group("value").strip().rstrip(".")):
        return labelled.group("value").strip().rstrip(".")
    return None


# -- the stated result ----------------------------------------------------------------------------------------------

_EQUALS = re.compile(r"(?<![<>!\\])=")
_APPROX = re.compile(r"\\approx|≈|\\simeq|~")


_NUMBER_WITH_UNIT = re.compile(r"^\s*(?P<number>-?\$?\s?\d[\d,]*(?:\.\d+)?)\s*(?:\\?[a-zA-Z][\w/^ ]*)?\s*$")


def stated_result_candidates(result: str) -> list[str]:
    """Readings of a stated result: after the last ``=``, each side of ``≈`` (``2\\sqrt{2} \\approx 2.83``).
    A result longer than :data:`MAX_STATED_CHARS` has none."""
    text = result.strip().strip(".").strip()
    if not text or len(text) > MAX_STATED_CHARS:
        return []
    text = re.sub(r"^\$+|\$+$", "", text).strip() if text.count("$") == 2 and text.startswith("$") else text
    text = _EQUALS.split(text)[-1].strip()
    readings = [part.strip() for part in _APPROX.split(text) if part.strip()]
    # "60 km/h", "12 apples": the number alone is a reading too
    bare = [m.group("number") for m in map(_NUMBER_WITH_UNIT.match, readings) if m and m.group("number") != m.string]
    return readings + [number for number in bare if number not in readings]


def _numbers(value: Any) -> list[complex] | None:
    """Numeric content of a sympy value (a number, or a flat container of numbers), else None."""
    import sympy

    items = list(value) if isinstance(value, sympy.Tuple | sympy.FiniteSet | sympy.MatrixBase) else [value]
    numbers = []
    for item in items:
        if not isinstance(item, sympy.Basic) or not item.is_number:
            return None
        try:
            numbers.append(complex(sympy.N(item, 30)))
        except (TypeError, ValueError, OverflowError):
            return None
    return numbers


def _stated_numbers(reading: str) -> list[float] | None:
    """The number(s) a stated reading holds (``2.83``, ``(29.33, 9.64)``, ``\\frac{3}{4}``), else None."""
    parts = split_answer_list(clean_answer(reading, squash=False))
    items = [clean_answer(item) for item in parts.items] if parts is not None else [clean_answer(reading)]
    numbers = [parse_number(item) for item in items]
    return None if any(n is None for n in numbers) else [float(n) for n in numbers if n is not None]


def _decimals(text: str) -> int | None:
    """Decimals a stated result was rounded to: ``2.83`` -> 2, ``(29.33, 9.6)`` -> 1; None unless every number in
    it is a decimal literal and nothing else is there."""
    if not re.fullmatch(r"[\s$%()\[\],;\d.+-]*", text):
        return None
    numbers = re.findall(r"\d+(?:\.(\d+))?", text)
    if not numbers or any(not decimals for decimals in numbers):
        return None
    return min(len(decimals) for decimals in numbers)


def _rounded_or_percent_match(predicted: list[complex], reading: str, settings: VerificationSettings) -> str | None:
    """The two rules the grader does not know: rounding to the stated decimals (``rounded``), and ``25%`` read as
    0.25 (``percent``); returns the rule that matched, or None."""
    stated = _stated_numbers(reading)
    if stated is None or len(stated) != len(predicted):
        return None
    decimals = _decimals(reading) if settings.match_rounded_decimals else None
    variants = [("rounded", stated)] + ([("percent", [s / 100 for s in stated])] if "%" in reading else [])
    for rule, variant in variants:
        if all(
            cmath.isclose(p, s, rel_tol=settings.rel_tol, abs_tol=settings.abs_tol)
            or (decimals is not None and p.imag == 0 and rounds_to(p.real, s, decimals))
            for p, s in zip(predicted, variant, strict=True)
        ):
            return rule
    return None


def _predictions(value: str) -> tuple[list[str], list[complex] | None]:
    """Spellings of the printed value for the grader, and its numbers (for the extra rules); raises
    :class:`OversizedValueError` for a value too large to build and returns ``([], None)`` for prose."""
    import sympy

    try:
        python_value = python_value_to_sympy(value)
    except OversizedValueError:
        raise
    except (SyntaxError, ValueError):
        python_value = None
    if python_value is not None:
        # a Python value is compared as a whole: (29.3, 9.64) must not match 9.64 through its last number
        try:
            spellings = [sympy.latex(python_value)]
        except Exception:  # sympy's printer fails on exotic objects; its plain form is still comparable
            spellings = [str(python_value)]
        return spellings, _numbers(python_value)
    text_value = printed_text_value(value)
    if text_value is None:
        return [], None
    if text_value != value:
        return _predictions(text_value)
    spellings = [text_value]
    with_units = _NUMBER_WITH_UNITS.match(text_value)
    if with_units and with_units.group("number") != text_value:
        spellings.append(with_units.group("number"))  # "60 km/h" is the number 60 in km/h
    number = parse_number(clean_answer(spellings[-1]))
    return spellings, None if number is None else [complex(number)]


@judged
def judge_printed_value(value: str, readings: list[str], rel_tol: float, abs_tol: float, rounded: bool) -> list[Any]:
    """``[verified, reason]`` for one printed value against the stated readings (runs in the judging process)."""
    from evaluation.grading import answers_match

    settings = VerificationSettings(rel_tol=rel_tol, abs_tol=abs_tol, match_rounded_decimals=rounded)
    try:
        spellings, numbers = _predictions(value)
    except OversizedValueError as exc:
        return [False, f"verify_error: {exc}"]
    if not spellings:
        return [False, "no_value"]
    for reading in readings:
        for spelling in spellings:
            try:
                matched, how = answers_match(
                    spelling,
                    reading,
                    rel_tol=settings.rel_tol,
                    abs_tol=settings.abs_tol,
                    match_rounded=settings.match_rounded_decimals,
                )
            except ValueError:  # e.g. a stated result the grader reads as an option letter
                continue
            if matched:
                return [True, f"match: {how}"]
        rule = _rounded_or_percent_match(numbers, reading, settings) if numbers else None
        if rule is not None:
            return [True, f"match: {rule}"]
    return [False, "mismatch"]


def verify_printed_output(output: str, stated_result: str, settings: VerificationSettings | None = None) -> Verdict:
    """Compare a snippet's printed output with the model's stated result. Never raises on the text given: a pair
    that cannot be judged is ``Verdict(False, "verify_error: <why>")``."""
    settings = settings or VerificationSettings()
    value = extract_printed_value(output)
    if value is None:
        return Verdict(False, "empty_output")
    readings = stated_result_candidates(stated_result)
    if not readings:
        return Verdict(False, "no_stated_result", value)
    if len(value) > MAX_VALUE_CHARS:
        too_long = f"printed value of {len(value)} characters exceeds {MAX_VALUE_CHARS}"
        return Verdict(False, f"verify_error: {too_long}", value)
    try:
        verified, reason = run_judged(
            judge_printed_value,
            value,
            readings,
            settings.rel_tol,
            settings.abs_tol,
            settings.match_rounded_decimals,
            timeout_s=VERIFY_TIMEOUT_S,
        )
    except JudgeError as exc:
        logger.warning("could not judge printed value %r against %r: %s", value[:80], stated_result[:80], exc.reason)
        return Verdict(False, f"verify_error: {exc.reason}", value)
    return Verdict(bool(verified), str(reason), value)
