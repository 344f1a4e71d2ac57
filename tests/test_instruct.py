"""LCE instruction data: teacher solutions, problem interpolation and self-distillation, end to end.

The model is the scripted server (``tests/scripted_tgi.py``) run as its own process and reached through the
OpenAI-compatible ``/v1/completions`` route; code runs in the real sandbox and answers are graded by the real grader.
The last test runs the demo recipe against the embedded llama.cpp model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from datasets import load_dataset

from mathcode_pile.card import validate_dataset_card
from mathcode_pile.config import RecipeError
from mathcode_pile.instruct.build import agreed_answer, build_instruct, parse_instruct_configs
from mathcode_pile.instruct.interpolation import SeedProblem, interpolation_pairs, parse_new_problem
from mathcode_pile.jsonl import read_jsonl
from mathcode_pile.lce.dataset import conversation_from_row
from mathcode_pile.lce.format import serialize_conversation
from mathcode_pile.ledger import Ledger
from mathcode_pile.paths import benchmark_file
from tests.build_helpers import kill_when, lines_in
from tests.fault_proxy import FaultProxy
from tests.scripted_tgi import ScriptedServer, launch

APPLES = "Tom has 3 boxes of 4 apples. How many apples does he have?"
PENS = "A pen costs 2 dollars. How much do 5 pens cost?"
PAGES = "Sara reads 6 pages a day for 7 days. How many pages does she read?"
BIRDS = "There are 9 birds on a wire and 4 fly away. How many birds are left?"
SQUARES = "Find the sum of the squares of the first 10 positive integers."
CRATES = "A farmer packs 12 crates with 15 apples each and sells a third of the apples. How many apples are sold?"
NOTEBOOKS = "A notebook costs 3 dollars and a pencil costs half as much. What do 8 notebooks and 6 pencils cost?"


def solution(code: str, answer: str) -> str:
    """A scripted LCE answer without execution blocks (the loop adds them from the real sandbox)."""
    return (
        f"<|text|>Compute it.<|endofblock|><|code|>{code}<|endofblock|>"
        f"<|text|>The answer is $\\boxed{{{answer}}}$.<|endofblock|><|endofmessage|>"
    )


def scripts(contaminated: str) -> dict[str, object]:
    return {
        APPLES: solution("print(3 * 4)", "12"),
        PENS: solution("print(2 * 5 + 1)", "11"),  # gold 10: the teacher is wrong
        PAGES: solution("print(6 * 7)", "42"),
        BIRDS: solution("print(9 - 4)", "5"),
        SQUARES: solution("print(sum(i * i for i in range(1, 11)))", "385"),
        CRATES: solution("print(12 * 15 // 3)", "60"),  # the same for every sample: kept
        NOTEBOOKS: [solution("print(8 * 3 + 6 * 1.5)", "33"), solution("print(8 * 3 + 6 * 3)", "42")],  # disagree
        "__interpolations__": [
            ["3 boxes of 4 apples", CRATES],
            ["A pen costs 2 dollars", NOTEBOOKS],
            ["Sara reads 6 pages", contaminated],  # a GSM8K test question
            ["9 birds on a wire", APPLES],  # a seed problem again
        ],
    }


def write_recipe(tmp_path: Path) -> Path:
    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {"question": APPLES, "answer": 12, "level": "easy"},
        {"question": PENS, "answer": 10, "level": "easy"},
        {"question": PAGES, "answer": 42, "level": "easy"},
        {"question": BIRDS, "answer": 5, "level": "easy"},
    ]
    seeds.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    hard = tmp_path / "hard.jsonl"
    hard.write_text(json.dumps({"problem": SQUARES, "solution": "It is $\\boxed{385}$."}) + "\n", encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""dataset_name: Test Instruct
output_dir: {tmp_path / "out"}
seeds:
  - {{name: easy, path: {seeds}, text_field: question}}
  - {{name: hard, path: {hard}, text_field: problem}}
answer_fields: {{easy: answer, hard: solution}}
hard_sources: [hard]
interpolation_problems: 4
distill_samples: 2
execution_timeout_s: 3
sandbox_workers: 1
llm_max_retries: 0
""",
        encoding="utf-8",
    )
    return recipe


@pytest.fixture
def scripted(tmp_path: Path, benchmarks_dir: Path) -> Iterator[ScriptedServer]:
    contaminated = read_jsonl(benchmark_file(benchmarks_dir, "gsm8k_test"))[0]["question"]
    folder = tmp_path / "server"
    folder.mkdir()
    server = launch(scripts(contaminated), folder)
    yield server
    server.stop()


def stats_by_step(output: Path) -> dict[str, dict[str, object]]:
    return {step["stage"]: step for step in json.loads((output / "stats.json").read_text())}


