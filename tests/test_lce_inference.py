"""The LCE inference loop against a real model process and the real sandbox.

The model is a scripted TGI server run as its own process on 127.0.0.1 (``tests/scripted_tgi.py``): it writes fixed
LCE blocks and refuses any prompt that strays from its script, so the loop must build every prompt correctly. Code
runs in real sandboxed Python sessions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluation.lce.backends import EndpointBackend
from evaluation.lce.engine import LCEInferenceConfig, LCEInferenceEngine, LCESolution, parse_generation
from mathcode_pile.lce.execution import SandboxSessions, execution_text, neutralize_markers
from mathcode_pile.lce.format import Block
from mathcode_pile.llm import LLMClient, LLMConfig
from mathcode_pile.sandbox import ExecResult
from tests.scripted_tgi import ScriptedServer, launch

STATEFUL = "A shop has 6 boxes of 7 pens. How many pens, plus one spare?"
STATEFUL_SCRIPT = (
    "<|text|>Count the pens first.<|endofblock|>"
    "<|code|>x = 6 * 7\nprint(x)<|endofblock|>"
    "<|code|>while True:\n    pass<|endofblock|>"
    "<|code|>print(x + 1)<|endofblock|>"
    "<|text|>There are $\\boxed{43}$ pens with the spare.<|endofblock|><|endofmessage|>"
)
OTHER = "What is 2 to the power 10?"
OTHER_SCRIPT = (
    "<|code|>print(2 ** 10)<|endofblock|><|code|>print(x)<|endofblock|>"
    "<|text|>It is 1024.<|endofblock|><|endofmessage|>"
)
ANSWER_IN_CODE = "What is 3 times 5?"
ANSWER_IN_CODE_SCRIPT = "<|text|>Multiply.<|endofblock|><|code|>print(3 * 5)<|endofblock|><|endofmessage|>"
LONG = "Add the numbers " + " ".join(str(n) for n in range(1, 120)) + ". What is the total?"
LONG_SCRIPT = "<|text|>" + "Let me add them one by one. " * 40 + "<|endofblock|><|text|>Done.<|endofblock|>"
SCRIPTS = {
    STATEFUL: STATEFUL_SCRIPT,
    OTHER: OTHER_SCRIPT,
    ANSWER_IN_CODE: ANSWER_IN_CODE_SCRIPT,
    LONG: LONG_SCRIPT,
}


@pytest.fixture
def tgi(tmp_path: Path) -> Iterator[ScriptedServer]:
    server = launch(SCRIPTS, tmp_path, "--delay", "0.2")
    yield server
    server.stop()


@pytest.fixture
def openai_style(tmp_path: Path) -> Iterator[ScriptedServer]:
    server = launch(SCRIPTS, tmp_path, "--strip-stops")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sessions() -> Iterator[SandboxSessions]:
    with SandboxSessions(workers=2, timeout_s=1.5, max_output_chars=400) as factory:
        yield factory


def make_engine(
    server: ScriptedServer, sessions: SandboxSessions, mode: str = "text_generation", **overrides: object
) -> LCEInferenceEngine:
    client = LLMClient(LLMConfig(llm_endpoint=server.url, llm_mode=mode, llm_max_retries=0))  # type: ignore[arg-type]
    backend = EndpointBackend(client, context_length=2048, tokenizer=overrides.pop("tokenizer", None))
    config = LCEInferenceConfig(execution_timeout_s=1.5, max_output_chars=400, **overrides)  # type: ignore[arg-type]
    return LCEInferenceEngine(backend, sessions, config)


def kinds_and_contents(solution: LCESolution) -> list[tuple[str, str]]:
    return [(block.kind, block.content.strip()) for block in solution.blocks]


def test_code_blocks_run_state_persists_and_an_infinite_loop_times_out(
    tgi: ScriptedServer, sessions: SandboxSessions
) -> None:
    solution = asyncio.run(make_engine(tgi, sessions).solve(STATEFUL))

    assert solution.finish_reason == "end_of_message", solution.error
    blocks = kinds_and_contents(solution)
    assert [kind for kind, _ in blocks] == [
        "text",
        "code",
        "execution",
        "code",
        "execution",
        "code",
        "execution",
        "text",
    ]
    assert blocks[2] == ("execution", "42")
    assert blocks[4][1].startswith("TimeoutError:") and "keeps its variables" in blocks[4][1]
    assert blocks[6] == ("execution", "43"), "x from the first code block must survive the interrupted loop"
    last_prompt = str(tgi.requests()[-1]["prompt"])
    assert "<|code|>x = 6 * 7\nprint(x)<|endofblock|><|execution|>42<|endofblock|><|code|>while True:" in last_prompt
    assert "<|execution|>43<|endofblock|><|text|>There are" in last_prompt
    params = tgi.requests()[0]["parameters"]
    assert params["stop"] == ["<|endofblock|>", "<|endofmessage|>"] and params["max_new_tokens"] == 512


def test_many_problems_in_flight_each_with_its_own_session(tgi: ScriptedServer, sessions: SandboxSessions) -> None:
    solutions = asyncio.run(make_engine(tgi, sessions).solve_many([OTHER, STATEFUL, ANSWER_IN_CODE]))

    assert [s.question for s in solutions] == [OTHER, STATEFUL, ANSWER_IN_CODE]
    other = kinds_and_contents(solutions[0])
    assert other[1] == ("execution", "1024")
    assert other[3][0] == "execution" and "NameError: name 'x' is not defined" in other[3][1]
    assert kinds_and_contents(solutions[1])[6] == ("execution", "43")
    assert kinds_and_contents(solutions[2])[-1] == ("execution", "15")
    assert max(int(r["in_flight"]) for r in tgi.requests()) >= 2  # type: ignore[call-overload]


def test_servers_that_drop_the_stop_marker_are_read_by_the_grammar(
    openai_style: ScriptedServer, sessions: SandboxSessions
) -> None:
    solution = asyncio.run(make_engine(openai_style, sessions).solve(STATEFUL))
    assert solution.finish_reason == "end_of_message", solution.error
    assert kinds_and_contents(solution)[6] == ("execution", "43")


def test_openai_completions_route_runs_the_same_loop(tgi: ScriptedServer, sessions: SandboxSessions) -> None:
    """``llm_mode='completions'``: vLLM / llama.cpp / SGLang's /v1/completions, which leave the stop marker out."""
    solutions = asyncio.run(make_engine(tgi, sessions, mode="completions").solve_many([STATEFUL, OTHER]))
    assert [s.finish_reason for s in solutions] == ["end_of_message", "end_of_message"], solutions[0].error
    assert kinds_and_contents(solutions[0])[6] == ("execution", "43")
    assert kinds_and_contents(solutions[1])[1] == ("execution", "1024")
    params = tgi.requests()[0]["parameters"]
    assert isinstance(params, dict)
    assert params["stop"] == ["<|endofblock|>", "<|endofmessage|>"] and params["max_tokens"] == 512


