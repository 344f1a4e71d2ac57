"""Run the ``mathcoder2`` lm-eval suite on one model and write results, per-sample predictions and a results table.

Examples::

    python -m evaluation.run_eval --config recipes/eval/mathcoder2.yaml --model meta-llama/Meta-Llama-3-8B
    python -m evaluation.run_eval --model smollm2 --limit 20
    python -m evaluation.run_eval --model my-model --backend local-completions --base_url http://127.0.0.1:8000

Backends: ``hf`` (transformers, CPU or GPU), ``vllm`` (GPU, needs ``pip install vllm``) and ``local-completions``
(any OpenAI-compatible ``/v1/completions`` server: vLLM, TGI, SGLang, llama.cpp). ``--model smollm2`` means the
embedded SmolLM2-135M-Instruct converted to safetensors, so the suite runs offline on a laptop.

Writes into ``output_dir``: ``results.json`` (lm-eval's results plus a ``mathcode`` block with the scores and
their confidence intervals), ``results.md`` (the table) and ``samples/<task>.jsonl`` (every prediction with the
answer the grader extracted).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluation.benchmarks import HUB
from evaluation.grading import grade
from evaluation.paper_results import PaperFamily, find_paper_family, paper_family_by_name
from evaluation.results_table import (
    TASK_PREFIX,
    BenchmarkScore,
    render_results_table,
    save_scores,
    scores_from_lm_eval,
)
from mathcode_pile.config import RecipeError, ValidatedConfig, config_to_dict, parse_recipe, split_config_argument
from mathcode_pile.output_dirs import OverwriteOption, claim_output_dir
from mathcode_pile.paths import REPO_ROOT

logger = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
SUITE_TASKS = ("mathcoder2_gsm8k", "mathcoder2_math", "mathcoder2_sat_math", "mathcoder2_ocw", "mathcoder2_mmlu_math")
#: Grader dataset name of each generative task (MMLU-Math is scored by log-likelihood inside lm-eval).
GRADED_TASKS = {
    "mathcoder2_gsm8k": "gsm8k",
    "mathcoder2_math": "math",
    "mathcoder2_sat_math": "sat_math",
    "mathcoder2_ocw": "ocw",
}
EMBEDDED_MODEL_ALIASES = ("smollm2", "embedded")
Backend = Literal["hf", "vllm", "local-completions"]


@dataclass
class EvalSuiteConfig(ValidatedConfig, OverwriteOption):
    """One evaluation run of the MathCoder2 suite (recipe keys and ``--key value`` overrides)."""

    model: str = field(
        default="",
        metadata={"help": "Model folder or Hub id; 'smollm2' = the embedded model; the served model's name for "
                  "local-completions."},
    )  # fmt: skip
    backend: Backend = field(default="hf", metadata={"help": "hf, vllm or local-completions (needs base_url)."})
    tasks: list[str] = field(
        default_factory=lambda: ["mathcoder2"],
        metadata={"help": "lm-eval tasks or groups from evaluation/tasks (default: the whole mathcoder2 suite)."},
    )
    limit: int | None = field(default=None, metadata={"help": "Score only the first N problems of each task."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of <name>_test.jsonl[.gz] test sets; default: the sets bundled with the project; "
            "'hub' reads the Hub datasets."
        },
    )
    output_dir: str | None = field(default=None, metadata={"help": "Default: outputs/eval/<model name>."})
    batch_size: int = field(default=8, metadata={"help": "Generation batch size of hf and vllm."})
    device: str | None = field(default=None, metadata={"help": "hf device; default cuda when available, else cpu."})
    base_url: str | None = field(
        default=None, metadata={"help": "Server root for local-completions, e.g. http://127.0.0.1:8000."}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer for local-completions (default: the model when it is a folder)."}
    )
    num_concurrent: int = field(default=1, metadata={"help": "Parallel requests for local-completions."})
    tokenized_requests: bool = field(
        default=False,
        metadata={"help": "local-completions: send token ids, not text (vLLM takes both, llama.cpp only text)."},
    )
    num_fewshot: int | None = field(
        default=None,
        metadata={"help": "Shots for every few-shot task instead of the suite's 4 (MMLU-Math stays 0-shot)."},
    )
    max_gen_toks: int | None = field(
        default=None, metadata={"help": "Cap on generated tokens for every generative task (default: per task)."}
    )
    max_length: int | None = field(default=None, metadata={"help": "Context length given to the backend."})
    model_args: str = field(default="", metadata={"help": "Extra lm-eval model_args, e.g. 'dtype=bfloat16'."})
    paper_model: str | None = field(
        default=None,
        metadata={"help": "Paper family to compare with, e.g. Llama-3-8B (default: guessed from the model name)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise RecipeError("model is required: a model folder, a Hub id, or 'smollm2'")
        if self.backend == "local-completions" and not self.base_url:
            raise RecipeError("backend local-completions needs base_url (the server's root URL)")
        for name in ("batch_size", "num_concurrent"):
            if getattr(self, name) < 1:
                raise RecipeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise RecipeError(f"num_fewshot must be >= 0 when given, got {self.num_fewshot}")
        for name in ("limit", "max_gen_toks", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise RecipeError(f"{name} must be >= 1 when given, got {value}")
        if self.data_dir is not None and self.data_dir != HUB:
            self.data_dir = str(_find_data_dir(self.data_dir))
        if self.paper_model is not None:
            try:
                paper_family_by_name(self.paper_model)
            except ValueError as exc:
                raise RecipeError(str(exc)) from exc


def _find_data_dir(data_dir: str) -> Path:
    """``data_dir`` as given, or relative to the repository root (so recipes work from any directory)."""
    path = Path(data_dir)
    if path.is_dir():
        return path.resolve()
    from_root = REPO_ROOT / path
    if not path.is_absolute() and from_root.is_dir():
        return from_root.resolve()
    raise RecipeError(f"data_dir not found: {data_dir}")


def resolve_model(model: str) -> str:
    """A loadable model reference: the embedded alias becomes its converted folder, anything else is kept."""
    if model.lower() in EMBEDDED_MODEL_ALIASES:
        from mathcode_pile.llm.embedded import convert_embedded_to_safetensors

        return str(convert_embedded_to_safetensors())
    return model


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def build_model_args(config: EvalSuiteConfig, model_ref: str) -> tuple[str, dict[str, Any]]:
    """lm-eval model name and model_args for the configured backend."""
    if config.backend == "hf":
        import torch

        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        args: dict[str, Any] = {
            "pretrained": model_ref,
            "device": device,
            # CPU matmuls in bf16 are slow and lossy; keep fp32 there and the checkpoint's own dtype on GPUs
            "dtype": "float32" if device == "cpu" else "auto",
        }
    elif config.backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise RecipeError("backend vllm needs vLLM on a GPU machine: pip install vllm")
        args = {"pretrained": model_ref, "dtype": "auto", "gpu_memory_utilization": 0.9}
    else:
        base_url = (config.base_url or "").rstrip("/")
        tokenizer = config.tokenizer or (model_ref if Path(model_ref).is_dir() else config.model)
        args = {
            "model": model_ref if not Path(model_ref).is_dir() else config.model,
            "base_url": base_url if base_url.endswith("/completions") else f"{base_url}/v1/completions",
            "tokenizer": tokenizer,
            "tokenizer_backend": "huggingface",
            "num_concurrent": config.num_concurrent,
            "max_retries": 3,
            "tokenized_requests": config.tokenized_requests,
        }
    if config.max_length is not None:
        args["max_length"] = config.max_length
    for item in filter(None, (part.strip() for part in config.model_args.split(","))):
        key, separator, value = item.partition("=")
        if not separator:
            raise RecipeError(f"model_args entry '{item}' is not key=value")
        args[key.strip()] = value.strip()
    return config.backend, args


def display_name(model: str) -> str:
    """The name tables and folders use: a folder's own name, or the Hub id / alias as given."""
    reference = model.rstrip("/")
    return Path(reference).name if Path(reference).is_dir() else reference


