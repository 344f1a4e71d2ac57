"""The translation stages in the pipeline: parse → verify → render on fixture responses, full builds against the real
embedded server and a TGI-protocol server, and kill -9 during translation without paying any request twice."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from datasets import Dataset, load_dataset

from mathcode_pile.card import validate_dataset_card
from mathcode_pile.config import RecipeError
from mathcode_pile.pipeline import build_pile, parse_build_configs
from mathcode_pile.runner import run_stage
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.parse_computations import ParseComputationsConfig, ParseComputationsStage
from mathcode_pile.stages.render_computations import RenderComputationsConfig, RenderComputationsStage
from mathcode_pile.stages.verify_computations import VerifyComputationsConfig, VerifyComputationsStage
from mathcode_pile.translation.prompt import INSTRUCTION, document_passages
from mathcode_pile.translation.report import FUNNEL, PLOT_PATH
from tests.build_helpers import kill_build_after_shard
from tests.fault_proxy import FaultProxy

FIXTURES = Path(__file__).parent / "fixtures" / "translation"
SAMPLE = "mathcode_pile/data/samples/aqua_rat.jsonl"
TRAIN_DOCUMENT = "A train covers 120 km in 2 hours.\nIts speed is therefore 60 km per hour.\nIt then stops."


def fixture_responses() -> dict[str, str]:
    cases = [json.loads(line) for line in (FIXTURES / "responses.jsonl").read_text(encoding="utf-8").splitlines()]
    return {case["name"]: case["response"] for case in cases}


def test_demo_recipe_runs_the_translation_stages_after_translate(repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    configs = parse_build_configs(repo_root / "recipes" / "mathcode_pile" / "demo.yaml")
    stages = configs.pipeline.stages
    start = stages.index("translate")
    assert stages[start : start + 4] == [
        "translate",
        "parse_computations",
        "verify_computations",
        "render_computations",
    ]
    verify = configs.stage_configs[VerifyComputationsConfig]
    assert verify.verify_timeout_s == 5


# -- the three CPU stages on fixture responses (no model) ----------------------------------------------------------


def fixture_dataset() -> Dataset:
    responses = fixture_responses()
    rows = [
        ("doc-train", TRAIN_DOCUMENT, "trains", responses["correct_code"]),
        ("doc-pens", "7 boxes hold 8 pens each, 54 pens in all.", "trains", responses["wrong_result"]),
        ("doc-shapes", "3 of 4 parts are shaded.\nThe diagonal of a 2 by 2 square.", "shapes",
         responses["symbolic_fraction_and_radical"]),
        ("doc-silent", "Nothing to compute here.", "shapes", "No computations."),
        # snippets that never end or raise: contained, counted, and the rows after them still verified
        ("doc-loop", "Count for ever.", "hard", responses["timeout"]),
        ("doc-broken", "Divide by nothing.", "hard", responses["erroring_code"]),
        ("doc-after", TRAIN_DOCUMENT, "hard", responses["correct_code"]),
        ("doc-code", "import sympy", "code", None),  # a kind the translate stage passes through
    ]  # fmt: skip
    return Dataset.from_dict(
        {
            "id": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "source": [r[2] for r in rows],
            "metadata": [json.dumps({"kind": "code" if r[2] == "code" else "math_text"}) for r in rows],
            "translation_response": [r[3] for r in rows],
        }
    )


def run_chain(tmp_path: Path, **render_config: object) -> tuple[Dataset, list, StageContext]:
    context = StageContext(work_dir=tmp_path / "work", extras={"output_dir": str(tmp_path / "out")})
    stages = [
        ParseComputationsStage(ParseComputationsConfig(), context),
        VerifyComputationsStage(VerifyComputationsConfig(verify_timeout_s=1.5, verify_workers=2), context),
        RenderComputationsStage(RenderComputationsConfig(**render_config), context),  # type: ignore[arg-type]
    ]
    dataset, fingerprint, all_stats = fixture_dataset(), "fixture", []
    for index, stage in enumerate(stages):
        result = run_stage(stage, dataset, fingerprint, tmp_path / "work" / f"{index}_{stage.name}", shard_rows=2)
        dataset, fingerprint = result.dataset, result.fingerprint
        all_stats.append(result.stats)
    return dataset, all_stats, context


def test_parse_verify_render_on_fixture_responses(tmp_path: Path) -> None:
    dataset, stats, _ = run_chain(tmp_path, render_component=None)  # rendered in place
    parse_stats, verify_stats, render_stats = stats
    assert parse_stats.extra["funnel/computations/trains"] == 2
    assert parse_stats.extra["funnel/computations/shapes"] == 3
    assert parse_stats.extra["parse_issue/no_computations"] == 1
    assert verify_stats.extra["funnel/ran_ok/trains"] == 2 and verify_stats.extra["funnel/verified/trains"] == 1
    assert verify_stats.extra["funnel/verified/shapes"] == 3
    assert verify_stats.extra["verify/mismatch"] == 1
    assert verify_stats.extra["exec_status/timeout"] == 1 and verify_stats.extra["exec_status/error"] == 1
    assert verify_stats.extra["funnel/verified/hard"] == 1  # the row after the endless loop and the error
    assert render_stats.extra == {"documents_with_code": 3, "documents_without_code": 5}

    rows = {row["id"]: row for row in dataset}
    assert set(dataset.column_names) == {"id", "text", "source", "metadata"}  # intermediate columns removed
    train = rows["doc-train"]["text"]
    lines = train.splitlines()
    # the step follows the line that states its result (60), and every original line is still there, in order
    step = lines.index("Given: A train covers 120 km in 2 hours. We compute $\\frac{120}{2}$, which gives 60.")
    assert lines[step - 2] == "Its speed is therefore 60 km per hour."
    assert lines[step + 1 : step + 6] == ["```python", "distance = 120", "hours = 2", "print(distance / hours)", "```"]
    assert lines[step + 6 : step + 9] == ["```output", "60.0", "```"]
    assert [line for line in lines if line in TRAIN_DOCUMENT.splitlines()] == TRAIN_DOCUMENT.splitlines()
    assert json.loads(rows["doc-train"]["metadata"])["translation"] == {"computations": 1, "verified": 1}
    assert rows["doc-pens"]["text"] == "7 boxes hold 8 pens each, 54 pens in all."  # nothing verified: unchanged
    assert rows["doc-shapes"]["text"].count("```python") == 3
    assert rows["doc-code"]["text"] == "import sympy"


def test_translated_code_is_a_component_beside_the_unchanged_documents(tmp_path: Path) -> None:
    dataset, stats, context = run_chain(tmp_path)  # the default: render_component translated_code, paired
    assert stats[2].rows_in == 8 and stats[2].rows_kept == 8 + 3  # every document, plus one row per translated one
    assert stats[2].extra == {"documents_with_code": 3, "documents_without_code": 5, "rendered_rows": 3}
    originals = {row["id"]: row for row in dataset if row["source"] != "translated_code"}
    assert originals["doc-train"]["text"] == TRAIN_DOCUMENT  # the basic data keeps its own text
    translated = {row["id"]: row for row in dataset if row["source"] == "translated_code"}
    assert sorted(translated) == [f"doc-{name}#translated_code" for name in ("after", "shapes", "train")]
    in_place, _, _ = run_chain(tmp_path / "in_place", render_component=None)
    rendered_in_place = {row["id"]: row["text"] for row in in_place}
    assert translated["doc-train#translated_code"]["text"] == rendered_in_place["doc-train"]
    metadata = json.loads(translated["doc-train#translated_code"]["metadata"])
    assert metadata["translated_from"] == "doc-train" and metadata["source_component"] == "trains"
    assert metadata["render_mode"] == "paired" and metadata["kind"] == "math_code"
    stage = RenderComputationsStage(RenderComputationsConfig(), context)  # starts an empty funnel
    for stage_stats in stats:
        FUNNEL.record(stage_stats)
    card = stage.card_section(stats[2])
    assert card is not None and "Rendering mode: `paired`" in card.body and "`translated_code`" in card.body


@pytest.mark.parametrize("mode", ["code_only", "steps_only"])
def test_the_card_says_which_render_mode_built_the_corpus(tmp_path: Path, mode: str) -> None:
    dataset, stats, context = run_chain(tmp_path, render_mode=mode)
    translated = [row for row in dataset if row["source"] == "translated_code"]
    assert len(translated) == 3 and all(json.loads(row["metadata"])["render_mode"] == mode for row in translated)
    assert all(("```python" in row["text"]) == (mode == "code_only") for row in translated)
    assert all(("We compute" in row["text"]) == (mode == "steps_only") for row in translated)
    stage = RenderComputationsStage(RenderComputationsConfig(render_mode=mode), context)
    for stage_stats in stats:
        FUNNEL.record(stage_stats)
    card = stage.card_section(stats[2])
    assert card is not None and f"Rendering mode: `{mode}`" in card.body


def test_render_settings_that_cannot_name_a_configuration_are_refused() -> None:
    with pytest.raises(RecipeError, match="render_mode must be one of"):
        RenderComputationsConfig(render_mode="both")
    with pytest.raises(RecipeError, match="cannot name a dataset configuration"):
        RenderComputationsConfig(render_component="translated code")
    assert RenderComputationsConfig(render_component="").render_component is None


def test_untranslated_documents_can_be_dropped_and_the_card_gets_the_funnel(tmp_path: Path) -> None:
    dataset, stats, context = run_chain(tmp_path, render_component=None, render_keep_untranslated=False)
    assert sorted(dataset["id"]) == ["doc-after", "doc-shapes", "doc-train"]
    assert stats[2].dropped == {"no_verified_computation": 5}
    FUNNEL.reset()
    for stage_stats in stats:
        FUNNEL.record(stage_stats)
    section = FUNNEL.section(Path(context.extras["output_dir"]), "Rendered.")
    assert section is not None
    assert "| source | parsed computations | ran OK | verified |" in section.body  # no translate stage ran here
    assert "| shapes | 3 | 3 | 3 |" in section.body and "| trains | 2 | 2 | 1 |" in section.body
    assert "| hard | 3 | 1 | 1 |" in section.body
    assert "| **total** | **8** | **6** | **5** |" in section.body
    assert "mismatch: 1" in section.body and f"]({PLOT_PATH})" in section.body
    assert (Path(context.extras["output_dir"]) / PLOT_PATH).stat().st_size > 1000


def test_resumed_verification_runs_no_snippet_again(tmp_path: Path) -> None:
    run_chain(tmp_path)
    for marker in (tmp_path / "work" / "1_verify_computations").glob("*.done.json"):
        marker.unlink()
    context = StageContext(work_dir=tmp_path / "work")
    stage = VerifyComputationsStage(VerifyComputationsConfig(verify_timeout_s=1.5, verify_workers=2), context)
    parsed = run_stage(
        ParseComputationsStage(ParseComputationsConfig(), context),
        fixture_dataset(),
        "fixture",
        tmp_path / "work" / "0_parse_computations",
        shard_rows=2,
    )
    result = run_stage(stage, parsed.dataset, parsed.fingerprint, tmp_path / "work" / "1_verify_computations", 2)
    assert result.stats.extra["funnel/verified/shapes"] == 3
    assert stage._pool is None  # every sandbox result came from the cache: no worker was even started


# -- whole builds against real servers -----------------------------------------------------------------------------


def write_recipe(tmp_path: Path, docs: int, extra: str = "", shard_rows: int = 2, max_new_tokens: int = 8) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""dataset_name: Translation Test
output_dir: {tmp_path / "out"}
shard_rows: {shard_rows}
sources:
  - name: aqua_rat
    path: {SAMPLE}
    text_template: "{{question}}\\n\\n{{rationale}}"
    max_docs: {docs}
  - name: code
    path: mathcode_pile/data/samples/code
    kind: code
    max_docs: 1
stages: [translate, parse_computations, verify_computations, render_computations]
translate_max_new_tokens: {max_new_tokens}
llm_max_concurrency: 2
verify_timeout_s: 3
verify_workers: 1
{extra}""",
        encoding="utf-8",
    )
    return recipe