def test_chat_mode_is_refused_with_what_to_use_instead(tgi: ScriptedServer) -> None:
    client = LLMClient(LLMConfig(llm_endpoint=tgi.url, llm_mode="chat"))
    with pytest.raises(ValueError, match="llm_mode='completions'"):
        EndpointBackend(client)


@pytest.mark.slow
def test_a_real_llama_cpp_server_answers_the_loop_through_completions(
    embedded_server, sessions: SandboxSessions, tmp_path: Path
) -> None:
    """The embedded model knows no LCE markers, so its first block is malformed; what is checked is the real route:
    the raw prompt (question intact) reaches llama.cpp's /v1/completions and its answer is read against the grammar.
    """
    from mathcode_pile.llm.cache import RequestCache

    cache = RequestCache(tmp_path / "cache.sqlite")
    config = LLMConfig(llm_endpoint=embedded_server.url, llm_mode="completions", llm_model="smollm2-test")
    client = LLMClient(config, cache)
    engine = LCEInferenceEngine(EndpointBackend(client), sessions, LCEInferenceConfig(max_new_tokens_per_block=16))
    solution = asyncio.run(engine.solve(OTHER))
    assert solution.error is None or "LLM request" not in solution.error
    assert solution.finish_reason in {"malformed", "end_of_message", "block_cap", "context_full"}
    # the server's own usage count: the whole prompt arrived (its first answer may be the end token at once)
    assert client.counters["requests"] >= 1 and client.counters["prompt_tokens"] >= len(OTHER.split())
    again = LLMClient(config, cache)
    rerun = asyncio.run(
        LCEInferenceEngine(EndpointBackend(again), sessions, LCEInferenceConfig(max_new_tokens_per_block=16)).solve(
            OTHER
        )
    )
    assert again.counters["requests"] == 0 and again.counters["cache_hits"] >= 1
    assert rerun.finish_reason == solution.finish_reason
    cache.close()


