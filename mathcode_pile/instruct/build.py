"""``mathcode-pile instruct``: seed problems → teacher solutions → new problems → self-distilled solutions → dataset.

Each step records its items in a :class:`~mathcode_pile.ledger.Ledger` as they finish and every model call
goes through the build's request cache, so a killed build resumes where it stopped and pays for no request twice.
Grading runs in the main thread after each step's solving (math-verify times out with ``signal.alarm``). Every step
reports items in, kept and dropped by reason; the card and ``stats.json`` carry them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset

from mathcode_pile.card import CardProse, CardSection
from mathcode_pile.config import RecipeError, parse_recipe, read_recipe
from mathcode_pile.instruct.config import InstructConfig
from mathcode_pile.instruct.interpolation import (
    STOP_SEQUENCES,
    SeedProblem,
    interpolation_pairs,
    interpolation_prompt,
    parse_new_problem,
)
from mathcode_pile.lce.format import Block, build_conversation, serialize_conversation, to_chat_messages
from mathcode_pile.ledger import Ledger
from mathcode_pile.llm.client import LLMClient, LLMConfig, LLMRequestError
from mathcode_pile.stages.decontaminate import DecontaminateConfig
from mathcode_pile.stats import StageStats

logger = logging.getLogger(__name__)

#: The worked example the teacher sees before each problem: a model not trained on the LCE format learns the block
#: layout from it (the saved conversations do not contain it).
TEACHER_EXAMPLE_QUESTION = (
    "A bakery sells muffins at $3 each and cookies at $1.25 each. Ana buys 4 muffins and 6 cookies. "
    "How many dollars does she pay?"
)
TEACHER_EXAMPLE_SOLUTION = (
    Block("text", "Ana pays 4 times $3 for the muffins and 6 times $1.25 for the cookies; add the two."),
    Block("code", "muffins = 4 * 3\ncookies = 6 * 1.25\nprint(muffins + cookies)"),
    Block("execution", "19.5"),
    Block("text", "Ana pays $\\boxed{19.5}$ dollars."),
)

INSTRUCT_PROSE = CardProse(
    description=(
        "{name} holds math solutions in MathCoder's LCE format (natural language, code and execution results "
        "interleaved, arXiv:2310.03731), for supervised fine-tuning with `training/sft_lce.py`. Every code block was "
        "run in a sandbox and its real output follows it. Solutions of seed problems were written by a teacher model "
        "and kept only when their final answer matches the gold one; new problems were written between an easier "
        "and a harder seed problem, checked against benchmark test sets, and solved several times by sampling, "
        "keeping a solution only when all samples agree."
    ),
    build_command="mathcode-pile instruct --config {recipe}",
    citation="""@inproceedings{wang2024mathcoder,
  title={MathCoder: Seamless Code Integration in {LLM}s for Enhanced Mathematical Reasoning},
  author={Wang, Ke and Ren, Houxing and Zhou, Aojun and Lu, Zimu and Luo, Sichun and Shi, Weikang and Zhang, Renrui and Song, Linqi and Zhan, Mingjie and Li, Hongsheng},
  booktitle={The Twelfth International Conference on Learning Representations},
  year={2024}
}""",  # noqa: E501
    tags=("math", "code", "lce", "tool-integrated-reasoning", "mathcode-instruct"),
)


@dataclass
class InstructConfigs:
    instruct: InstructConfig
    inference: Any  # evaluation.lce.engine.LCEInferenceConfig (imported lazily: it pulls the evaluation package)
    llm: LLMConfig
    #: The pile's decontamination settings (``decontam_*`` keys), applied to the new problems.
    decontam: DecontaminateConfig
    recipe: str


def config_classes() -> list[type]:
    from evaluation.lce.engine import LCEInferenceConfig

    return [InstructConfig, LCEInferenceConfig, LLMConfig, DecontaminateConfig]


def parse_instruct_configs(recipe_path: str | Path | None, overrides: Sequence[str] = ()) -> InstructConfigs:
    """The recipe plus ``--key value`` overrides; the model continues raw LCE prompts (default ``completions``)."""
    overrides = list(overrides)
    if not any(arg.split("=")[0] == "--llm_mode" for arg in overrides):
        recipe_keys = {} if recipe_path is None else read_recipe(recipe_path)
        if "llm_mode" not in recipe_keys:
            overrides = ["--llm_mode", "completions", *overrides]
    instruct, inference, llm, decontam = parse_recipe(config_classes(), recipe_path, overrides)
    if llm.llm_mode == "chat":
        raise RecipeError(
            f"{recipe_path}: llm_mode must be completions (an OpenAI-compatible /v1/completions route) or "
            "text_generation (TGI): LCE solutions are written by continuing a raw prompt block by block"
        )
    return InstructConfigs(instruct, inference, llm, decontam, str(recipe_path or "command line"))


# --- seed problems -------------------------------------------------------------------------------------------------


def load_seed_problems(
    config: InstructConfig, recipe: str, stage_dir: Path
) -> tuple[list[SeedProblem], list[StageStats]]:
    """Seed problems with their gold answers; a row without one is a counted drop (``no_gold_answer``)."""
    from mathcode_pile.sources import document_metadata, load_sources, parse_sources

    specs = parse_sources(config.seed_specs(), recipe)
    dataset, load_stats, _ = load_sources(specs, stage_dir)
    problems: list[SeedProblem] = []
    dropped: Counter[str] = Counter()
    hard = set(config.hard_sources)
    for row in dataset.to_list():
        answer = document_metadata(row["metadata"]).get(config.answer_fields[row["source"]])
        if answer is None or not str(answer).strip():
            dropped["no_gold_answer"] += 1
            logger.warning("seed %s has no gold answer in '%s'", row["id"], config.answer_fields[row["source"]])
            continue
        problems.append(SeedProblem(row["id"], row["text"], str(answer), row["source"], row["source"] in hard))
    stats = StageStats(stage="seed_problems", rows_in=len(dataset), rows_kept=len(problems), dropped=dropped)
    return problems, [load_stats, stats]


# --- solving -------------------------------------------------------------------------------------------------------


def blocks_of(row: dict[str, Any]) -> tuple[Block, ...]:
    return tuple(Block(block["type"], block["content"]) for block in row["blocks"])


def unusable_reason(row: dict[str, Any] | None) -> str | None:
    """Why a recorded solution cannot be training data whatever its answer (None when it can)."""
    if row is None:
        return "error"
    if row["finish_reason"] != "end_of_message":
        return row["finish_reason"]  # malformed, block_cap, context_full, error
    if not any(block["type"] == "code" for block in row["blocks"]):
        return "no_code"
    return None


def make_engine(
    client: LLMClient,
    sessions: Any,
    inference: Any,
    temperature: float = 0.0,
    seed: int = 0,
    system_prompt: str | None = None,
    prompt_prefix: str = "",
) -> Any:
    from evaluation.lce.backends import EndpointBackend
    from evaluation.lce.engine import LCEInferenceEngine

    backend = EndpointBackend(client, inference.context_length, temperature=temperature, seed=seed)
    if system_prompt is not None:
        inference = dataclasses.replace(inference, system_prompt=system_prompt)
    return LCEInferenceEngine(backend, sessions, inference, prompt_prefix=prompt_prefix)


def teacher_prompt_prefix(system_prompt: str) -> str:
    example = build_conversation(TEACHER_EXAMPLE_QUESTION, system=system_prompt, solution=TEACHER_EXAMPLE_SOLUTION)
    return serialize_conversation(example)


def run_teacher(
    problems: Sequence[SeedProblem], client: LLMClient, sessions: Any, configs: InstructConfigs, path: Path
) -> tuple[list[dict[str, Any]], StageStats]:
    """Teacher solutions of the seed problems; per problem the first correct one is kept."""
    from evaluation.grading import grade
    from evaluation.lce.solving import solve_into_ledger

    config, started = configs.instruct, time.perf_counter()
    ledger = Ledger(path)
    samples = config.teacher_samples
    prefix = teacher_prompt_prefix(config.teacher_system_prompt)
    kept: dict[str, dict[str, Any]] = {}
    first_reason: dict[str, str] = {}
    written = 0
    for sample in range(samples):  # a further sample only for the problems still without a correct solution
        todo = [problem for problem in problems if problem.id not in kept]
        if not todo:
            break
        engine = make_engine(
            client,
            sessions,
            configs.inference,
            config.teacher_temperature,
            sample,
            config.teacher_system_prompt,
            prefix,
        )
        items = [(f"{p.id}#{sample}", p.question, {}) for p in todo]
        results = asyncio.run(solve_into_ledger(engine, items, ledger))
        written += len(todo)
        for problem in todo:
            row = results[f"{problem.id}#{sample}"]
            reason = unusable_reason(row)
            if reason is None:
                assert row is not None
                graded = grade(row["prediction"], problem.answer, dataset=problem.source)
                reason = None if graded.correct else ("no_answer" if graded.extracted is None else "wrong_answer")
            if reason is not None:
                first_reason.setdefault(problem.id, reason)
                continue
            assert row is not None
            facts = {"answer": problem.answer, "seed_id": problem.id, "sample": sample}
            source = f"teacher/{problem.source}"
            kept[problem.id] = training_row(f"teacher-{problem.id}", problem.question, row, source, facts)
    dropped = Counter(first_reason[problem.id] for problem in problems if problem.id not in kept)
    stats = StageStats(
        stage="teacher_solutions",
        rows_in=len(problems),
        rows_kept=len(kept),
        dropped=dropped,
        seconds=time.perf_counter() - started,
        extra=Counter({"solutions_tried": written}),
    )
    return [kept[problem.id] for problem in problems if problem.id in kept], stats


def training_row(row_id: str, question: str, solved: dict[str, Any], source: str, facts: dict[str, Any]) -> dict:
    """One dataset row: MathCoder's conversation (empty system turn) as typed-part messages and as LCE text."""
    conversation = build_conversation(question, system="", solution=blocks_of(solved))
    return {
        "id": row_id,
        "messages": to_chat_messages(conversation),
        "text": serialize_conversation(conversation),
        "source": source,
        "metadata": json.dumps({"kind": source.split("/")[0], **facts}, ensure_ascii=False),
    }