class ScriptedTGI:
    """A TGI-protocol server on 127.0.0.1 (``POST /`` and ``/generate``) that answers every translation request
    with a fixed paper-format response and records the raw prompts it was sent."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.prompts: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.prompts.append(body["inputs"])
        details = {"finish_reason": "eos_token", "generated_tokens": 40, "seed": None, "prefill": [], "tokens": []}
        return web.json_response([{"generated_text": self.answer, "details": details}])

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/", self._generate)
        app.router.add_post("/generate", self._generate)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> ScriptedTGI:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.mark.slow
def test_text_generation_route_chat_template_and_chunked_documents(
    converted_model_dir: Path, tmp_path: Path, repo_root: Path, monkeypatch
) -> None:
    monkeypatch.chdir(repo_root)
    answer = fixture_responses()["symbolic_fraction_and_radical"]  # three computations, all correct
    extra = (
        f"llm_mode: text_generation\ntranslate_tokenizer: {converted_model_dir}\n"
        "translate_long_documents: chunk\ntranslate_max_doc_chars: 300\n"
    )
    recipe = write_recipe(tmp_path, docs=2, extra=extra)
    documents = [json.loads(line) for line in (repo_root / SAMPLE).read_text().splitlines()[:2]]
    chunks = [len(document_passages(f"{d['question']}\n\n{d['rationale']}", 300, "chunk")) for d in documents]
    assert max(chunks) > 1  # the test is only meaningful when a document is split
    with ScriptedTGI(answer) as server:
        output = build_pile(parse_build_configs(recipe, ["--llm_endpoint", server.url]))
    assert len(server.prompts) == sum(chunks)  # one request per chunk; the code file sent none
    for prompt in server.prompts:
        assert prompt.startswith("<|im_start|>") and INSTRUCTION in prompt
        assert prompt.rstrip().endswith("<|im_start|>assistant")

    dataset = load_dataset(str(output), split="train")
    assert sorted(dataset["source"]) == ["aqua_rat", "aqua_rat", "code", "translated_code", "translated_code"]
    # the translated code is a configuration of its own: only its rows, as many as the card says
    translated = load_dataset(str(output), "translated_code", split="train").sort("id")
    originals = load_dataset(str(output), "aqua_rat", split="train").sort("id")
    assert [row["id"] for row in translated] == [f"{row['id']}#translated_code" for row in originals]
    assert "| `translated_code` | 2 |" in (output / "README.md").read_text()
    for row, original, pieces in zip(translated, originals, chunks, strict=True):
        # the answers of all chunks are joined: three verified computations per chunk
        assert row["text"].count("```python") == 3 * pieces and "```python" not in original["text"]
        assert json.loads(row["metadata"])["translation"] == {"computations": 3 * pieces, "verified": 3 * pieces}
    stats = {s["stage"]: s for s in json.loads((output / "stats.json").read_text())}
    assert stats["translate"]["extra"]["funnel/documents/aqua_rat"] == 2
    assert "funnel/documents/code" not in stats["translate"]["extra"]
    card = (output / "README.md").read_text()
    validate_dataset_card(card, output)
    assert "## Model-translated mathematical code" in card and (output / PLOT_PATH).is_file()
    total = 3 * sum(chunks)
    assert "| source | documents | with a response | parsed computations | ran OK | verified |" in card
    assert f"| aqua_rat | 2 | 2 | {total} | {total} | {total} |" in card


def build_command(recipe: Path, endpoint: str) -> list[str]:
    return [sys.executable, "-m", "mathcode_pile.cli", "build", "--config", str(recipe), "--endpoint", endpoint]


@pytest.mark.slow
def test_kill_minus_9_during_translation_pays_no_request_twice(
    embedded_server, tmp_path: Path, repo_root: Path, monkeypatch
) -> None:
    monkeypatch.chdir(repo_root)
    # short passages and answers: the test is about which requests are paid, not about what the model says
    recipe = write_recipe(tmp_path, docs=4, shard_rows=1, extra="translate_max_doc_chars: 160\n", max_new_tokens=4)
    stage_dir = tmp_path / "out_work" / "01_translate"
    with FaultProxy(embedded_server.url) as proxy:
        kill_build_after_shard(build_command(recipe, proxy.url), stage_dir, shard=1)
        paid_before_kill = dict(proxy.completed_bodies)
        assert len(paid_before_kill) >= 2 and not (tmp_path / "out" / "data").exists()

        # the rerun (in this process: same code path as the command, without a second interpreter start)
        build_pile(parse_build_configs(recipe, ["--llm_endpoint", proxy.url]))

    # every answer paid for before the kill came from the request cache afterwards: none was paid twice
    assert all(proxy.completed_bodies[body] == 1 for body in paid_before_kill)
    assert sum(proxy.completed_bodies.values()) == len(proxy.completed_bodies) == 4
    output = tmp_path / "out"
    stats = {s["stage"]: s for s in json.loads((output / "stats.json").read_text())}
    assert stats["translate"]["extra"]["funnel/documents/aqua_rat"] == 4
    assert len(load_dataset(str(output), split="train")) == 5  # 4 documents + the code file, none lost
    validate_dataset_card((output / "README.md").read_text(), output)


@pytest.mark.slow
def test_documents_the_endpoint_gave_up_on_are_retried_by_the_next_run(
    embedded_server, tmp_path: Path, repo_root: Path, monkeypatch
) -> None:
    monkeypatch.chdir(repo_root)
    extra = "translate_max_doc_chars: 160\nllm_max_retries: 0\n"
    recipe = write_recipe(tmp_path, docs=4, shard_rows=2, extra=extra, max_new_tokens=4)
    output = tmp_path / "out"
    with FaultProxy(embedded_server.url, script=["503", "503"]) as proxy:
        build_pile(parse_build_configs(recipe, ["--llm_endpoint", proxy.url]))
        first = {s["stage"]: s for s in json.loads((output / "stats.json").read_text())}
        assert first["translate"]["dropped"] == {"llm_error": 2}
        assert len(load_dataset(str(output), split="train")) == 3

        # the endpoint is healthy again: the same command translates the two missing documents and only those
        build_pile(parse_build_configs(recipe, ["--llm_endpoint", proxy.url]))
    assert sum(proxy.completed_bodies.values()) == len(proxy.completed_bodies) == 4  # none paid twice
    stats = {s["stage"]: s for s in json.loads((output / "stats.json").read_text())}
    assert not stats["translate"]["dropped"] and stats["translate"]["rows_kept"] == 5
    # the stages after translate recomputed on the new output instead of reusing shards cut from the old one
    assert stats["render_computations"]["rows_in"] == 5
    assert len(load_dataset(str(output), split="train")) == 5
    validate_dataset_card((output / "README.md").read_text(), output)


@pytest.fixture(autouse=True)
def reset_funnel() -> Iterator[None]:
    """The funnel collects per process: start and end every test with an empty one."""
    FUNNEL.reset()
    yield
    FUNNEL.reset()
