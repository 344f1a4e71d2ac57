"""Parse a translation response into computations: conditions, LaTeX expression, stated result, Python code.

Models answer in the paper's format (``Conditions Needed:``, ``Computation Expression:``, ``Computation Result:``,
``Python Code Snippet:``) with every markdown variation one can think of: bold or italic headings (``**Conditions
Needed:**``, ``**Computation Result**: 42``), markdown headings (``### Python Code Snippet``), numbered or bulleted
headings (``1. Conditions Needed``), ``Computation 2`` separators, and code fences with or without a language. The
parser accepts all of them; a block it cannot use, and a response without any usable block, is counted with a reason
(see :data:`BLOCK_ISSUES` and :data:`RESPONSE_ISSUES`) so nothing is dropped silently.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SECTION_NAMES = {
    "conditions": ("conditions needed", "condition needed", "conditions", "given conditions"),
    "expression": ("computation expression", "computation expressions", "expression"),
    "result": ("computation result", "computation results", "result"),
    "code": ("python code snippet", "python code snippets", "python code", "code snippet", "python snippet"),
}
_NAME_TO_SECTION = {name: section for section, names in SECTION_NAMES.items() for name in names}
_NAMES_PATTERN = "|".join(
    sorted((re.escape(n).replace(r"\ ", r"\s+") for n in _NAME_TO_SECTION), key=len, reverse=True)
)
_EMPHASIS = r"(?:\*\*|__|\*|_)?"
HEADER = re.compile(
    rf"^\s*(?P<hash>#{{1,6}}\s*)?(?:>\s*)?(?:[-*+]\s+)?(?:\(?\d{{1,3}}[.)]\s*)?(?P<em>\*\*|__|\*|_)?\s*"
    rf"(?P<name>{_NAMES_PATTERN})\s*{_EMPHASIS}\s*(?P<colon>[:：])?\s*{_EMPHASIS}\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
COMPUTATION_HEADING = re.compile(
    rf"^\s*(?:#{{1,6}}\s*)?{_EMPHASIS}\s*(?:computation|step)\s*(?:#\s*)?\d{{1,3}}\s*{_EMPHASIS}\s*[:.)]?\s*{_EMPHASIS}\s*$",
    re.IGNORECASE,
)
FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+.-]*)\s*$")
NO_COMPUTATIONS = re.compile(r"\bno\s+computations?\b", re.IGNORECASE)
CODE_LANGUAGES = ("", "python", "py", "python3", "ipython")

#: Why a block was not turned into a computation.
BLOCK_ISSUES = (
    "missing_expression",
    "missing_result",
    "missing_code",
    "unclosed_code_fence",
    "code_not_python",
    "empty_code",
)
#: Why a whole response yielded nothing (besides its blocks' own issues).
RESPONSE_ISSUES = ("empty_response", "no_computations", "no_sections")


@dataclass
class Computation:
    """One computation of a document, as the model stated it."""

    conditions: str
    expression: str
    result: str
    code: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParseOutcome:
    computations: list[Computation] = field(default_factory=list)
    #: one reason per rejected block, or one response-level reason
    issues: list[str] = field(default_factory=list)
    blocks: int = 0


@dataclass
class _Block:
    sections: dict[str, list[str]] = field(default_factory=dict)

    def has(self, section: str) -> bool:
        return section in self.sections


def _clean_text(lines: list[str]) -> str:
    """Section text without markdown emphasis around it, list bullets kept (conditions are often a list)."""
    text = "\n".join(line.rstrip() for line in lines).strip()
    text = re.sub(r"^(?:\*\*|__)\s*|\s*(?:\*\*|__)$", "", text).strip()
    return text


def _strip_math_delimiters(text: str) -> str:
    stripped = text.strip()
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if stripped.startswith(left) and stripped.endswith(right) and len(stripped) > len(left) + len(right):
            inner = stripped[len(left) : -len(right)].strip()
            if "$" not in inner:
                return inner
    return stripped


def _closes(line: str, opener: str) -> bool:
    """Whether ``line`` closes a fence opened with ``opener`` (same character, at least as long, no language)."""
    match = FENCE.match(line)
    if match is None or match.group("lang"):
        return False
    fence = match.group("fence")
    return fence[0] == opener[0] and len(fence) >= len(opener)


def _fenced_blocks(lines: list[str]) -> list[tuple[str, str, bool]]:
    """(language, body, closed) of every fenced block in ``lines``."""
    blocks = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        index += 1
        if not match:
            continue
        opener, language, body, closed = match.group("fence"), match.group("lang").lower(), [], False
        while index < len(lines):
            line = lines[index]
            index += 1
            if _closes(line, opener):
                closed = True
                break
            body.append(line)
        blocks.append((language, "\n".join(body).strip("\n"), closed))
    return blocks


def _extract_code(lines: list[str]) -> tuple[str | None, str | None]:
    """(code, issue) from the lines of a code section: its first fenced block in a Python-ish language, else the
    section itself when it is valid Python."""
    fenced = _fenced_blocks(lines)
    for language, code, closed in fenced:
        if language in CODE_LANGUAGES:
            if not closed:
                return None, "unclosed_code_fence"
            return (code, None) if code.strip() else (None, "empty_code")
    if fenced:
        return None, "code_not_python"
    unfenced = "\n".join(lines).strip("\n")
    if not unfenced.strip():
        return None, "missing_code"
    try:
        ast.parse(unfenced)
    except (SyntaxError, ValueError):
        return None, "missing_code"
    return unfenced, None


def _block_to_computation(block: _Block) -> tuple[Computation | None, str | None]:
    for section, issue in (("expression", "missing_expression"), ("result", "missing_result")):
        if not _clean_text(block.sections.get(section, [])):
            return None, issue
    if not block.has("code"):
        return None, "missing_code"
    code, issue = _extract_code(block.sections["code"])
    if code is None:
        return None, issue
    return (
        Computation(
            conditions=_clean_text(block.sections.get("conditions", [])),
            expression=_strip_math_delimiters(_clean_text(block.sections["expression"])),
            result=_clean_text(block.sections["result"]),
            code=code,
        ),
        None,
    )


def _split_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    section: str | None = None
    fence: str | None = None
    for line in text.splitlines():
        if fence is not None:  # inside a code fence nothing is a heading
            if _closes(line, fence):
                fence = None
            if current is not None and section is not None:
                current.sections[section].append(line)
            continue
        fence_match = FENCE.match(line)
        if fence_match:
            fence = fence_match.group("fence")
            if current is not None and section is not None:
                current.sections[section].append(line)
            continue
        if COMPUTATION_HEADING.match(line):
            current, section = None, None
            continue
        header = HEADER.match(line)
        # a bare word like "Result" opens a section only when it looks like a heading, not inside a sentence
        if header and (
            header.group("colon") or header.group("hash") or header.group("em") or not header.group("rest")
        ):
            name = re.sub(r"\s+", " ", header.group("name").lower())
            new_section = _NAME_TO_SECTION[name]
            # a repeated section, or conditions after anything, opens the next computation
            if current is None or current.has(new_section) or (new_section == "conditions" and current.sections):
                current = _Block()
                blocks.append(current)
            section = new_section
            current.sections[section] = []
            rest = header.group("rest").strip()
            if rest:
                current.sections[section].append(rest)
                opener = FENCE.match(rest)
                if opener:
                    fence = opener.group("fence")
            continue
        if current is not None and section is not None:
            current.sections[section].append(line)
    return blocks


def parse_translation(response: str) -> ParseOutcome:
    """Every usable computation of ``response``, plus one issue per block (or response) that could not be used."""
    if not response or not response.strip():
        return ParseOutcome(issues=["empty_response"])
    blocks = _split_blocks(response)
    if not blocks:
        return ParseOutcome(issues=["no_computations" if NO_COMPUTATIONS.search(response) else "no_sections"])
    outcome = ParseOutcome(blocks=len(blocks))
    for block in blocks:
        computation, issue = _block_to_computation(block)
        if computation is not None:
            outcome.computations.append(computation)
        else:
            outcome.issues.append(issue or "missing_code")
    return outcome
