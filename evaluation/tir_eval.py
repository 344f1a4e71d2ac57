"""``python -m evaluation.tir_eval``: the MathCoder2 benchmarks, zero-shot in the model's chat template, with code
execution (TIR) or without (CoT), as post-trained models are evaluated.

Examples::

    python -m evaluation.tir_eval --model outputs/Llama-3-8B-numina-tir --mode tir
    python -m evaluation.tir_eval --model outputs/MathCoder2-Llama-3-8B-numina-cot --mode cot --limit 50
    python -m evaluation.tir_eval --model my-model --backend endpoint --llm_endpoint http://vllm:8000 \\
        --tokenizer org/my-model

GSM8K, MATH, SAT-Math, OCW and MMLU-Math (the test sets bundled with the project by default, read by
:mod:`evaluation.benchmarks`) are asked as they are, one user turn each, in the model's chat template
(``--chat_template_path`` names one for a tokenizer without); the two multiple-choice sets list their options and ask
for the letter in ``\\boxed{}``. The one inference engine (:mod:`evaluation.lce.engine`) runs with the fenced block
syntax: in ``tir`` mode generation stops at the ```` ```output ```` fence after a ```` ```python ```` block, the block
runs in the problem's own sandboxed Python session, its output is appended and generation goes on, up to
``max_code_calls`` (4) code calls; a solution that leaves a fence open or asks for more calls is graded as no answer.
``cot`` mode runs the same prompts with nothing executed. Every answer is graded by :mod:`evaluation.grading`, the
project's one grader.

Writes into ``output_dir`` (default ``outputs/eval_<mode>/<model name>``) what ``make eval`` writes: ``results.json``
(lm-eval's ``results`` / ``n-samples`` / ``n-shot`` shape plus the ``mathcode`` block with scores and Wilson
intervals), ``samples/<task>.jsonl`` (every prediction with the answer the grader extracted) and ``results.md`` (the
table, beside the paper's post-training figures for the model's family), plus ``predictions/`` (one record per
solved problem, so an interrupted run resumes without solving anything twice).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluation.benchmarks import (
    CHOICE_LABELS,
    HUB,
    load_benchmark,
    normalize_gsm8k,
    normalize_math,
    normalize_mmlu_math,
    normalize_ocw,
    normalize_sat,
)
from evaluation.lce.benchmarks import Problem
from evaluation.lce.engine import LCEInferenceConfig
from evaluation.paper_results import (
    BENCHMARK_TITLES,
    POST_TRAINING_REFERENCE,
    PaperFamily,
    find_paper_family,
    paper_family_by_name,
    post_training_family,
)
from evaluation.results_table import BenchmarkScore, make_score, render_results_table, save_scores
from evaluation.run_eval import default_output_dir, display_name, resolve_model
from mathcode_pile.config import RecipeError, ValidatedConfig, config_to_dict, parse_recipe, split_config_argument
from mathcode_pile.llm.client import LLMConfig

logger = logging.getLogger(__name__)

#: The suite in table order, with the normalizer of each bundled / Hub test set.
NORMALIZERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any] | None]] = {
    "gsm8k": normalize_gsm8k,
    "math": normalize_math,
    "sat_math": normalize_sat,
    "ocw": normalize_ocw,
    "mmlu_math": normalize_mmlu_math,
}
TASK_PREFIX = "mathcoder2_"
SUITES = {"tir": "mathcoder2_tir", "cot": "mathcoder2_cot"}
CHOICE_INSTRUCTION = "Put the letter of the correct choice in \\boxed{}."
#: Loop settings of this evaluation where they differ from the LCE defaults: whole answers per generation step, room
#: for several code calls, NuminaMath's cap of 4 code calls per problem.
INFERENCE_DEFAULTS = (
    "--max_new_tokens_per_block", "1024",
    "--context_length", "4096",
    "--max_blocks", "64",
    "--max_code_calls", "4",
)  # fmt: skip
#: A system prompt with one worked example, for chat models never trained on tool-integrated answers (smoke runs of
#: the loop on the embedded SmolLM2, the TIR benchmark); post-trained models are evaluated without one.
WORKED_EXAMPLE_SYSTEM_PROMPT = (
    "Solve the problem with Python. Write the code in a ```python block; its result will follow in an ```output "
    "block.\n\nExample:\nWhat is 3 times 4?\n```python\nprint(3 * 4)\n```\n```output\n12\n```\n"
    "The answer is \\boxed{12}."
)


@dataclass
class PostTrainEvalConfig(ValidatedConfig):
    """What to evaluate, how, and where the results go."""

    model: str = field(
        default="",
        metadata={"help": "Model folder or Hub id (loaded locally), or the served model's name; smollm2: embedded."},
    )
    mode: Literal["tir", "cot"] = field(
        default="tir", metadata={"help": "tir: code blocks run and their output is fed back; cot: nothing runs."}
    )
    backend: Literal["hf", "endpoint"] = field(
        default="hf", metadata={"help": "hf: transformers in this process; endpoint: a server at --llm_endpoint."}
    )
    datasets: list[str] = field(
        default_factory=lambda: list(NORMALIZERS), metadata={"help": f"Benchmarks to run, from {list(NORMALIZERS)}."}
    )
    limit: int | None = field(default=None, metadata={"help": "First N problems of each benchmark (default: all)."})
    output_dir: str | None = field(default=None, metadata={"help": "Default: outputs/eval_<mode>/<model name>."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Folder of <name>_test.jsonl[.gz] test sets (default: the bundled ones); 'hub': the Hub."},
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "Tokenizer with the chat template (and token counts for an endpoint); default: the model."},
    )
    chat_template_path: str | None = field(
        default=None, metadata={"help": "A .jinja chat template for a tokenizer that has none (as in the recipe)."}
    )
    device: str | None = field(default=None, metadata={"help": "Device of a local model (default: cuda if any)."})
    batch_size: int = field(default=8, metadata={"help": "Generations batched together by a local model."})
    torch_threads: int | None = field(
        default=None, metadata={"help": "CPU threads of a local model (default: torch's choice)."}
    )
    sandbox_workers: int = field(default=2, metadata={"help": "Sandbox worker processes hosting the sessions."})
    paper_model: str | None = field(
        default=None, metadata={"help": "Paper family to compare with, e.g. Llama-3-8B (default: from the model)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise RecipeError("--model is required (a model folder, a Hub id, or the served model's name)")
        unknown = sorted(set(self.datasets) - set(NORMALIZERS))
        if unknown:
            raise RecipeError(f"unknown benchmark(s) {unknown}; choose from {list(NORMALIZERS)}")
        if self.limit is not None and self.limit < 1:
            raise RecipeError(f"limit must be >= 1, got {self.limit}")
        if self.paper_model is not None:
            try:
                paper_family_by_name(self.paper_model)
            except ValueError as exc:
                raise RecipeError(str(exc)) from exc


CONFIG_CLASSES = (PostTrainEvalConfig, LCEInferenceConfig, LLMConfig)


def parse_args(argv: Sequence[str]) -> tuple[PostTrainEvalConfig, LCEInferenceConfig, LLMConfig]:
    """``[--config recipe.yaml] --key value ...``; this evaluation's loop defaults, endpoints on /v1/completions."""
    recipe, args = split_config_argument(argv)
    defaults = [*INFERENCE_DEFAULTS, "--llm_mode", "completions"]
    eval_config, inference, llm_config = parse_recipe(CONFIG_CLASSES, recipe, [*defaults, *args])
    if eval_config.backend == "endpoint" and not llm_config.llm_endpoint:
        raise RecipeError("--backend endpoint needs --llm_endpoint (the server's root URL)")
    if eval_config.backend == "hf" and llm_config.llm_endpoint:
        raise RecipeError("--llm_endpoint is set: pass --backend endpoint to evaluate the served model")
    return eval_config, inference, llm_config


