"""``python -m evaluation.lce.evaluate``: run the LCE inference loop on MathCoder's five benchmarks and grade it.

Examples::

    python -m evaluation.lce.evaluate --model outputs/MathCoder-CL-7B --limit 10
    python -m evaluation.lce.evaluate --model MathLLM/MathCoder-CL-7B --llm_endpoint http://tgi:8080 \\
        --datasets gsm8k math --max_concurrent_problems 32
    python -m evaluation.lce.evaluate --model MathLLM/MathCoder-L-7B --llm_endpoint http://vllm:8000 \
        --llm_mode completions

With ``--llm_endpoint`` the model runs on a server (many problems in flight, requests cached): TGI's generate route
by default, or any OpenAI-compatible ``/v1/completions`` route with ``--llm_mode completions``; otherwise it is
loaded locally with transformers. Every solved problem is appended to ``<output>/predictions/<benchmark>.jsonl`` as
soon as it is done, so an interrupted run resumes where it stopped. Grading goes through :mod:`evaluation.grading`,
the project's one grader; ``results.json`` and ``results.md`` (the table beside the paper's) close the run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.lce.benchmarks import BENCHMARKS, BenchmarkError, Problem, load_benchmark
from evaluation.lce.engine import LCEInferenceConfig, LCEInferenceEngine
from evaluation.lce.report import TABLE_ORDER, render_comparison_table, save_results
from evaluation.lce.solving import solve_into_ledger
from mathcode_pile.config import RecipeError, ValidatedConfig, config_to_dict, parse_recipe, split_config_argument
from mathcode_pile.ledger import Ledger
from mathcode_pile.llm.client import LLMConfig
from mathcode_pile.output_dirs import OverwriteOption, claim_output_dir

logger = logging.getLogger(__name__)


@dataclass
class LCEEvalConfig(ValidatedConfig, OverwriteOption):
    """What to evaluate and where the results go."""

    model: str = field(
        default="",
        metadata={"help": "Model folder or Hub id (loaded locally), or the model name sent to an endpoint."},
    )
    datasets: list[str] = field(
        default_factory=lambda: list(TABLE_ORDER), metadata={"help": f"Benchmarks to run, from {list(TABLE_ORDER)}."}
    )
    limit: int | None = field(default=None, metadata={"help": "First N problems of each benchmark (default: all)."})
    output_dir: str = field(default="outputs/eval_lce", metadata={"help": "Where predictions and results go."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Folder with <name>_test.jsonl[.gz] files (default: the bundled sets); 'hub': the Hub."},
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer to count prompt tokens for an endpoint (default: none)."}
    )
    device: str | None = field(default=None, metadata={"help": "Device of a local model (default: cuda if any)."})
    batch_size: int = field(
        default=8, metadata={"help": "Blocks generated in one batch by a local model (concurrent problems)."}
    )
    torch_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads of a local model (default: torch's choice; 1 is faster on a busy machine)."},
    )
    sandbox_workers: int = field(
        default=2, metadata={"help": "Sandbox worker processes hosting the per-problem Python sessions."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise RecipeError("--model is required (a model folder, a Hub id, or the served model's name)")
        unknown = sorted(set(self.datasets) - set(BENCHMARKS))
        if unknown:
            raise RecipeError(f"unknown benchmark(s) {unknown}; choose from {list(TABLE_ORDER)}")
        if self.limit is not None and self.limit < 1:
            raise RecipeError(f"limit must be >= 1, got {self.limit}")


CONFIG_CLASSES = (LCEEvalConfig, LCEInferenceConfig, LLMConfig)


def parse_eval_args(argv: Sequence[str]) -> tuple[LCEEvalConfig, LCEInferenceConfig, LLMConfig]:
    """``--config recipe.yaml`` (optional) plus ``--key value`` overrides; endpoints default to TGI's raw mode."""
    recipe, args = split_config_argument(argv)
    if not any(arg.split("=")[0] == "--llm_mode" for arg in args):
        args = ["--llm_mode", "text_generation", *args]
    eval_config, inference_config, llm_config = parse_recipe(CONFIG_CLASSES, recipe, args)
    return eval_config, inference_config, llm_config


