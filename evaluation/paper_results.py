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


# --- the papers' ablation tables, for `mathcode-eval compare --paper ...` ------------------------------------------

#: The key under which a paper row gives its average over :attr:`PaperAblation.average_over`.
AVERAGE = "average"


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper's ablation table; ``key`` is the ablation name of the recipe that reproduces it."""

    key: str
    label: str
    #: Table and row the figures are read from.
    source: str
    #: Accuracy in percent per benchmark (and :data:`AVERAGE`), only where the paper gives the figure.
    figures: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperAblation:
    """A paper's ablation table: its rows and the benchmarks its average covers."""

    name: str
    reference: str
    average_over: tuple[str, ...]
    rows: tuple[PaperRow, ...]

    def row_for(self, key: str | None) -> PaperRow | None:
        return next((row for row in self.rows if row.key == key), None)


_MATHCODER2_ABLATION_SOURCE = "ablation study; no figure of this row could be confirmed, so its cells stay empty"

#: MathCoder2's ablations, rows keyed by the Llama-3-8B ablation recipes (``recipes/Llama-3-8B/ablations``). The
#: paper trains each ablation corpus for 3 epochs with 2M-token batches and 4096-token context; we could not confirm
#: any of its figures, so every paper cell of this table is empty rather than guessed.
MATHCODER2_ABLATION = PaperAblation(
    name="mathcoder2-ablation",
    reference="MathCoder2 (Lu et al., 2024, arXiv 2410.08196), ablation tables",
    average_over=tuple(BENCHMARK_TITLES),
    rows=(
        PaperRow("basic", "basic data only", _MATHCODER2_ABLATION_SOURCE),
        PaperRow("paired", "basic data + translated code (steps paired with code)", _MATHCODER2_ABLATION_SOURCE),
        PaperRow("code_only", "basic data + translated code without its reasoning steps", _MATHCODER2_ABLATION_SOURCE),
        PaperRow("only_open_web_math", "filtered OpenWebMath alone", _MATHCODER2_ABLATION_SOURCE),
        PaperRow("only_cc_en_math", "filtered CC-En-math alone", _MATHCODER2_ABLATION_SOURCE),
        PaperRow("only_synthetic", "synthetic data alone", _MATHCODER2_ABLATION_SOURCE),
        PaperRow("only_math_code", "code using math packages alone", _MATHCODER2_ABLATION_SOURCE),
        PaperRow("only_translated_code", "model-translated mathematical code alone", _MATHCODER2_ABLATION_SOURCE),
    ),
)  # fmt: skip

#: MathCoder's solution-format ablation, Table 5 of arXiv 2310.03731: the average over its five benchmarks (GSM8K,
#: MATH, SVAMP, Mathematics, SimulEq) of models trained on CoT, PoT and LCE solutions of the same problems. The
#: per-benchmark figures and the figure of the execution-in-the-loss row are not confirmed here: those cells stay
#: empty.
MATHCODER_TABLE5 = PaperAblation(
    name="mathcoder-table5",
    reference="MathCoder (Wang et al., 2023, arXiv 2310.03731), Table 5",
    average_over=("gsm8k", "math", "svamp", "mathematics", "simuleq"),
    rows=(
        PaperRow("cot", "CoT (natural language only)", "Table 5, row CoT (5-dataset average)", {AVERAGE: 35.1}),
        PaperRow("pot", "PoT (code only)", "Table 5, row PoT (5-dataset average)", {AVERAGE: 69.1}),
        PaperRow("lce", "LCE (execution results masked in the loss)", "Table 5, row LCE (5-dataset average)",
                 {AVERAGE: 70.2}),
        PaperRow("execution_in_loss", "LCE with execution results in the loss",
                 "Table 5, execution-in-the-loss row (figure not confirmed; cells empty)"),
    ),
)  # fmt: skip

PAPER_ABLATIONS: dict[str, PaperAblation] = {table.name: table for table in (MATHCODER2_ABLATION, MATHCODER_TABLE5)}