def test_block_cap_ends_the_solution(tgi: ScriptedServer, sessions: SandboxSessions) -> None:
    solution = asyncio.run(make_engine(tgi, sessions, max_blocks=3).solve(STATEFUL))
    assert solution.finish_reason == "block_cap"
    assert len(solution.blocks) == 3


def test_the_question_is_never_cut_when_the_context_fills(
    tgi: ScriptedServer, sessions: SandboxSessions, tiny_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    from mathcode_pile.lce.tokens import add_lce_tokens

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    add_lce_tokens(tokenizer)
    engine = make_engine(tgi, sessions, tokenizer=tokenizer)
    prompt_tokens = len(
        tokenizer(f"<|system|><|text|><|endofblock|><|endofmessage|><|user|><|text|>{LONG}")["input_ids"]
    )
    engine.backend.context_length = prompt_tokens + 200  # type: ignore[attr-defined]
    solution = asyncio.run(engine.solve(LONG))

    assert solution.finish_reason == "context_full"
    requests = tgi.requests()
    assert requests, "the model was never asked"
    for request in requests:
        assert f"<|user|><|text|>{LONG}<|endofblock|>" in str(request["prompt"])
        params = request["parameters"]
        assert isinstance(params, dict)
        sent = len(tokenizer(str(request["prompt"]))["input_ids"])
        assert sent + int(params["max_new_tokens"]) <= prompt_tokens + 200


@pytest.mark.parametrize(
    ("text", "stopped", "block", "ends", "malformed"),
    [
        ("<|text|>Plan.<|endofblock|>", True, Block("text", "Plan."), False, None),
        ("<|code|>print(1)", True, Block("code", "print(1)"), False, None),  # stop marker left out by the server
        ("", True, None, True, None),  # the model closed the message
        ("<|endofmessage|>", True, None, True, None),
        ("<|text|>Done.<|endofblock|><|endofmessage|>", True, Block("text", "Done."), True, None),
        ("<|code|>x = [1,", False, Block("code", "x = [1,"), False, "code block hit the token cap"),
        ("<|execution|>42<|endofblock|>", True, None, False, "the model wrote an execution block itself"),
        ("no marker at all", True, None, False, "block starts without a block marker"),
        ("<|text|>a<|code|>b<|endofblock|>", True, Block("text", "a"), False, "unexpected <|code|> inside a text"),
    ],
)
def test_generations_are_read_against_the_grammar(
    text: str, stopped: bool, block: Block | None, ends: bool, malformed: str | None
) -> None:
    parsed = parse_generation(text, stopped)
    assert parsed.block == block
    assert parsed.end_of_message is ends
    assert (parsed.malformed is None) if malformed is None else (malformed in str(parsed.malformed))


def test_execution_text_caps_output_and_defuses_markers() -> None:
    long_output = ExecResult("ok", stdout="\n".join(f"line {i}" for i in range(500)))
    text = execution_text(long_output, max_chars=200)
    assert text.startswith("line 0\n") and text.endswith("line 499") and "characters cut" in text
    assert neutralize_markers("print <|code|> and <|endofblock|>") == "print < |code| > and < |endofblock| >"
    error = ExecResult("error", stdout="partial\n", stderr="Traceback ...\nZeroDivisionError: division by zero\n")
    assert execution_text(error, 1000) == "partial\nTraceback ...\nZeroDivisionError: division by zero"


def test_transformers_backend_runs_the_loop_with_a_local_model(
    tiny_model_dir: Path, sessions: SandboxSessions
) -> None:
    from evaluation.lce.backends import TransformersBackend

    backend = TransformersBackend(str(tiny_model_dir), context_length=4096, device="cpu")
    assert backend.context_length == 2048  # capped by the model's positions
    assert not backend.has_markers  # a model without LCE tokens stops on the marker strings
    config = LCEInferenceConfig(max_new_tokens_per_block=6, max_blocks=2)
    solution = asyncio.run(LCEInferenceEngine(backend, sessions, config).solve("What is 1 + 1?"))
    assert solution.counters["generations"] >= 1
    assert solution.finish_reason in ("malformed", "block_cap", "end_of_message", "context_full")


def test_local_batches_match_single_generation_and_respect_each_budget(tiny_model_dir: Path) -> None:
    from evaluation.lce.backends import TransformersBackend

    # a random model rarely opens a block: keep it generating to compare whole sequences
    backend = TransformersBackend(str(tiny_model_dir), device="cpu", max_batch_size=4, stop_malformed_starts=False)
    prompts = ["<|user|><|text|>What is 1 + 1?", "<|user|><|text|>A much longer question about apples and pears?"]
    alone = [backend.generate_batch([(prompt, 6)])[0] for prompt in prompts]
    together = backend.generate_batch([(prompts[0], 6), (prompts[1], 3)])
    assert together[0] == alone[0] and alone[0].text and not alone[0].stopped
    assert alone[1].text.startswith(together[1].text) and len(together[1].text) < len(alone[1].text)

    async def many() -> list[object]:
        return await asyncio.gather(*(backend.generate(prompt, 4) for prompt in prompts * 3))

    backend.batch_sizes.clear()
    asyncio.run(many())
    assert sum(backend.batch_sizes) == 6 and max(backend.batch_sizes) == 4


def test_generations_that_cannot_open_a_block_are_cut_short(tiny_model_dir: Path) -> None:
    from evaluation.lce.backends import TransformersBackend, starts_like_a_block

    assert starts_like_a_block("<|te") and starts_like_a_block("\n<|code|>x = 1") and starts_like_a_block("")
    assert not starts_like_a_block("The answer") and not starts_like_a_block("<|user|>")
    backend = TransformersBackend(str(tiny_model_dir), device="cpu")
    (generation,) = backend.generate_batch([("<|user|><|text|>What is 1 + 1?", 64)])
    tokens = len(backend.tokenizer(generation.text, add_special_tokens=False)["input_ids"])
    assert tokens < 10, "a random model's first tokens cannot open a block: generation must stop early"


def test_evaluation_grades_solutions_from_an_endpoint_and_resumes(tmp_path: Path) -> None:
    """The whole ``evaluation.lce.evaluate`` path: benchmark file, TGI endpoint, sandbox, shared grader, reports."""
    from evaluation.lce.evaluate import main

    server = launch(SCRIPTS, tmp_path)
    try:
        data = tmp_path / "benchmarks"
        data.mkdir()
        rows = [{"question": STATEFUL, "answer": "43"}, {"question": ANSWER_IN_CODE, "answer": 16}]
        (data / "svamp_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        output = tmp_path / "eval"
        argv = ["--model", "scripted", "--llm_endpoint", server.url, "--datasets", "svamp", "--data_dir", str(data),
                "--output_dir", str(output), "--execution_timeout_s", "1.5"]  # fmt: skip
        assert main(argv) == 0
        results = json.loads((output / "results.json").read_text())
        svamp = results["benchmarks"]["svamp"]
        assert (svamp["rows"], svamp["correct"]) == (2, 1)  # 43 is right; the scripted 15 is not the gold 16
        assert svamp["finish_reasons"] == {"end_of_message": 2}
        graded = [
            json.loads(line) for line in (output / "predictions" / "svamp.graded.jsonl").read_text().splitlines()
        ]
        assert [(row["extracted"], row["correct"]) for row in graded] == [("43", True), ("15", False)]
        table = (output / "results.md").read_text()
        assert "| scripted (this run) | - | - | 50.0 (n=2) | - | - | - |" in table
        assert "| MathCoder-CL-7B (CodeLlama), paper | 67.8 | 30.2 | 70.7 | 55.8 | 49.6 | 54.8 |" in table

        requests_before = len(server.requests())
        assert main(argv) == 0  # a rerun finds every problem solved and asks the model nothing
        assert len(server.requests()) == requests_before
    finally:
        server.stop()


def test_missing_benchmark_files_name_where_they_were_expected(tmp_path: Path) -> None:
    from evaluation.lce.benchmarks import BenchmarkError, load_benchmark

    with pytest.raises(BenchmarkError, match=r"SimulEq: .*simuleq_test.jsonl not found"):
        load_benchmark("simuleq", data_dir=tmp_path)
    (tmp_path / "svamp_test.jsonl").write_text('{"question": "q"}\n', encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"svamp_test.jsonl: line 1: field 'answer' is missing"):
        load_benchmark("svamp", data_dir=tmp_path)


def test_bundled_benchmarks_load_with_their_own_field_names(benchmarks_dir: Path) -> None:
    from evaluation.lce.benchmarks import BENCHMARKS, load_benchmark

    for name in BENCHMARKS:
        problems = load_benchmark(name, limit=3, data_dir=benchmarks_dir)
        assert len(problems) == 3 and all(p.question.strip() and p.answer != "" for p in problems)