# --- problem interpolation -----------------------------------------------------------------------------------------


async def _write_problems(client: LLMClient, prompts: Sequence[tuple[str, str]], max_new_tokens: int, ledger: Ledger):
    async def write_one(key: str, prompt: str) -> None:
        try:
            response = await client.generate(prompt=prompt, max_new_tokens=max_new_tokens, stop=STOP_SEQUENCES)
        except LLMRequestError as error:
            ledger.add(key, {"error": str(error), "retry": True})
            return
        ledger.add(key, {"response": response.text})

    await asyncio.gather(*(write_one(key, prompt) for key, prompt in prompts if key not in ledger))


def run_interpolation(
    problems: Sequence[SeedProblem], client: LLMClient, configs: InstructConfigs, path: Path
) -> tuple[list[dict[str, str]], StageStats]:
    """New problems between an easier and a harder seed; kept when well formed, new and uncontaminated."""
    from mathcode_pile.decontamination.normalize import normalize_text
    from mathcode_pile.decontamination.run import build_index

    config, decontam, started = configs.instruct, configs.decontam, time.perf_counter()
    easier = [p for p in problems if not p.hard]
    harder = [p for p in problems if p.hard]
    pairs = interpolation_pairs(easier, harder, config.interpolation_problems, config.seed)
    ledger = Ledger(path)
    prompts = [(f"{e.id}|{h.id}", interpolation_prompt(e.question, h.question)) for e, h in pairs]
    asyncio.run(_write_problems(client, prompts, config.interpolation_max_new_tokens, ledger))
    index = None
    if pairs:
        index = build_index(
            decontam.references(),
            decontam.decontam_ngram_size,
            decontam.decontam_min_item_tokens,
            decontam.decontam_include_solutions,
        )
    seen = {normalize_text(p.question) for p in problems}
    kept: list[dict[str, str]] = []
    dropped: Counter[str] = Counter()
    for (easy, hard), (key, _) in zip(pairs, prompts, strict=True):
        row = ledger.rows.get(key)
        if row is None:
            dropped["llm_error"] += 1
            continue
        problem, reason = parse_new_problem(row["response"])
        if problem is not None and normalize_text(problem) in seen:
            reason = "duplicate"
        if problem is not None and reason is None and index is not None:
            match = index.find(problem)
            if match is not None:
                reason = f"contaminated_{match.benchmark}"
        if reason is not None:
            dropped[reason] += 1
            continue
        assert problem is not None
        seen.add(normalize_text(problem))
        kept.append({"key": key, "question": problem, "easier_id": easy.id, "harder_id": hard.id})
    stats = StageStats(
        stage="interpolate_problems",
        rows_in=len(pairs),
        rows_kept=len(kept),
        dropped=dropped,
        seconds=time.perf_counter() - started,
    )
    return kept, stats