def test_teacher_interpolation_and_self_distillation_make_a_loadable_dataset(
    scripted: ScriptedServer, tmp_path: Path, benchmarks_dir: Path
) -> None:
    overrides = ["--llm_endpoint", scripted.url, "--decontam_benchmarks", str(benchmarks_dir)]
    configs = parse_instruct_configs(write_recipe(tmp_path), overrides)
    output = build_instruct(configs)

    steps = stats_by_step(output)
    assert (steps["teacher_solutions"]["rows_kept"], steps["teacher_solutions"]["dropped"]) == (4, {"wrong_answer": 1})
    assert steps["interpolate_problems"]["rows_kept"] == 2
    assert steps["interpolate_problems"]["dropped"] == {"contaminated_gsm8k": 1, "duplicate": 1}
    assert (steps["self_distill"]["rows_kept"], steps["self_distill"]["dropped"]) == (1, {"answers_disagree": 1})

    dataset = load_dataset(str(output), split="train")
    assert sorted(dataset["source"]) == ["distilled"] + ["teacher/easy"] * 3 + ["teacher/hard"]
    card = (output / "README.md").read_text()
    validate_dataset_card(card, output)
    assert "## How it was made" in card and "mathcode-pile instruct --config" in card

    by_question = {row["messages"][1]["content"][0]["content"]: row for row in dataset}
    crates = by_question[CRATES]
    assert [part["type"] for part in crates["messages"][2]["content"]] == ["text", "code", "execution", "text"]
    assert crates["messages"][2]["content"][2]["content"] == "60"  # the sandbox's real output
    assert crates["messages"][0] == {"role": "system", "content": [{"type": "text", "content": ""}]}
    assert json.loads(crates["metadata"])["samples_agreeing"] == 2
    assert by_question[SQUARES]["messages"][2]["content"][2]["content"] == "385"
    for row in dataset:  # what `make train-lce` reads: both columns hold the same conversation
        assert serialize_conversation(conversation_from_row({"messages": row["messages"]})) == row["text"]

    requests = scripted.requests()
    teacher_prompts = [r["prompt"] for r in requests if APPLES in r["prompt"] and "New problem" not in r["prompt"]]
    assert teacher_prompts and all("A bakery sells muffins" in prompt for prompt in teacher_prompts)
    distill = [r["parameters"] for r in requests if NOTEBOOKS in r["prompt"] and "New problem" not in r["prompt"]]
    assert {p["seed"] for p in distill} == {0, 1} and {p["temperature"] for p in distill} == {0.7}

    # a rerun (after the output is lost) asks the model nothing and writes the same bytes
    before = len(requests)
    parquet = sorted((output / "data").glob("*.parquet"))
    first_bytes = [path.read_bytes() for path in parquet]
    for path in (output / "data").iterdir():
        path.unlink()
    build_instruct(parse_instruct_configs(write_recipe(tmp_path), overrides))
    assert len(scripted.requests()) == before
    assert [path.read_bytes() for path in parquet] == first_bytes


def test_kill_minus_9_mid_build_then_rerun_pays_nothing_twice_and_matches_an_uninterrupted_build(
    benchmarks_dir: Path, tmp_path: Path, repo_root: Path
) -> None:
    contaminated = read_jsonl(benchmark_file(benchmarks_dir, "gsm8k_test"))[0]["question"]
    (tmp_path / "server").mkdir()
    server = launch(scripts(contaminated), tmp_path / "server", "--delay", "0.2")  # a model takes time
    try:
        builds = {}
        for name in ("reference", "killed"):
            (tmp_path / name).mkdir()
            recipe = write_recipe(tmp_path / name)
            builds[name] = [sys.executable, "-m", "mathcode_pile.cli", "instruct", "--config", str(recipe),
                            "--decontam_benchmarks", str(benchmarks_dir)]  # fmt: skip
        subprocess.run([*builds["reference"], "--llm_endpoint", server.url], check=True, capture_output=True)
        with FaultProxy(server.url) as proxy:
            command = [*builds["killed"], "--llm_endpoint", proxy.url]
            ledger = tmp_path / "killed" / "out_work" / "01_teacher.jsonl"
            kill_when(command, lambda: lines_in(ledger) >= 2)
            paid_before_kill = set(proxy.completed_bodies)
            assert paid_before_kill and not (tmp_path / "killed" / "out" / "data").exists()
            subprocess.run(command, check=True, capture_output=True, cwd=repo_root)
        # every answer paid for before the kill came from the cache afterwards, and none was paid twice
        assert all(proxy.completed_bodies[body] == 1 for body in paid_before_kill)
        assert sum(proxy.completed_bodies.values()) == len(proxy.completed_bodies)
    finally:
        server.stop()
    reference = sorted((tmp_path / "reference" / "out" / "data").glob("*.parquet"))
    resumed = sorted((tmp_path / "killed" / "out" / "data").glob("*.parquet"))
    assert [p.name for p in reference] == [p.name for p in resumed]
    assert [p.read_bytes() for p in reference] == [p.read_bytes() for p in resumed]
    assert len(load_dataset(str(tmp_path / "killed" / "out"), split="train")) == 5