def default_output_dir(model: str, folder: str = "eval") -> Path:
    """``outputs/<folder>/<model name>``: ``eval`` for this suite, ``eval_tir`` / ``eval_cot`` for the post-training
    evaluations."""
    return Path("outputs") / folder / re.sub(r"[^A-Za-z0-9._-]+", "_", display_name(model))


def run_lm_eval(config: EvalSuiteConfig, model_ref: str) -> dict[str, Any]:
    """Call ``lm_eval.simple_evaluate`` on the suite's tasks and return its results (samples included)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    metadata = {"data_dir": config.data_dir} if config.data_dir else {}  # no data_dir: the bundled sets
    task_manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata)
    backend, model_args = build_model_args(config, model_ref)
    logger.info("lm-eval: backend=%s tasks=%s limit=%s data=%s", backend, config.tasks, config.limit,
                config.data_dir or "bundled test sets")  # fmt: skip
    results = simple_evaluate(
        model=backend,
        model_args=model_args,
        tasks=list(config.tasks),
        # one prompt per request for servers (llama.cpp's takes no prompt lists); parallelism is num_concurrent
        batch_size=1 if backend == "local-completions" else config.batch_size,
        limit=config.limit,
        num_fewshot=config.num_fewshot,
        task_manager=task_manager,
        gen_kwargs={"max_gen_toks": config.max_gen_toks} if config.max_gen_toks else None,
        log_samples=True,
        bootstrap_iters=1000,
    )
    if results is None:
        raise RuntimeError("lm-eval returned no results (not the rank-0 process)")
    return results


def sample_records(task: str, samples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-problem records: the prediction, the answer the grader extracted from it, the gold and the verdict."""
    records = []
    for sample in samples:
        doc = sample.get("doc", {})
        record: dict[str, Any] = {"task": task, "doc_id": sample.get("doc_id"), "answer": doc.get("answer")}
        responses = sample.get("filtered_resps") or []
        if task in GRADED_TASKS:
            prediction = responses[0] if responses else None
            result = grade(prediction, doc["answer"], dataset=GRADED_TASKS[task])
            record.update(prediction=prediction, extracted=result.extracted, grade_reason=result.reason)
        else:
            loglikelihoods = [float(response[0]) for response in responses]
            if loglikelihoods:
                best = max(range(len(loglikelihoods)), key=loglikelihoods.__getitem__)
                record["prediction"] = "ABCD"[best] if best < 4 else str(best)
            record["loglikelihoods"] = loglikelihoods
        record["correct"] = bool(sample.get("acc"))
        records.append(record)
    return records