# --- self-distillation ---------------------------------------------------------------------------------------------


def agreed_answer(predictions: Sequence[str | None]) -> tuple[str | None, str | None]:
    """The answer every sampled solution reaches, or (None, reason): ``no_answer`` or ``answers_disagree``."""
    from evaluation.grading import answers_match, extract_answer

    answers = [extract_answer(prediction) for prediction in predictions]
    if any(answer is None for answer in answers):
        return None, "no_answer"
    first = answers[0]
    assert first is not None
    for other in answers[1:]:
        assert other is not None
        if not answers_match(other, first)[0]:
            return None, "answers_disagree"
    return first, None


def run_distillation(
    new_problems: Sequence[dict[str, str]],
    client: LLMClient,
    sessions: Any,
    configs: InstructConfigs,
    path: Path,
    by_teacher: bool = False,
) -> tuple[list[dict[str, Any]], StageStats]:
    """Solve each new problem ``distill_samples`` times; keep the first solution when all answers agree.

    An LCE model (``distill_llm_endpoint``) solves as it was trained: empty system turn, no example. When the teacher
    stands in for it (``by_teacher``) it gets the teacher's system turn and worked example.
    """
    config, started = configs.instruct, time.perf_counter()
    from evaluation.lce.solving import solve_into_ledger

    ledger = Ledger(path)
    results: dict[str, dict[str, Any]] = {}
    samples = config.distill_samples
    system = config.teacher_system_prompt if by_teacher else None
    prefix = teacher_prompt_prefix(config.teacher_system_prompt) if by_teacher else ""
    for sample in range(samples):
        engine = make_engine(client, sessions, configs.inference, config.distill_temperature, sample, system, prefix)
        items = [(f"{p['key']}#{sample}", p["question"], {}) for p in new_problems]
        results.update(asyncio.run(solve_into_ledger(engine, items, ledger)))
    kept: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for problem in new_problems:
        rows = [results.get(f"{problem['key']}#{sample}") for sample in range(samples)]
        reason = next((r for r in map(unusable_reason, rows) if r is not None), None)
        answer = None
        if reason is None:
            answer, reason = agreed_answer([row["prediction"] for row in rows if row is not None])
        if reason is not None:
            dropped[reason] += 1
            continue
        first = rows[0]
        assert first is not None
        facts = {"answer": answer, "easier_id": problem["easier_id"], "harder_id": problem["harder_id"],
                 "samples_agreeing": samples}  # fmt: skip
        kept.append(training_row(f"distilled-{problem['key']}", problem["question"], first, "distilled", facts))
    stats = StageStats(
        stage="self_distill",
        rows_in=len(new_problems),
        rows_kept=len(kept),
        dropped=dropped,
        seconds=time.perf_counter() - started,
        extra=Counter({"solutions_written": samples * len(new_problems)}),
    )
    return kept, stats


