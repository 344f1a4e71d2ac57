"""Stage ``code_math_filter``: keep code documents that import a math package (read from the syntax tree).

MathCoder2 keeps, from its code sources, the files that import math packages (sympy, fractions, cmath, scipy,
statistics); the list is the recipe key ``code_math_packages``. Imports are read with :mod:`ast`, not by string
search, so ``# import sympy`` in a comment or ``"from scipy"`` in a string does not count and
``from scipy.stats import norm`` counts as ``scipy``. Notebook documents (code cells as fenced ``python`` blocks, see
:mod:`mathcode_pile.sources`) are parsed cell by cell, with IPython magics (``%matplotlib``, ``!pip``) left out.
Code that does not parse (Python 2, a broken cell) is tolerated: each ``import`` / ``from`` line is parsed on its own.
Rows of other kinds (``code_filter_kinds``) pass untouched. Kept rows record their math imports in the metadata,
which gives the per-package counts of the card; dropped rows are counted as ``no_math_import`` or, when nothing of the
code parsed, ``unparseable``.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mathcode_pile.card import CardSection, publish_stage_section
from mathcode_pile.config import RecipeError, ValidatedConfig
from mathcode_pile.sources import document_kind, document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, Batch, Stage, StageContext, register_stage
from mathcode_pile.stages.columns import FILTER_BATCH, column_values
from mathcode_pile.stats import StageStats

#: The packages the paper filters on.
PAPER_MATH_PACKAGES = ("sympy", "fractions", "cmath", "scipy", "statistics")
_FENCE = re.compile(r"```[ \t]*(?:python3?|py|ipython3?)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_MAGIC = re.compile(r"^\s*[%!?]")
_IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s+\w")
_FROM_IMPORT = re.compile(r"^\s*from\s+([\w.]+)\s+import\b")


def code_blocks(text: str) -> list[str]:
    """The Python code of a document: its fenced blocks when it has any (notebooks, markdown), else the whole text."""
    blocks = _FENCE.findall(text)
    return blocks if blocks else [text]


def _imports_of_tree(tree: ast.AST) -> set[str]:
    packages = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages.add(node.module.split(".")[0])
    return packages


def imported_packages(code: str) -> tuple[set[str], bool]:
    """Top-level packages ``code`` imports, and whether it parsed as a whole.

    On a syntax error each import line is parsed alone (for ``from M import (...`` only ``from M import _``, since
    the names may continue on later lines), so broken code still reports what it imports.
    """
    cleaned = "\n".join("" if _MAGIC.match(line) else line for line in code.splitlines())
    try:
        return _imports_of_tree(ast.parse(cleaned)), True
    except (SyntaxError, ValueError):  # ValueError: source with null bytes
        pass
    packages: set[str] = set()
    for line in cleaned.splitlines():
        if not _IMPORT_LINE.match(line):
            continue
        from_import = _FROM_IMPORT.match(line)
        # the imported names may continue on later lines: the module is all that matters
        statement = f"from {from_import.group(1)} import _" if from_import else line.split("#")[0].strip().rstrip("\\")
        try:
            packages |= _imports_of_tree(ast.parse(statement))
        except (SyntaxError, ValueError):
            continue
    return packages, False


def document_imports(text: str) -> tuple[set[str], bool]:
    """Imports of every code block of a document; ``parsed`` is true when at least one block parsed whole."""
    packages: set[str] = set()
    parsed_any = False
    for block in code_blocks(text):
        block_packages, parsed = imported_packages(block)
        packages |= block_packages
        parsed_any = parsed_any or parsed
    return packages, parsed_any


@dataclass
class CodeFilterConfig(ValidatedConfig):
    code_math_packages: list[str] = field(
        default_factory=lambda: list(PAPER_MATH_PACKAGES),
        metadata={"help": "Top-level packages whose import marks code as mathematical (the paper's five by default)."},
    )
    code_filter_kinds: list[str] = field(
        default_factory=lambda: ["code"],
        metadata={"help": "Source kinds this filter applies to; rows of other kinds pass untouched."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.code_math_packages:
            raise RecipeError("code_math_packages must name at least one package")


@register_stage
class CodeMathFilterStage(Stage):
    name = "code_math_filter"
    rewrites_columns = frozenset({"metadata"})
    version = "1"
    config_class = CodeFilterConfig
    batch_size = FILTER_BATCH

    def __init__(self, config: CodeFilterConfig, context: StageContext) -> None:
        super().__init__(config, context)
        publish_stage_section(self.name, self.card_section)

    def process_batch(self, batch: Batch) -> Batch:
        wanted = set(self.config.code_math_packages)
        kinds = set(self.config.code_filter_kinds)
        reasons: list[str | None] = []
        metadata_out: list[str] = []
        for text, raw in zip(batch["text"], batch["metadata"], strict=True):
            if document_kind(raw) not in kinds:
                reasons.append(None)
                metadata_out.append(raw)
                continue
            metadata = document_metadata(raw)
            packages, parsed = document_imports(text)
            math_imports = sorted(packages & wanted)
            if math_imports:
                metadata["math_imports"] = math_imports
                metadata["code_parsed"] = parsed
                reasons.append(None)
                metadata_out.append(json.dumps(metadata, ensure_ascii=False))
            else:
                reasons.append("no_math_import" if parsed else "unparseable")
                metadata_out.append(raw)
        return {**batch, "metadata": metadata_out, DROP_COLUMN: reasons}

    def summarize(self, kept: Any) -> Counter[str]:
        counts: Counter[str] = Counter()
        if not len(kept):
            return counts
        for raw in column_values(kept, "metadata"):
            metadata = document_metadata(raw)
            imports = metadata.get("math_imports")
            if not imports:
                continue
            counts["code_docs_kept"] += 1
            if not metadata.get("code_parsed", True):
                counts["kept_unparseable"] += 1
            for package in imports:
                counts[f"imports_{package}"] += 1
        return counts

    def card_section(self, stats: StageStats) -> CardSection:
        lines = [
            "Code documents are kept when their syntax tree imports one of: "
            + ", ".join(f"`{p}`" for p in self.config.code_math_packages)
            + f". {stats.extra.get('code_docs_kept', 0):,} code document(s) kept; dropped: "
            f"{stats.dropped.get('no_math_import', 0):,} without a math import, "
            f"{stats.dropped.get('unparseable', 0):,} unparseable.",
            "",
            "| package | kept documents importing it |",
            "|---|---:|",
        ]
        lines += [f"| {p} | {stats.extra.get(f'imports_{p}', 0):,} |" for p in self.config.code_math_packages]
        return CardSection("Code with math packages", "\n".join(lines))