def build_backend(
    eval_config: Any, inference: LCEInferenceConfig, llm_config: LLMConfig, syntax: Any = None, tokenizer: Any = None
) -> Any:
    """The local transformers backend, or the endpoint one when ``llm_endpoint`` is set, stopping where ``syntax``
    says (LCE by default). ``eval_config`` needs ``model``, ``device``, ``batch_size``, ``torch_threads``,
    ``output_dir`` and ``tokenizer``; an already loaded ``tokenizer`` counts an endpoint's prompt tokens."""
    from evaluation.lce.backends import RAW_PROMPT_MODES, EndpointBackend, TransformersBackend
    from mathcode_pile.lce.syntax import LCE_SYNTAX

    syntax = syntax or LCE_SYNTAX
    if not llm_config.llm_endpoint:
        if eval_config.torch_threads is not None:
            import torch

            torch.set_num_threads(eval_config.torch_threads)
        return TransformersBackend(
            eval_config.model,
            inference.context_length,
            device=eval_config.device,
            max_batch_size=eval_config.batch_size,
            syntax=syntax,
        )
    from mathcode_pile.llm import LLMClient, RequestCache

    if llm_config.llm_mode not in RAW_PROMPT_MODES:
        raise RecipeError(
            "--llm_mode must be text_generation (TGI's generate route) or completions (an OpenAI-compatible "
            "/v1/completions route): the loop continues a raw prompt step by step, which chat endpoints cannot "
            f"do (got {llm_config.llm_mode!r})"
        )
    if llm_config.llm_model == "tgi":
        llm_config.llm_model = eval_config.model
    cache_path = Path(llm_config.llm_cache_path or Path(eval_config.output_dir) / "llm_cache.sqlite")
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    client = LLMClient(llm_config, cache=RequestCache(cache_path))
    if tokenizer is None and eval_config.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(eval_config.tokenizer)
    return EndpointBackend(client, inference.context_length, tokenizer=tokenizer, syntax=syntax)


async def solve_benchmark(engine: LCEInferenceEngine, problems: list[Problem], path: Path) -> list[dict[str, Any]]:
    """Solve the problems not yet in ``path`` (a :class:`~mathcode_pile.ledger.Ledger`); every row in index order."""
    items = [
        (str(p.index), p.question, {"index": p.index, "benchmark": p.benchmark, "answer": p.answer}) for p in problems
    ]
    results = await solve_into_ledger(engine, items, Ledger(path))
    return [results[str(problem.index)] for problem in problems]


def summarize_benchmark(graded: list[dict[str, Any]]) -> dict[str, Any]:
    rows = len(graded)
    correct = sum(bool(row["correct"]) for row in graded)
    finish = Counter(row["finish_reason"] for row in graded)
    blocks = Counter()
    for row in graded:
        blocks.update(row.get("counters", {}))
    return {
        "rows": rows,
        "correct": correct,
        "accuracy": correct / rows if rows else 0.0,
        "finish_reasons": dict(sorted(finish.items())),
        "grade_reasons": dict(sorted(Counter(row["grade_reason"] for row in graded).items())),
        "blocks": dict(sorted(blocks.items())),
    }


def run_evaluation(eval_config: LCEEvalConfig, inference: LCEInferenceConfig, llm_config: LLMConfig) -> dict[str, Any]:
    """Solve, grade and summarize every requested benchmark; writes predictions, results.json and results.md."""
    from evaluation.grading import grade_rows
    from mathcode_pile.lce.execution import SandboxSessions

    output_dir = claim_output_dir(
        eval_config.output_dir, "output_dir", "evaluation.lce", eval_config.overwrite, "evaluation.lce"
    )
    problem_sets = {
        name: load_benchmark(name, eval_config.limit, eval_config.data_dir) for name in eval_config.datasets
    }
    backend = build_backend(eval_config, inference, llm_config)
    results: dict[str, Any] = {
        "model": eval_config.model,
        "backend": "endpoint" if llm_config.llm_endpoint else "transformers",
        "limit": eval_config.limit,
        "inference": config_to_dict(inference),
        "benchmarks": {},
    }
    sessions = SandboxSessions(eval_config.sandbox_workers, inference.execution_timeout_s, inference.max_output_chars)
    with sessions:
        engine = LCEInferenceEngine(backend, sessions, inference)
        for name, problems in problem_sets.items():
            logger.info("%s: solving %d problem(s)", BENCHMARKS[name].title, len(problems))
            rows = asyncio.run(solve_benchmark(engine, problems, output_dir / "predictions" / f"{name}.jsonl"))
            graded = grade_rows(rows, dataset=name, source=f"{name} predictions")
            (output_dir / "predictions" / f"{name}.graded.jsonl").write_text(
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in graded), encoding="utf-8"
            )
            results["benchmarks"][name] = summarize_benchmark(graded)
            logger.info("%s: accuracy %.3f", BENCHMARKS[name].title, results["benchmarks"][name]["accuracy"])
    save_results(results, output_dir / "results.json")
    (output_dir / "results.md").write_text(render_comparison_table(results), encoding="utf-8")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from mathcode_pile.log_setup import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        from transformers import HfArgumentParser

        HfArgumentParser(list(CONFIG_CLASSES)).print_help()
        return 0
    setup_logging()
    try:
        eval_config, inference, llm_config = parse_eval_args(argv)
        results = run_evaluation(eval_config, inference, llm_config)
    except (RecipeError, BenchmarkError) as exc:
        print(f"evaluation.lce: error: {exc}", file=sys.stderr)
        return 2
    print(render_comparison_table(results))
    print(f"predictions and results in {eval_config.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
