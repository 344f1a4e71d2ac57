"""Published MathCoder2 figures (arXiv 2410.08196) that our results tables are set beside.

Only figures we could confirm are listed; a benchmark missing here shows as "—" in the table rather than a guess.
The MathCoder2-Llama-3-8B MATH / GSM8K accuracies are the paper's headline 4-shot results; the Llama-3-8B base
figures are those results minus the gains the paper reports for continued pretraining on MathCode-Pile
(+17.0 MATH, +15.1 GSM8K). Values are accuracies in percent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PAPER_REFERENCE = "MathCoder2 (Lu et al., 2024, arXiv 2410.08196), 4-shot GSM8K / MATH / SAT / OCW and MMLU-Math"

#: Benchmarks in the order the tables list them, with the names the tables print.
BENCHMARK_TITLES = {
    "gsm8k": "GSM8K",
    "math": "MATH",
    "sat_math": "SAT-Math",
    "ocw": "OCW",
    "mmlu_math": "MMLU-Math",
}


@dataclass(frozen=True)
class PaperFamily:
    """A base model of the paper and its MathCoder2 continuation, with the figures we could confirm."""

    base_name: str
    mathcoder2_name: str
    #: lower-case fragments that identify the family in a model path or Hub id
    patterns: tuple[str, ...]
    base: dict[str, float] = field(default_factory=dict)
    mathcoder2: dict[str, float] = field(default_factory=dict)


PAPER_FAMILIES: tuple[PaperFamily, ...] = (
    PaperFamily(
        "Llama-3-8B",
        "MathCoder2-Llama-3-8B",
        ("llama-3-8b", "llama3-8b", "llama-3.0-8b"),
        base={"math": 21.4, "gsm8k": 54.8},
        mathcoder2={"math": 38.4, "gsm8k": 69.9},
    ),
    PaperFamily("DeepSeekMath-7B", "MathCoder2-DeepSeekMath-7B", ("deepseekmath-7b", "deepseek-math-7b")),
    PaperFamily("Mistral-7B", "MathCoder2-Mistral-7B", ("mistral-7b",)),
    PaperFamily("Code-Llama-7B", "MathCoder2-CodeLlama-7B", ("codellama-7b", "code-llama-7b")),
)


#: The post-training data of MathCoder2 (arXiv 2410.08196, its post-training experiments): each base model and its
#: MathCoder2 model are fine-tuned on NuminaMath-CoT and on NuminaMath-TIR and evaluated after it.
POST_TRAINING_DATA = {"cot": "NuminaMath-CoT", "tir": "NuminaMath-TIR"}
POST_TRAINING_REFERENCE = (
    "MathCoder2 (Lu et al., 2024, arXiv 2410.08196), post-training table: base and MathCoder2 models fine-tuned on "
    "NuminaMath-CoT / NuminaMath-TIR"
)
#: Post-training accuracies (percent) by (base model family, "base" or "mathcoder2", "cot" or "tir"), each with the
#: table and row of the paper it is read from. Empty: we could not read the figures from a source we can cite, so
#: every cell prints "—" until one is added here with its table and row, e.g.
#: ``("Llama-3-8B", "mathcoder2", "tir"): {"math": ..., "gsm8k": ...}  # Table N, row "MathCoder2-Llama-3-8B-TIR"``.
POST_TRAINING_FIGURES: dict[tuple[str, str, str], dict[str, float]] = {}


def post_training_family(family: PaperFamily, data: str) -> PaperFamily:
    """The family's rows of the post-training table for ``data`` (``cot`` or ``tir``), named by what was trained on."""
    if data not in POST_TRAINING_DATA:
        raise ValueError(f"unknown post-training data '{data}'; choose from {sorted(POST_TRAINING_DATA)}")
    suffix = f" + {POST_TRAINING_DATA[data]}"
    return PaperFamily(
        family.base_name + suffix,
        family.mathcoder2_name + suffix,
        family.patterns,
        base=dict(POST_TRAINING_FIGURES.get((family.base_name, "base", data), {})),
        mathcoder2=dict(POST_TRAINING_FIGURES.get((family.base_name, "mathcoder2", data), {})),
    )


def find_paper_family(model: str) -> PaperFamily | None:
    """The paper's model family a model path or Hub id belongs to (``meta-llama/Meta-Llama-3-8B`` -> Llama-3-8B).

    Matching ignores case, ``_`` vs ``-`` and a ``Meta-`` prefix; a model outside the paper's four families gets
    ``None`` and its table shows this run alone.
    """
    normalized = re.sub(r"[_\s]+", "-", model.lower()).replace("meta-llama-3", "llama-3")
    for family in PAPER_FAMILIES:
        if any(pattern in normalized for pattern in family.patterns):
            return family
    return None


def paper_family_by_name(name: str) -> PaperFamily:
    """The family whose base or MathCoder2 name is ``name`` (as written in a recipe's ``paper_model``)."""
    for family in PAPER_FAMILIES:
        if name.lower() in (family.base_name.lower(), family.mathcoder2_name.lower()):
            return family
    known = [family.base_name for family in PAPER_FAMILIES]
    raise ValueError(f"unknown paper model '{name}'; known base models: {known}")