# --- the build -----------------------------------------------------------------------------------------------------


def distill_client_config(configs: InstructConfigs, teacher: LLMClient) -> LLMConfig | None:
    """The self-distilling model's endpoint, when it is not the teacher's."""
    config = configs.instruct
    if not config.distill_llm_endpoint:
        return None
    model = config.distill_llm_model or teacher.config.llm_model
    return dataclasses.replace(configs.llm, llm_endpoint=config.distill_llm_endpoint, llm_model=model)


def check_instruct_recipe(configs: InstructConfigs) -> None:
    """What only the whole recipe can tell, before the first step: the card's name, the seed sources (templates
    tried on their first rows) and the output folders."""
    from mathcode_pile.output_dirs import check_output_dir, check_separate_dirs
    from mathcode_pile.recipe_checks import check_card_name, check_source_first_rows
    from mathcode_pile.sources import parse_sources

    config, where = configs.instruct, configs.recipe
    check_card_name(config.dataset_name, "dataset_name", where)
    check_output_dir(config.output_dir, "output_dir", where, config.overwrite)
    check_output_dir(config.resolved_work_dir, "work_dir", where, config.overwrite)
    check_separate_dirs(config.output_dir, config.resolved_work_dir, where)
    check_source_first_rows(parse_sources(config.seed_specs(), where), where)