def check_samples_cover_scores(results: Mapping[str, Any], scores: Sequence[BenchmarkScore]) -> None:
    """Every scored task must leave its per-problem samples: a score nobody can inspect is not written.

    A score's count must also match its samples, so a table never shows more problems than ``samples/`` holds.
    """
    samples = results.get("samples", {})
    problems = []
    for score in scores:
        task = TASK_PREFIX + score.benchmark
        if len(samples.get(task) or []) != score.n:
            problems.append(f"{task}: {score.n} scored, {len(samples.get(task) or [])} sample(s)")
    if problems:
        raise RuntimeError(
            f"lm-eval did not return the per-problem samples of every scored task ({'; '.join(problems)})"
        )


def find_unscorable_tasks(results: Mapping[str, Any]) -> dict[str, str]:
    """Log-likelihood tasks whose every option scored exactly 0: the backend returned no prompt log-probabilities.

    llama.cpp's OpenAI server, for one, answers ``echo`` requests without them; lm-eval then ranks four zeros and
    always picks option A. Such a score is an artefact, so it is reported as missing instead.
    """
    unscorable = {}
    for task, samples in results.get("samples", {}).items():
        if task in GRADED_TASKS or not samples:
            continue
        if all(float(response[0]) == 0.0 for sample in samples for response in sample.get("filtered_resps") or []):
            unscorable[task] = "the backend returned no prompt log-probabilities; use --backend hf or vllm"
    return unscorable


def _family_for(config: EvalSuiteConfig) -> PaperFamily | None:
    if config.paper_model:
        return paper_family_by_name(config.paper_model)
    return find_paper_family(config.model)


def write_outputs(config: EvalSuiteConfig, results: Mapping[str, Any], output_dir: Path) -> str:
    """Write results.json, results.md and samples/*.jsonl; returns the markdown table."""
    unscored = find_unscorable_tasks(results)
    for task, reason in unscored.items():
        logger.error("%s: not scored: %s", task, reason)
    scores = scores_from_lm_eval(results, skip=unscored)
    if not scores and not unscored:
        raise RuntimeError(f"no mathcoder2 task results among {sorted(results.get('results', {}))}")
    check_samples_cover_scores(results, scores)
    family = _family_for(config)
    table = render_results_table(
        scores, display_name(config.model), family=family, limit=config.limit, unscored=unscored
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "samples").mkdir(exist_ok=True)
    for task, samples in sorted(results.get("samples", {}).items()):
        lines = [json.dumps(record, ensure_ascii=False, default=str) for record in sample_records(task, samples)]
        (output_dir / "samples" / f"{task}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    payload = {key: value for key, value in results.items() if key != "samples"}
    payload["mathcode"] = {
        "suite": "mathcoder2",
        "run": config_to_dict(config),
        "scores": save_scores(scores),
        "unscored": unscored,
        "paper_family": family.base_name if family else None,
    }
    (output_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    (output_dir / "results.md").write_text(table, encoding="utf-8")
    return table


def run_suite(config: EvalSuiteConfig) -> tuple[Path, str]:
    """Evaluate, write every output and return (output folder, markdown table)."""
    model_ref = resolve_model(config.model)
    if config.backend != "local-completions" and _is_offline() and not Path(model_ref).is_dir():
        logger.warning("HF_HUB_OFFLINE is set and '%s' is not a local folder: loading it will likely fail", model_ref)
    output_dir = claim_output_dir(
        config.output_dir if config.output_dir is not None else default_output_dir(config.model),
        "output_dir",
        "mathcode-eval run",
        config.overwrite,
        "mathcode-eval run",
    )
    results = run_lm_eval(config, model_ref)
    table = write_outputs(config, results, output_dir)
    logger.info("results written to %s", output_dir)
    return output_dir, table


def parse_eval_args(argv: Sequence[str]) -> EvalSuiteConfig:
    """``[--config recipe.yaml] [--key value ...]``: recipe values, overridden by the command line."""
    recipe, arguments = split_config_argument(argv)
    (config,) = parse_recipe([EvalSuiteConfig], recipe, arguments)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    from mathcode_pile.log_setup import setup_logging

    arguments = list(sys.argv[1:] if argv is None else argv)
    if "-h" in arguments or "--help" in arguments:
        from transformers import HfArgumentParser

        print("mathcode-eval run [--config RECIPE.yaml] [--key value ...]: recipe keys, overridable here:\n")
        HfArgumentParser([EvalSuiteConfig]).print_help()
        return 0
    setup_logging()
    try:
        config = parse_eval_args(arguments)
        output_dir, table = run_suite(config)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table)
    print(f"results: {output_dir / 'results.json'}  table: {output_dir / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
