"""Does a snippet's printed output match the result the model stated?

The printed value is the output's last non-empty line, or the whole output when that is one value (a multi-line
list). The stated result is LaTeX or text (``\\frac{3}{4}``, ``2\\sqrt{2} \\approx 2.83``, ``25%``, ``$12``); the
printed value is usually Python's or sympy's notation (``0.75``, ``2*sqrt(2)``, ``(1, 2)``, ``Interval.Ropen(1, 3)``,
``np.float64(0.25)``). That notation is read by a small AST walker that only builds sympy objects (never ``eval``:
the text comes from untrusted code) and written as LaTeX; text output (``The speed is 60 km/h``) gives its answer the
way the evaluation grader finds one. The comparison itself is the project's one grader,
:func:`evaluation.grading.answers_match` (exact spelling, numbers with relative + absolute tolerance, tuples and lists,
then math-verify for fractions, radicals, intervals, sets and matrices), with this module's tolerances. Two rules are
added for stated results, which are often rounded: a value that rounds to a result stated with k decimals matches
(``0.3333`` for 1/3, ``3.14`` for pi), and ``25%`` also reads as 0.25.

math-verify bounds its work with ``signal.alarm``, which only works in a process's main thread: call this from a
main thread (the stages and ``mathcode-pile verify`` do).
"""

from __future__ import annotations

import ast
import cmath
import logging
import re
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Verification outcomes: the part of ``reason`` before any ``:`` (``match: numeric``, ``match: math_verify``,
#: ``match: rounded`` say how a match was found).
VERIFY_REASONS = ("match", "empty_output", "no_stated_result", "mismatch")
MAX_VALUE_CHARS = 2000
MAX_AST_NODES = 400
MAX_EXPONENT = 1000
MAX_POWER_BASE = 10**100


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
    except (SyntaxError, ValueError):
        return False
    return isinstance(tree.body, ast.List | ast.Tuple | ast.Set | ast.Dict | ast.Call)


def extract_printed_value(output: str) -> str | None:
    """The value a snippet printed: the whole output when it is one (multi-line) value, else its last non-empty
    line."""
    stripped = output.strip()
    if not stripped:
        return None
    if "\n" in stripped and len(stripped) <= MAX_VALUE_CHARS and _parses_as_one_value(stripped):
        return " ".join(line.strip() for line in stripped.splitlines())
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    return lines[-1]


class UnsupportedValueError(ValueError):
    """Printed text outside the notation :func:`python_value_to_sympy` reads."""


class OversizedValueError(UnsupportedValueError):
    """A value too large to build safely (``10**10**10``): not handed to any other parser either."""


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


def python_value_to_sympy(text: str) -> Any:
    """A sympy object for Python / sympy printed notation, built node by node from the AST (no ``eval``).

    Raises ``ValueError`` for anything outside numbers, names, arithmetic, containers and a whitelist of functions.
    """
    import sympy

    if len(text) > MAX_VALUE_CHARS:
        raise OversizedValueError("value too long")
    tree = ast.parse(text.strip(), mode="eval")
    if sum(1 for _ in ast.walk(tree)) > MAX_AST_NODES:
        raise OversizedValueError("value too complex")

    def build(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float | complex):
                raise UnsupportedValueError("not a number")
            if isinstance(node.value, complex):
                return sympy.Float(node.value.real) + sympy.I * sympy.Float(node.value.imag)
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
                if right.is_number and (
                    abs(complex(right)) > MAX_EXPONENT or (left.is_number and bool(abs(left) > MAX_POWER_BASE))
                ):
                    raise OversizedValueError("power too large")
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
        if name == "Float":
            return sympy.Float(args[0]) if args else sympy.Float(0)
        if name == "Integer":
            return sympy.Integer(int(args[0])) if args else sympy.Integer(0)
        if name == "Rational" and len(args) == 2:
            return sympy.Rational(args[0], args[1])
        return getattr(sympy, name)(*args)

    try:
        return build(tree.body)
    except (TypeError, AttributeError, ZeroDivisionError, OverflowError, RecursionError) as exc:
        raise UnsupportedValueError(str(exc)) from exc


# -- the stated result ----------------------------------------------------------------------------------------------

_EQUALS = re.compile(r"(?<![<>!\\])=")
_APPROX = re.compile(r"\\approx|≈|\\simeq|~")


_NUMBER_WITH_UNIT = re.compile(r"^\s*(?P<number>-?\$?\s?\d[\d,]*(?:\.\d+)?)\s*(?:\\?[a-zA-Z][\w/^ ]*)?\s*$")


def stated_result_candidates(result: str) -> list[str]:
    """Readings of a stated result: after the last ``=``, each side of ``≈`` (``2\\sqrt{2} \\approx 2.83``)."""
    text = result.strip().strip(".").strip()
    if not text:
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
        except (TypeError, ValueError):
            return None
    return numbers


def _stated_numbers(reading: str) -> list[float] | None:
    """The number(s) a stated reading holds (``2.83``, ``(29.33, 9.64)``, ``\\frac{3}{4}``), else None."""
    from evaluation.answers import clean_answer, parse_number, split_answer_list

    cleaned = clean_answer(reading)
    parts = split_answer_list(cleaned)
    items = list(parts.items) if parts is not None else [cleaned]
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
            or (decimals is not None and abs(p - s) <= 0.5 * 10.0 ** (-decimals) * (1 + 1e-9))
            for p, s in zip(predicted, variant, strict=True)
        ):
            return rule
    return None


def _predictions(value: str) -> tuple[list[str], list[complex] | None]:
    """Spellings of the printed value for the grader, and its numbers (for the extra rules); ``([], None)`` for a
    value too large to touch."""
    import sympy

    from evaluation.answers import clean_answer, parse_number
    from evaluation.grading import extract_answer

    try:
        python_value = python_value_to_sympy(value)
    except OversizedValueError:
        return [], None
    except (SyntaxError, ValueError):
        python_value = None
    if python_value is not None:
        # a Python value is compared as a whole: (29.3, 9.64) must not match 9.64 through its last number
        try:
            spellings = [sympy.latex(python_value)]
        except Exception:  # sympy's printer fails on exotic objects; its plain form is still comparable
            spellings = [str(python_value)]
        return spellings, _numbers(python_value)
    answer = extract_answer(value)
    spellings = [value] + ([answer] if answer and answer != value else [])
    number = parse_number(clean_answer(answer)) if answer else None
    return spellings, None if number is None else [complex(number)]


def verify_printed_output(output: str, stated_result: str, settings: VerificationSettings | None = None) -> Verdict:
    """Compare a snippet's printed output with the model's stated result."""
    from evaluation.grading import answers_match

    settings = settings or VerificationSettings()
    value = extract_printed_value(output)
    if value is None:
        return Verdict(False, "empty_output")
    readings = stated_result_candidates(stated_result)
    if not readings:
        return Verdict(False, "no_stated_result", value)
    spellings, numbers = _predictions(value)
    for reading in readings:
        for spelling in spellings:
            try:
                matched, how = answers_match(spelling, reading, rel_tol=settings.rel_tol, abs_tol=settings.abs_tol)
            except ValueError:  # e.g. a stated result the grader reads as an option letter
                continue
            if matched:
                return Verdict(True, f"match: {how}", value)
        rule = _rounded_or_percent_match(numbers, reading, settings) if numbers else None
        if rule is not None:
            return Verdict(True, f"match: {rule}", value)
    return Verdict(False, "mismatch", value)
