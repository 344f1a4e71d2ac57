"""The tool-integrated (TIR) evaluation: the one inference engine with the fenced block syntax, real model processes
and the real sandbox.

The scripted server (``tests/scripted_tgi.py --fences``) writes fixed fenced-Markdown answers and refuses any prompt
that strays from its script, so the loop must render the chat template, stop at the output fence, feed the real
output back and continue exactly where the model left off. The embedded llama.cpp model shows the same loop on a
real model's own code.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluation.lce.backends import EndpointBackend
from evaluation.lce.engine import LCEInferenceConfig, LCEInferenceEngine, LCESolution
from evaluation.lce.solving import prediction_text
from mathcode_pile.lce.execution import SandboxSessions
from mathcode_pile.lce.format import Block
from mathcode_pile.lce.syntax import ChatTemplate, FencedSyntax
from mathcode_pile.llm import LLMClient, LLMConfig
from mathcode_pile.paths import REPO_ROOT
from tests.scripted_tgi import ScriptedServer, launch

TEMPLATE = REPO_ROOT / "training" / "chat_templates" / "user_assistant.jinja"
GENERATION_PROMPT = "Assistant:"
STATEFUL = "A shop has 6 boxes of 7 pens. How many pens, plus one spare?"
STATEFUL_SCRIPT = (
    " Count the pens first.\n```python\nx = 6 * 7\nprint(x)\n```\n```output"
    "Add the spare, reusing x.\n```python\nprint(x + 1)\n```\n```output"
    "There are $\\boxed{43}$ pens with the spare."
)
UNCLOSED = "What is 2 to the power 10?"
UNCLOSED_SCRIPT = " Let me loop.\n```python\nwhile True:\n    pass\n"
LOOPING = "What is 3 times 5?"
LOOPING_SCRIPT = " Check it.\n```python\nprint(3 * 5)\n```\n```output" * 6 + "So it is $\\boxed{15}$."
SCRIPTS = {STATEFUL: STATEFUL_SCRIPT, UNCLOSED: UNCLOSED_SCRIPT, LOOPING: LOOPING_SCRIPT}


@pytest.fixture(scope="module")
def chat_tokenizer(converted_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted_model_dir)
    tokenizer.chat_template = TEMPLATE.read_text(encoding="utf-8")
    return tokenizer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ScriptedServer]:
    started = launch(SCRIPTS, tmp_path, "--fences", GENERATION_PROMPT, "--delay", "0.1")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def sessions() -> Iterator[SandboxSessions]:
    with SandboxSessions(workers=2, timeout_s=1.5, max_output_chars=400) as factory:
        yield factory


def make_engine(server: ScriptedServer, sessions: SandboxSessions, tokenizer: Any, mode: str) -> LCEInferenceEngine:
    client = LLMClient(LLMConfig(llm_endpoint=server.url, llm_mode=mode, llm_max_retries=0))  # type: ignore[arg-type]
    syntax = FencedSyntax(ChatTemplate(tokenizer))
    backend = EndpointBackend(client, context_length=2048, tokenizer=tokenizer, syntax=syntax)
    config = LCEInferenceConfig(execution_timeout_s=1.5, max_output_chars=400, max_code_calls=4)
    return LCEInferenceEngine(backend, sessions, config, syntax=syntax)


def kinds_and_contents(solution: LCESolution) -> list[tuple[str, str]]:
    return [(block.kind, block.content.strip()) for block in solution.blocks]


@pytest.mark.parametrize("mode", ["text_generation", "completions"])
def test_code_runs_its_output_is_fed_back_and_state_persists(
    server: ScriptedServer, sessions: SandboxSessions, chat_tokenizer: Any, mode: str
) -> None:
    solution = asyncio.run(make_engine(server, sessions, chat_tokenizer, mode).solve(STATEFUL))

    assert solution.finish_reason == "end_of_message", solution.error
    assert kinds_and_contents(solution) == [
        ("text", "Count the pens first."),
        ("code", "x = 6 * 7\nprint(x)"),
        ("execution", "42"),
        ("text", "Add the spare, reusing x."),
        ("code", "print(x + 1)"),
        ("execution", "43"),  # x survived from the first block: one session per problem
        ("text", "There are $\\boxed{43}$ pens with the spare."),
    ]
    assert solution.counters["code_calls"] == 2 and solution.counters["generations"] == 3
    prompts = [str(request["prompt"]) for request in server.requests()]
    assert prompts[0] == f"User: {STATEFUL}\n\nAssistant:", "the chat template writes the prompt"
    assert prompts[-1].endswith(
        "Assistant: Count the pens first.\n```python\nx = 6 * 7\nprint(x)\n```\n```output\n42\n```\n"
        "Add the spare, reusing x.\n```python\nprint(x + 1)\n```\n```output\n43\n```\n"
    )
    parameters = server.requests()[0]["parameters"]
    assert isinstance(parameters, dict) and parameters["stop"] == ["```output"]
    assert prediction_text(solution) == "There are $\\boxed{43}$ pens with the spare."


def test_an_unclosed_code_block_and_the_call_cap_end_as_no_answer(
    server: ScriptedServer, sessions: SandboxSessions, chat_tokenizer: Any
) -> None:
    unclosed, looping = asyncio.run(
        make_engine(server, sessions, chat_tokenizer, "text_generation").solve_many([UNCLOSED, LOOPING])
    )
    assert unclosed.finish_reason == "unclosed_code" and "never closed" in str(unclosed.error)
    assert unclosed.counters["code_calls"] == 0, "code in an open fence never runs"
    assert looping.finish_reason == "call_cap" and looping.counters["code_calls"] == 4
    assert [b.content for b in looping.blocks if b.kind == "execution"] == ["15"] * 4
    assert prediction_text(unclosed) is None and prediction_text(looping) is None


@pytest.mark.parametrize(
    ("text", "stopped", "code", "end", "failure"),
    [
        ("Plan.\n```python\nprint(1)\n```\n```output", True, "print(1)", False, None),  # TGI keeps the stop
        ("Plan.\n```python\nprint(1)\n```\n", True, "print(1)", False, None),  # servers that strip it, or EOS
        ("So it is $\\boxed{1}$.", True, None, True, None),
        ("", True, None, True, None),
        ("Plan.\n```python\nwhile True:", True, None, False, "unclosed_code"),
        ("Plan.\n```python\nwhile True:", False, None, False, "unclosed_code"),
        ("A long story that goes on", False, None, False, "token_cap"),
        ("```python\nprint(1)\n```\nThen I explain it.", True, None, True, None),  # code shown, not run
    ],
)
def test_generations_are_read_against_the_fenced_grammar(
    text: str, stopped: bool, code: str | None, end: bool, failure: str | None
) -> None:
    step = FencedSyntax(render_chat=None).read_generation(text, stopped)
    assert (step.code, step.end_of_message, step.failure) == (code, end, failure)
    if code is not None:
        assert step.prompt_text.endswith("```\n") and "```output" not in step.prompt_text


def test_chain_of_thought_mode_never_runs_code() -> None:
    syntax = FencedSyntax(render_chat=None, execute=False)
    assert syntax.stop_strings == ()
    step = syntax.read_generation("```python\nprint(1)\n```\nSo $\\boxed{1}$.", True)
    assert step.code is None and step.end_of_message and step.blocks == (Block("text", step.blocks[0].content),)


def write_gsm8k(folder: Path, rows: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gsm8k_test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


def test_eval_tir_grades_and_writes_what_make_eval_writes(
    server: ScriptedServer, tmp_path: Path, converted_model_dir: Path
) -> None:
    """The whole command on an endpoint: bundled-style test file, chat template, sandbox, the one grader, outputs."""
    from evaluation.results_table import load_scores, render_table_from_results
    from evaluation.tir_eval import main

    data = write_gsm8k(
        tmp_path / "data",
        [
            {"question": STATEFUL, "answer": "#### 43"},
            {"question": UNCLOSED, "answer": "#### 1024"},
            {"question": LOOPING, "answer": "#### 15"},
        ],
    )
    output = tmp_path / "eval_tir"
    argv = ["--model", "scripted-llama-3-8b", "--backend", "endpoint", "--llm_endpoint", server.url,
            "--llm_mode", "text_generation", "--tokenizer", str(converted_model_dir), "--chat_template_path",
            str(TEMPLATE), "--datasets", "gsm8k", "--data_dir", str(data), "--output_dir", str(output),
            "--execution_timeout_s", "1.5"]  # fmt: skip
    assert main(argv) == 0

    results = json.loads((output / "results.json").read_text())
    assert results["results"] == {"mathcoder2_gsm8k": {"alias": "mathcoder2_gsm8k", "acc,none": 1 / 3}}
    assert results["n-samples"] == {"mathcoder2_gsm8k": {"original": 3, "effective": 3}}
    assert results["n-shot"] == {"mathcoder2_gsm8k": 0}
    block = results["mathcode"]
    assert block["suite"] == "mathcoder2_tir" and block["paper_family"] == "Llama-3-8B"
    assert block["paper_post_training"] == "tir" and block["post_training"] is None
    assert block["benchmarks"]["gsm8k"]["finish_reasons"] == {"call_cap": 1, "end_of_message": 1, "unclosed_code": 1}
    (score,) = load_scores(output / "results.json")
    assert (score.benchmark, score.correct, score.n, score.shots) == ("gsm8k", 1, 3, 0)
    samples = [json.loads(line) for line in (output / "samples" / "mathcoder2_gsm8k.jsonl").read_text().splitlines()]
    assert [(s["extracted"], s["correct"], s["grade_reason"]) for s in samples] == [
        ("43", True, "exact"),
        (None, False, "no_answer"),
        (None, False, "no_answer"),
    ]
    table = (output / "results.md").read_text()
    assert "| GSM8K | 0 | 3 | 33.3 (" in table
    assert "Llama-3-8B + NuminaMath-TIR (paper)" in table and "MathCoder2-Llama-3-8B + NuminaMath-TIR (paper)" in table
    assert table.startswith(render_table_from_results(output / "results.json"))

    asked = len(server.requests())
    assert main(argv) == 0  # a rerun finds every problem solved and asks the model nothing
    assert len(server.requests()) == asked


def test_eval_cot_runs_the_same_prompts_without_execution(
    server: ScriptedServer, tmp_path: Path, converted_model_dir: Path
) -> None:
    from evaluation.tir_eval import main

    data = write_gsm8k(tmp_path / "data", [{"question": STATEFUL, "answer": "43"}])
    output = tmp_path / "eval_cot"
    argv = ["--model", "scripted", "--mode", "cot", "--backend", "endpoint", "--llm_endpoint", server.url,
            "--tokenizer", str(converted_model_dir), "--chat_template_path", str(TEMPLATE), "--datasets", "gsm8k",
            "--data_dir", str(data), "--output_dir", str(output)]  # fmt: skip
    assert main(argv) == 0
    (request,) = server.requests()
    assert request["prompt"] == f"User: {STATEFUL}\n\nAssistant:" and "stop" not in request["parameters"]
    results = json.loads((output / "results.json").read_text())
    assert results["mathcode"]["suite"] == "mathcoder2_cot"
    assert results["mathcode"]["benchmarks"]["gsm8k"]["blocks"] == {"generations": 1, "text_blocks": 1}
    (sample,) = [json.loads(line) for line in (output / "samples" / "mathcoder2_gsm8k.jsonl").read_text().splitlines()]
    assert sample["correct"] and [block["type"] for block in sample["blocks"]] == ["text"]


def test_a_missing_endpoint_or_tokenizer_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from evaluation.tir_eval import main

    assert main(["--model", "x", "--backend", "endpoint"]) == 2
    assert "needs --llm_endpoint" in capsys.readouterr().err
    argv = ["--model", str(tmp_path / "no-such-model"), "--datasets", "gsm8k", "--output_dir", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "name a loadable one with --tokenizer" in capsys.readouterr().err


@pytest.mark.slow
def test_the_embedded_llama_cpp_model_writes_code_that_runs_and_is_graded(
    embedded_server: Any, sessions: SandboxSessions, converted_model_dir: Path, tmp_path: Path
) -> None:
    """SmolLM2 in its own chat template, shown one worked example: its ```python block runs in the sandbox, the
    output goes back into the prompt, the model continues, and the answer is graded."""
    from transformers import AutoTokenizer

    from evaluation.grading import grade
    from evaluation.tir_eval import WORKED_EXAMPLE_SYSTEM_PROMPT
    from mathcode_pile.llm.cache import RequestCache

    tokenizer = AutoTokenizer.from_pretrained(converted_model_dir)
    syntax = FencedSyntax(ChatTemplate(tokenizer))
    config = LLMConfig(llm_endpoint=embedded_server.url, llm_mode="completions", llm_model="smollm2-test")
    client = LLMClient(config, RequestCache(tmp_path / "cache.sqlite"))
    backend = EndpointBackend(client, context_length=2048, tokenizer=tokenizer, syntax=syntax)
    system = WORKED_EXAMPLE_SYSTEM_PROMPT
    inference = LCEInferenceConfig(max_new_tokens_per_block=120, max_code_calls=2, system_prompt=system)
    question = "Compute 2 to the power 10."
    solution = asyncio.run(LCEInferenceEngine(backend, sessions, inference, syntax=syntax).solve(question))

    assert solution.error is None or "LLM request" not in solution.error
    executions = [block.content for block in solution.blocks if block.kind == "execution"]
    assert solution.counters["code_calls"] >= 1 and executions, solution.to_dict()
    assert executions[0] == "1024", "the model's own `print(2 ** 10)` ran in the sandbox"
    assert solution.counters["generations"] >= 2, "the model went on after its output was fed back"
    assert client.counters["requests"] == solution.counters["generations"]
    prediction = prediction_text(solution)
    result = grade(prediction, "1024", dataset="gsm8k")
    assert (result.reason == "no_answer") == (result.extracted is None)
    assert result.correct == (result.extracted is not None and grade(result.extracted, "1024").correct)