def question_text(benchmark: str, doc: Mapping[str, Any]) -> str:
    """The user turn of one test item: the problem as written; choices and the letter request for multiple choice."""
    if benchmark == "gsm8k":
        return str(doc["question"])
    if benchmark in ("math", "ocw"):
        return str(doc["problem"])
    if benchmark == "sat_math":
        return f"{doc['question']}\nAnswer choices: {doc['options']}\n\n{CHOICE_INSTRUCTION}"
    choices = "\n".join(f"{label}. {choice}" for label, choice in zip(CHOICE_LABELS, doc["choices"], strict=True))
    return f"{doc['question']}\n{choices}\n\n{CHOICE_INSTRUCTION}"


def load_problems(benchmark: str, limit: int | None, data_dir: str | None) -> tuple[list[Problem], int]:
    """The first ``limit`` problems of a benchmark and the size of its whole test set."""
    rows = load_benchmark(benchmark, NORMALIZERS[benchmark], data_dir)["test"]
    count = len(rows) if limit is None else min(limit, len(rows))
    problems = [Problem(benchmark, index, question_text(benchmark, rows[index]), rows[index]["answer"])
                for index in range(count)]  # fmt: skip
    return problems, len(rows)


def load_chat_tokenizer(config: PostTrainEvalConfig, model_ref: str) -> Any:
    """The tokenizer whose chat template writes the prompts (the recipe's template file when one is named)."""
    from transformers import AutoTokenizer

    from training.sft_lce import resolve_chat_template

    name = config.tokenizer or model_ref
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        raise RecipeError(f"cannot load the tokenizer '{name}' ({exc}); name a loadable one with --tokenizer") from exc
    if config.chat_template_path:
        tokenizer.chat_template = resolve_chat_template(config.chat_template_path).read_text(encoding="utf-8")
    return tokenizer