def build_instruct(configs: InstructConfigs, progress: Callable[[str], None] = logger.info) -> Path:
    """Run every step of ``configs`` and write the dataset folder; returns it."""
    from mathcode_pile.assemble import assemble_corpus
    from mathcode_pile.hub import push_folder_to_hub
    from mathcode_pile.lce.execution import SandboxSessions
    from mathcode_pile.llm.cache import RequestCache
    from mathcode_pile.llm.opening import open_llm
    from mathcode_pile.output_dirs import claim_output_dir
    from mathcode_pile.pipeline import check_token_count_tokenizer

    config, inference = configs.instruct, configs.inference
    check_instruct_recipe(configs)
    tokenizer = check_token_count_tokenizer(config.token_count_tokenizer, configs.recipe)
    claim_output_dir(config.output_dir, "output_dir", configs.recipe, config.overwrite, "instruct")
    work_dir = claim_output_dir(config.resolved_work_dir, "work_dir", configs.recipe, config.overwrite, "instruct")
    problems, stats = load_seed_problems(config, configs.recipe, work_dir / "00_seeds")
    progress(f"{len(problems)} seed problem(s) with gold answers")
    sessions = SandboxSessions(config.sandbox_workers, inference.execution_timeout_s, inference.max_output_chars)
    with open_llm(configs.llm, work_dir, needed=True) as teacher, sessions:
        assert teacher is not None
        rows, teacher_stats = run_teacher(problems, teacher, sessions, configs, work_dir / "01_teacher.jsonl")
        progress(f"teacher: {teacher_stats.rows_kept} of {teacher_stats.rows_in} seed problem(s) solved correctly")
        new_problems, interpolation_stats = run_interpolation(
            problems, teacher, configs, work_dir / "02_problems.jsonl"
        )
        progress(f"interpolation: {interpolation_stats.rows_kept} new problem(s) kept")
        distill_config = distill_client_config(configs, teacher)
        distiller = teacher
        if distill_config is not None:
            distiller = LLMClient(distill_config, RequestCache(work_dir / "distill_cache.sqlite"))
        distilled, distill_stats = run_distillation(
            new_problems, distiller, sessions, configs, work_dir / "03_distill.jsonl", by_teacher=distiller is teacher
        )
        progress(f"self-distillation: {distill_stats.rows_kept} solution(s) kept")
        model = teacher.config.llm_model
    stats += [teacher_stats, interpolation_stats, distill_stats]
    output_dir = Path(config.output_dir)
    if not rows and not distilled:
        write_empty_report(output_dir, config.dataset_name, stats)
        if config.push_to_hub:
            raise EmptyDatasetError(f"no row was kept, nothing to push to {config.push_to_hub}: see {output_dir}")
        return output_dir
    dataset = Dataset.from_list(rows + distilled)
    sources = sorted(set(dataset["source"]))
    assemble_corpus(
        dataset,
        stats,
        output_dir,
        pretty_name=config.dataset_name,
        recipe=configs.recipe,
        kinds={source: source.split("/")[0] for source in sources},
        rows_per_shard=config.parquet_rows_per_shard,
        load_target=config.push_to_hub,
        model=model,
        tokenizer=tokenizer,
        sections=[how_it_was_made(configs, teacher_stats, interpolation_stats, distill_stats)],
        prose=INSTRUCT_PROSE,
        component_configs=False,  # one training set: its steps are provenance, not components to ablate
    )
    if config.push_to_hub:
        push_folder_to_hub(
            output_dir, config.push_to_hub, "dataset", private=config.hub_private, dry_run=config.dry_run
        )
    return output_dir