def test_ledger_drops_a_torn_line_and_items_marked_for_retry(tmp_path: Path) -> None:
    path = tmp_path / "step.jsonl"
    ledger = Ledger(path)
    ledger.add("a", {"value": 1})
    ledger.add("b", {"error": "server down", "retry": True})
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "c", "val')  # killed mid-write
    again = Ledger(path)
    assert "a" in again and again["a"]["value"] == 1
    assert "b" not in again and "c" not in again
    assert path.read_text().count("\n") == 1  # rewritten without the torn line


@pytest.mark.parametrize(
    ("response", "problem", "reason"),
    [
        (
            " A train travels 60 km in 1.5 hours. What is its average speed?",
            "A train travels 60 km in 1.5 hours. What is its average speed?",
            None,
        ),
        (
            "A box holds 12 eggs. How many eggs are in 7 boxes?\nSolution: 84",
            "A box holds 12 eggs. How many eggs are in 7 boxes?",
            None,
        ),
        (
            "A box holds 12 eggs. How many in 7 boxes?\n\nProblem C: more",
            "A box holds 12 eggs. How many in 7 boxes?",
            None,
        ),
        ("   ", None, "empty_problem"),
        ("Hi.", None, "empty_problem"),
        ("What is 2 + 2 when <|code|> runs?", None, "contains_markers"),
    ],
)
def test_new_problems_are_cut_from_the_response(response: str, problem: str | None, reason: str | None) -> None:
    assert parse_new_problem(response) == (problem, reason)


def test_pairs_are_distinct_deterministic_and_capped() -> None:
    easy = [SeedProblem(f"e{i}", f"easy {i}", "1", "easy", False) for i in range(3)]
    hard = [SeedProblem(f"h{i}", f"hard {i}", "1", "hard", True) for i in range(2)]
    pairs = interpolation_pairs(easy, hard, 5, seed=1)
    assert len({(e.id, h.id) for e, h in pairs}) == 5
    assert all(not e.hard and h.hard for e, h in pairs)
    assert pairs == interpolation_pairs(easy, hard, 5, seed=1)
    assert len(interpolation_pairs(easy, hard, 100, seed=1)) == 6 and interpolation_pairs(easy, [], 3, 1) == []


def test_agreement_needs_every_sample_to_reach_the_same_answer() -> None:
    assert agreed_answer(["so $\\boxed{1/2}$", "The answer is 0.5"]) == ("1/2", None)
    assert agreed_answer(["$\\boxed{3}$", "$\\boxed{4}$"]) == (None, "answers_disagree")
    assert agreed_answer(["$\\boxed{3}$", None]) == (None, "no_answer")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("answer_fields: {}\n", "no gold-answer field for seed source"),
        ("answer_fields: {easy: answer, hard: solution}\nhard_sources: [medium]\n", "not seed sources"),
        ("answer_fields: {easy: answer, hard: solution}\nllm_mode: chat\n", "llm_mode must be completions"),
        ("answer_fields: {easy: answer, hard: solution}\ninterpolation_problems: 2\n", "both easier and harder"),
    ],
)
def test_recipe_mistakes_are_named(tmp_path: Path, extra: str, message: str) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"question": APPLES, "answer": 12}) + "\n", encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    body = f"seeds:\n  - {{name: easy, path: {seeds}, text_field: question}}\n"
    body += f"  - {{name: hard, path: {seeds}, text_field: question}}\n{extra}"
    recipe.write_text(body, encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        parse_instruct_configs(recipe)


def test_the_recipes_write_raw_prompts_and_name_their_harder_seeds(repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)  # every recipe is parsed by tests/test_recipes.py; these are the instruct specifics
    for recipe in sorted((repo_root / "recipes" / "mathcode_instruct").glob("*.yaml")):
        configs = parse_instruct_configs(recipe)
        assert configs.llm.llm_mode == "completions" and configs.instruct.hard_sources


@pytest.mark.slow
def test_the_demo_runs_on_the_embedded_model_and_reports_every_drop(
    embedded_server, tmp_path: Path, repo_root: Path, monkeypatch
) -> None:
    """The tiny embedded model writes no LCE blocks: every step runs and each drop is counted with its reason."""
    monkeypatch.chdir(repo_root)
    overrides = ["--llm_endpoint", embedded_server.url, "--llm_model", "smollm2-test", "--output_dir",
                 str(tmp_path / "demo"), "--interpolation_problems", "1", "--distill_samples", "1",
                 "--max_new_tokens_per_block", "24", "--interpolation_max_new_tokens", "32"]  # fmt: skip
    output = build_instruct(parse_instruct_configs(repo_root / "recipes/mathcode_instruct/demo.yaml", overrides))
    steps = stats_by_step(output)
    assert steps["seed_problems"]["rows_kept"] == 5
    teacher = steps["teacher_solutions"]
    assert teacher["rows_in"] == 5 and teacher["rows_kept"] + sum(teacher["dropped"].values()) == 5
    assert steps["interpolate_problems"]["rows_in"] == 1
    if not (output / "data").exists():
        assert "No row was kept" in (output / "README.md").read_text()