def read_post_training(model_ref: str) -> dict[str, Any] | None:
    """What a model folder trained here records about its training (``run_info.json``: base model, data, recipe)."""
    from training.run_info import read_run_info

    return read_run_info(Path(model_ref))


def post_training_data(post_training: Mapping[str, Any] | None, mode: str) -> str:
    """``tir`` or ``cot``: the data the model was post-trained on when it says, else the evaluation mode."""
    dataset = " ".join(str(item) for item in (post_training or {}).get("training_data") or []).lower()
    for data in ("tir", "cot"):
        if data in dataset:
            return data
    return mode


def paper_family(config: PostTrainEvalConfig, post_training: Mapping[str, Any] | None) -> PaperFamily | None:
    if config.paper_model:
        return paper_family_by_name(config.paper_model)
    return find_paper_family(str((post_training or {}).get("base_model") or "")) or find_paper_family(config.model)


def sample_record(task: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """One problem as ``samples/<task>.jsonl`` holds it: make eval's fields, then the solution's blocks."""
    return {
        "task": task,
        "doc_id": row["index"],
        "answer": row["answer"],
        "prediction": row["prediction"],
        "extracted": row["extracted"],
        "grade_reason": row["grade_reason"],
        "correct": bool(row["correct"]),
        "question": row["question"],
        "finish_reason": row["finish_reason"],
        "error": row.get("error"),
        "blocks": row["blocks"],
        "counters": row.get("counters", {}),
    }


def results_payload(
    config: PostTrainEvalConfig,
    inference: LCEInferenceConfig,
    scores: Sequence[BenchmarkScore],
    sizes: Mapping[str, int],
    details: Mapping[str, Any],
    family: PaperFamily | None,
    post_training: Mapping[str, Any] | None,
    data: str,
) -> dict[str, Any]:
    """``results.json`` in the shape ``make eval`` writes, so tables, cards and comparisons read both alike."""
    tasks = {score.benchmark: TASK_PREFIX + score.benchmark for score in scores}
    return {
        "results": {tasks[s.benchmark]: {"alias": tasks[s.benchmark], "acc,none": s.accuracy} for s in scores},
        "n-samples": {tasks[s.benchmark]: {"original": sizes[s.benchmark], "effective": s.n} for s in scores},
        "n-shot": {tasks[s.benchmark]: 0 for s in scores},
        "mathcode": {
            "suite": SUITES[config.mode],
            "run": config_to_dict(config),
            "scores": save_scores(scores),
            "unscored": {},
            "paper_family": family.base_name if family else None,
            "paper_post_training": data,
            "post_training": dict(post_training) if post_training else None,
            "inference": config_to_dict(inference),
            "benchmarks": dict(details),
        },
    }


def render_table(
    config: PostTrainEvalConfig, scores: Sequence[BenchmarkScore], family: PaperFamily | None, data: str
) -> str:
    paper = post_training_family(family, data) if family else None
    table = render_results_table(
        scores, display_name(config.model), family=paper, limit=config.limit, reference=POST_TRAINING_REFERENCE
    )
    how = (
        "code blocks run in a sandboxed Python session, output fed back, up to the code-call cap"
        if config.mode == "tir"
        else "chain-of-thought, nothing executed"
    )
    return table + f"Zero-shot in the model's chat template; {how}; graded by the project's grader.\n"


def run_evaluation(
    config: PostTrainEvalConfig, inference: LCEInferenceConfig, llm_config: LLMConfig
) -> tuple[Path, str]:
    """Solve, grade and write every output; returns the output folder and the markdown table."""
    from evaluation.grading import grade_rows
    from evaluation.lce.engine import LCEInferenceEngine
    from evaluation.lce.evaluate import build_backend, solve_benchmark, summarize_benchmark
    from mathcode_pile.lce.execution import SandboxSessions
    from mathcode_pile.lce.syntax import syntax_for

    local = config.backend == "hf"
    model_ref = resolve_model(config.model) if local else config.model
    folder = f"eval_{config.mode}"
    output_dir = Path(config.output_dir) if config.output_dir else default_output_dir(config.model, folder)
    data_dir = config.data_dir if config.data_dir in (None, HUB) else str(Path(config.data_dir))
    problem_sets = {name: load_problems(name, config.limit, data_dir) for name in config.datasets}
    tokenizer = load_chat_tokenizer(config, model_ref)
    syntax = syntax_for("chat", tokenizer, execute=config.mode == "tir")
    backend_config = dataclasses.replace(config, model=model_ref, output_dir=str(output_dir))
    backend = build_backend(backend_config, inference, llm_config, syntax=syntax, tokenizer=tokenizer)
    post_training = read_post_training(model_ref)
    family = paper_family(config, post_training)
    data = post_training_data(post_training, config.mode)
    scores, details, sizes = [], {}, {}
    samples_dir = output_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    sessions = SandboxSessions(config.sandbox_workers, inference.execution_timeout_s, inference.max_output_chars)
    with sessions:
        engine = LCEInferenceEngine(backend, sessions, inference, syntax=syntax)
        for name, (problems, size) in problem_sets.items():
            logger.info("%s: solving %d problem(s) (%s)", BENCHMARK_TITLES[name], len(problems), config.mode)
            rows = asyncio.run(solve_benchmark(engine, problems, output_dir / "predictions" / f"{name}.jsonl"))
            graded = grade_rows(rows, dataset=name, source=f"{name} predictions")
            task = TASK_PREFIX + name
            (samples_dir / f"{task}.jsonl").write_text(
                "".join(json.dumps(sample_record(task, row), ensure_ascii=False) + "\n" for row in graded),
                encoding="utf-8",
            )
            details[name] = summarize_benchmark(graded)  # finish and grade reasons, code calls: as eval-lce counts
            scores.append(make_score(name, details[name]["correct"], details[name]["rows"], shots=0))
            sizes[name] = size
            logger.info("%s: accuracy %.3f", BENCHMARK_TITLES[name], details[name]["accuracy"])
    payload = results_payload(config, inference, scores, sizes, details, family, post_training, data)
    (output_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    table = render_table(config, scores, family, data)
    (output_dir / "results.md").write_text(table, encoding="utf-8")
    return output_dir, table


def main(argv: Sequence[str] | None = None) -> int:
    from mathcode_pile.log_setup import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        from transformers import HfArgumentParser

        HfArgumentParser(list(CONFIG_CLASSES)).print_help()
        return 0
    setup_logging()
    try:
        config, inference, llm_config = parse_args(argv)
        output_dir, table = run_evaluation(config, inference, llm_config)
    except (RecipeError, ValueError, FileNotFoundError) as exc:
        print(f"evaluation.tir_eval: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    print(f"results, samples and predictions in {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
