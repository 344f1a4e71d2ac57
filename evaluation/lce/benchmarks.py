"""The five benchmarks of MathCoder's Table 2, read from local JSON-lines files or, when those are absent, the Hub.

The test sets shipped in the package (``<name>_test.jsonl.gz``, see :data:`mathcode_pile.paths.BENCHMARKS_DIR`)
are read by default; ``data_dir`` names another folder of ``<name>_test.jsonl[.gz]`` files. Only GSM8K and MATH have
a Hub copy identical to the test sets the paper used; SVAMP, Mathematics and SimulEq are MathCoder's own samples, so
for those a local file is required and its absence is an error that says where the file is expected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from evaluation.benchmarks import HUB, MATH_SUBJECTS
from mathcode_pile.jsonl import iter_jsonl
from mathcode_pile.paths import benchmark_file, benchmarks_dir

logger = logging.getLogger(__name__)


class BenchmarkError(ValueError):
    """A benchmark that cannot be read; the message names the file (or Hub id), the row and the field."""


@dataclass(frozen=True)
class HubSource:
    path: str
    configs: tuple[str | None, ...]
    split: str
    question_field: str
    answer_field: str


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    local_stem: str
    question_field: str
    answer_field: str
    hub: HubSource | None = None


BENCHMARKS: dict[str, Benchmark] = {
    "gsm8k": Benchmark(
        "gsm8k", "GSM8K", "gsm8k_test", "question", "answer",
        HubSource("openai/gsm8k", ("main",), "test", "question", "answer"),
    ),
    "math": Benchmark(
        "math", "MATH", "math_test", "problem", "answer",
        HubSource("EleutherAI/hendrycks_math", MATH_SUBJECTS, "test", "problem", "solution"),
    ),
    "svamp": Benchmark("svamp", "SVAMP", "svamp_test", "question", "answer"),
    "mathematics": Benchmark("mathematics", "Mathematics", "mathematics_test", "question", "answer"),
    "simuleq": Benchmark("simuleq", "SimulEq", "simuleq_test", "question", "answer"),
}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    benchmark: str
    index: int
    question: str
    answer: str | int | float


def _check_row(row: Any, where: str, question_field: str, answer_field: str) -> tuple[str, Any]:
    if not isinstance(row, dict):
        raise BenchmarkError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question = row.get(question_field)
    if not isinstance(question, str) or not question.strip():
        raise BenchmarkError(f"{where}: field '{question_field}' is missing or empty")
    answer = row.get(answer_field)
    if answer is None or isinstance(answer, bool) or not isinstance(answer, str | int | float) or answer == "":
        raise BenchmarkError(f"{where}: field '{answer_field}' is missing or not text/number")
    return question, answer


def read_local_benchmark(benchmark: Benchmark, path: Path, limit: int | None = None) -> list[Problem]:
    problems = []
    # islice stops before reading the line after the limit, so a bad line past it is never parsed
    stop = None if limit is None else max(limit, 0)
    for line_number, row in islice(iter_jsonl(path, BenchmarkError), stop):
        where = f"{path}: line {line_number}"
        question, answer = _check_row(row, where, benchmark.question_field, benchmark.answer_field)
        problems.append(Problem(benchmark.name, len(problems), question, answer))
    return problems


def read_hub_benchmark(benchmark: Benchmark, limit: int | None = None) -> list[Problem]:
    from datasets import load_dataset

    hub = benchmark.hub
    assert hub is not None
    problems: list[Problem] = []
    for config in hub.configs:
        rows = load_dataset(hub.path, config, split=hub.split)
        for index, row in enumerate(rows):
            if limit is not None and len(problems) >= limit:
                return problems
            where = f"{hub.path}:{config} ({hub.split}): row {index}"
            question, answer = _check_row(row, where, hub.question_field, hub.answer_field)
            problems.append(Problem(benchmark.name, len(problems), question, answer))
    return problems


def load_benchmark(name: str, limit: int | None = None, data_dir: Path | str | None = None) -> list[Problem]:
    """The first ``limit`` problems of a benchmark (all when None): the bundled set, a folder's file, or the Hub
    (``data_dir="hub"``, only where the Hub holds the paper's test set)."""
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark '{name}'; choose from {sorted(BENCHMARKS)}")
    benchmark = BENCHMARKS[name]
    from_hub = str(data_dir) == HUB
    folder = Path(data_dir) if data_dir is not None and not from_hub else benchmarks_dir()
    path = benchmark_file(folder, benchmark.local_stem)
    if path.is_file() and not from_hub:
        return read_local_benchmark(benchmark, path, limit)
    if benchmark.hub is None:
        where = "data_dir=hub was asked for" if from_hub else f"{path} not found"
        raise BenchmarkError(
            f"{benchmark.title}: {where}, and it has no Hub copy of the paper's test set; omit --data_dir to read the "
            "bundled set, or pass the folder that holds <name>_test.jsonl[.gz]"
        )
    logger.info("reading %s from the Hub (%s)", benchmark.hub.path, "asked for" if from_hub else f"{path} not found")
    return read_hub_benchmark(benchmark, limit)