class EmptyDatasetError(RecipeError):
    """No row survived the build: there is nothing to load or publish (reported like a recipe error: exit 2)."""


def write_empty_report(output_dir: Path, name: str, stats: list[StageStats]) -> None:
    """Statistics and a README that says why nothing was kept (``datasets`` cannot load an empty Parquet split).

    The demo's embedded model is far too small to write LCE solutions, so this is what ``make instruct`` gives
    offline: every step ran, and each drop is counted with its reason.
    """
    from mathcode_pile.card_text import markdown_text
    from mathcode_pile.stats import save_stats

    if (output_dir / "data").exists():
        shutil.rmtree(output_dir / "data")  # rows of an earlier build must not pass for this one's
    output_dir.mkdir(parents=True, exist_ok=True)
    save_stats(stats, output_dir / "stats.json")
    lines = [f"# {markdown_text(name)}", "", "No row was kept, so there is no data to load. Every step ran; what each "
             "dropped:", ""]  # fmt: skip
    lines += ["| step | in | kept | dropped by reason |", "|---|---:|---:|---|"]
    for step in stats:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(step.dropped.items()))
        lines.append(f"| {step.stage} | {step.rows_in} | {step.rows_kept} | {reasons} |")
    lines += ["", "A model that writes LCE blocks is needed as the teacher: `--endpoint URL --llm_model NAME`."]
    (output_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.warning("no row was kept: %s lists what each step dropped", output_dir / "README.md")


def how_it_was_made(
    configs: InstructConfigs, teacher: StageStats, interpolation: StageStats, distill: StageStats
) -> CardSection:
    config = configs.instruct
    body = (
        f"- **Teacher solutions**: {teacher.rows_kept:,} of {teacher.rows_in:,} seed problems solved correctly "
        f"({config.teacher_samples} solution(s) written per problem, graded against the gold answer by "
        "`evaluation/grading.py`).\n"
        f"- **Problem interpolation**: {interpolation.rows_kept:,} of {interpolation.rows_in:,} new problems kept "
        f"(written between an easier and a harder seed problem; duplicates and problems sharing a "
        f"{configs.decontam.decontam_ngram_size}-gram with a benchmark test item removed).\n"
        f"- **Self-distillation**: {distill.rows_kept:,} of {distill.rows_in:,} new problems kept, each solved "
        f"{config.distill_samples} times at temperature {config.distill_temperature} and kept only when every "
        "sample reached the same answer.\n\n"
        "Each row holds `messages` (system, user and assistant turns; assistant content as typed `text` / `code` / "
        "`execution` parts, the MathCodeInstruct layout) and the same conversation as LCE `text`. "
        "Train on it with `make train-lce` (`dataset_name:` this folder or its Hub id)."
    )
    return CardSection("How it was made", body)
