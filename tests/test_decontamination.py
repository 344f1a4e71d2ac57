"""Decontamination: planted benchmark questions are all found, clean math documents are kept, the CLI and the stage
report what they removed and why."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mathcode_pile.cli import main
from mathcode_pile.decontamination import NgramIndex, TestItem, load_test_items, normalize_tokens
from mathcode_pile.decontamination.benchmarks import BenchmarkError, looks_like_hub_id
from mathcode_pile.decontamination.run import build_index, decontaminate_file
from mathcode_pile.file_commands import FileCommandError
from mathcode_pile.jsonl import read_jsonl
from mathcode_pile.paths import SAMPLES_DIR, benchmark_file
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import DROP_COLUMN, StageContext
from mathcode_pile.stages.decontaminate import DecontaminateConfig, DecontaminateStage

PLANTS_PER_BENCHMARK = 25
MIN_ITEM_TOKENS = 8


@pytest.fixture(scope="module")
def items(benchmarks_dir: Path) -> list[TestItem]:
    return load_test_items([str(benchmarks_dir)])


@pytest.fixture(scope="module")
def index(items: list[TestItem]) -> NgramIndex:
    return NgramIndex.build(items, ngram_size=13, min_item_tokens=MIN_ITEM_TOKENS)


def clean_math_documents() -> list[str]:
    """Bundled AQuA-RAT problems with worked solutions and TheoremQA questions: math text that is not a test item."""
    docs = []
    for line in (SAMPLES_DIR / "aqua_rat.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        docs.append(f"{row['question']}\n\n{row['rationale']}")
    for line in (SAMPLES_DIR / "theoremqa.jsonl").read_text(encoding="utf-8").splitlines():
        docs.append(json.loads(line)["Question"])
    return docs


def disguise(text: str, rng: random.Random) -> str:
    """What copying a question into a web page does to it: case, whitespace and ``$`` delimiters change."""
    case = rng.choice([str.upper, str.lower, str.title, lambda s: s])
    text = case(text)
    text = re.sub(r" ", lambda _: rng.choice([" ", "  ", "\n", " \t "]), text)
    if "$" in text:
        return text.replace("$", rng.choice(["", "$$", " $ "]))
    return re.sub(r"(\d+)", lambda m: f"${m.group(1)}$" if rng.random() < 0.5 else m.group(1), text)


def test_normalization_ignores_case_whitespace_punctuation_and_latex_delimiters() -> None:
    assert normalize_tokens("Janet’s ducks lay $16$ eggs!") == normalize_tokens("janet's  DUCKS\nlay 16 eggs")
    assert normalize_tokens(r"\(x^2\) and \[y\]") == ["x", "2", "and", "y"]
    assert normalize_tokens("ＦＵＬＬ width ２") == ["full", "width", "2"]


def test_every_planted_question_is_found_and_clean_math_is_kept(items: list[TestItem], index: NgramIndex) -> None:
    rng = random.Random(0)
    by_benchmark: dict[str, list[TestItem]] = {}
    for item in items:
        if len(normalize_tokens(item.text)) >= MIN_ITEM_TOKENS:
            by_benchmark.setdefault(item.benchmark, []).append(item)
    assert len(by_benchmark) >= 8  # GSM8K, MATH, SAT, OCW, MMLU-STEM, SVAMP, OlympiadBench, ...
    clean = clean_math_documents()
    assert len(clean) >= 500
    plants = []
    for _, candidates in sorted(by_benchmark.items()):
        for item in rng.sample(candidates, min(PLANTS_PER_BENCHMARK, len(candidates))):
            host = rng.choice(clean)
            cut = rng.randrange(len(host))
            plants.append((item, f"{host[:cut]}\n{disguise(item.text, rng)}\n{host[cut:]}"))
    assert len(plants) >= 200

    missed = [(item.benchmark, item.test_id) for item, doc in plants if index.find(doc) is None]
    assert missed == []  # recall 100%
    wrong = [
        (item.benchmark, index.find(doc).benchmark)
        for item, doc in plants
        if index.find(doc).benchmark != item.benchmark
    ]
    assert len(wrong) <= len(plants) // 100  # an n-gram may be shared by two benchmarks; the test id is reported

    false_positives = [(doc[:80], index.find(doc)) for doc in clean if index.find(doc) is not None]
    assert len(false_positives) <= 0.005 * len(clean), false_positives


def test_short_items_match_by_containment_and_too_short_items_are_counted() -> None:
    items = [
        TestItem(
            "mathematics", "m-1", "Calculate 127161660 divided by 4238722, to the nearest whole number."
        ),  # 9 tokens
        TestItem("mmlu", "q-7", "Which statement is true?"),  # 4 tokens: too generic to match alone
        TestItem("gsm8k", "g-1", " ".join(f"word{i}" for i in range(20))),
    ]
    index = NgramIndex.build(items, ngram_size=13, min_item_tokens=8)
    match = index.find("Homework: CALCULATE $127161660$ divided  by 4238722 to the nearest whole number! I get 30.")
    assert match is not None and (match.test_id, match.kind) == ("m-1", "containment")
    assert index.find("calculate 127161660 divided by 4238722") is None  # part of a short item is not the item
    assert index.find("Which statement is true? The first one.") is None
    assert index.summary()["mmlu"] == {"items": 1, "indexed": 0, "too_short": 1}
    long_match = index.find("intro " + " ".join(f"word{i}" for i in range(3, 16)) + " outro")
    assert long_match is not None and long_match.kind == "ngram" and long_match.test_id == "g-1"
    assert index.find(" ".join(f"word{i}" for i in range(3, 15))) is None  # 12 of the 13 tokens


def test_cli_writes_kept_rows_and_a_report_naming_each_test_item(tmp_path: Path, benchmarks_dir: Path, capsys) -> None:
    gsm8k = read_jsonl(benchmark_file(benchmarks_dir, "gsm8k_test"))[5]
    clean = clean_math_documents()[:20]
    docs = [{"id": f"doc-{i}", "text": text, "url": f"https://example.org/{i}"} for i, text in enumerate(clean)]
    docs[7]["text"] += "\n\nSimilar problem: " + gsm8k["question"].upper()
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")

    output = tmp_path / "clean.jsonl"
    gsm8k_file = benchmark_file(benchmarks_dir, "gsm8k_test")
    arguments = ["--input", str(source), "--output", str(output), "--benchmark", str(gsm8k_file)]
    code = main(["decontaminate", *arguments, "--benchmark", str(benchmarks_dir)])
    assert code == 0
    kept = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert [d["id"] for d in kept] == [d["id"] for d in docs if d["id"] != "doc-7"]
    assert kept[0]["url"] == "https://example.org/0"  # every field of a kept row is kept
    report = json.loads((tmp_path / "clean.jsonl.report.json").read_text())
    assert report["removed_docs"] == 1 and report["kept_docs"] == 19 and report["ngram_size"] == 13
    assert report["removed"][0]["doc_id"] == "doc-7"
    assert report["removed"][0]["benchmark"] == "gsm8k" and report["removed"][0]["test_id"] == gsm8k["id"]
    assert report["benchmarks"]["gsm8k"]["removed_docs"] == 1 and report["benchmarks"]["svamp"]["removed_docs"] == 0
    assert "1 removed" in capsys.readouterr().out

    # Parquet in, Parquet out, two worker processes: same decision
    from datasets import Dataset

    Dataset.from_list(docs).to_parquet(str(tmp_path / "docs.parquet"))
    index = build_index([str(benchmark_file(benchmarks_dir, "gsm8k_test"))])
    result = decontaminate_file(tmp_path / "docs.parquet", tmp_path / "clean.parquet", index, num_proc=2)
    assert len(result.removed) == 1
    assert pq.read_table(tmp_path / "clean.parquet").column("id").to_pylist() == [d["id"] for d in kept]


def test_unreadable_input_and_unknown_benchmarks_are_clear_errors(
    tmp_path: Path, benchmarks_dir: Path, capsys
) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": 1, "text": "fine"}\n{"id": 2, "text": oops}\n', encoding="utf-8")
    index = build_index([str(benchmark_file(benchmarks_dir, "sat_math_test"))])
    with pytest.raises(FileCommandError, match=r"docs.jsonl:2: invalid JSON: Expecting value"):
        decontaminate_file(source, tmp_path / "out.jsonl", index, strict=True)
    assert not (tmp_path / "out.jsonl").exists()
    report = decontaminate_file(source, tmp_path / "out.jsonl", index)  # without strict: listed, not written
    assert report.input_docs == 1 and report.to_dict()["errors"] == [
        {"where": "line 2", "error": "invalid JSON: Expecting value (column 19)"}
    ]
    source.write_text('{"id": 1, "body": "no text field"}\n', encoding="utf-8")
    with pytest.raises(FileCommandError, match=r"docs.jsonl:1: missing field 'text'"):
        decontaminate_file(source, tmp_path / "out2.jsonl", index, strict=True)
    assert main(["decontaminate", "--input", str(source), "--output", str(tmp_path / "o.jsonl"),
                 "--benchmark", "no/such-dataset-offline"]) == 2  # fmt: skip
    assert "cannot load benchmark 'no/such-dataset-offline' from the Hub" in capsys.readouterr().err
    assert looks_like_hub_id("openai/gsm8k:main") and not looks_like_hub_id(str(benchmarks_dir))
    bad = tmp_path / "bench_test.jsonl"
    bad.write_text('{"prompt_text": "no question field"}\n', encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"bench_test.jsonl:1: benchmark row has none of the question fields"):
        load_test_items([str(bad)])


def test_stage_drops_with_the_benchmark_as_reason_and_records_the_match(tmp_path: Path, benchmarks_dir: Path) -> None:
    svamp = read_jsonl(benchmark_file(benchmarks_dir, "svamp_test"))[3]
    stage = DecontaminateStage(
        DecontaminateConfig(decontam_benchmarks=[str(benchmark_file(benchmarks_dir, "svamp_test"))]),
        StageContext(work_dir=tmp_path),
    )
    batch = {
        "id": ["a", "b"],
        "text": ["Clean: 2 + 2 = 4.", f"Copied: {svamp['question']}"],
        "source": ["web", "web"],
        "metadata": ["{}", '{"kind": "web"}'],
    }
    out = stage.process_batch(batch)
    assert out[DROP_COLUMN] == [None, "contaminated_svamp"]
    contamination = document_metadata(out["metadata"][1])["contamination"]
    assert contamination["benchmark"] == "svamp" and contamination["test_id"] == "svamp-3"
    assert document_metadata(out["metadata"][1])["kind"] == "web"
    default = DecontaminateStage(DecontaminateConfig(), StageContext(work_dir=tmp_path))
    assert default.config.references() == [str(benchmarks_dir)]


def test_a_late_removal_in_a_large_shard_is_written(tmp_path: Path, benchmarks_dir: Path) -> None:
    """Hundreds of kept rows first, one removal after them, in one work shard: the keep/drop column must hold both."""
    from datasets import Dataset

    from mathcode_pile.runner import run_stage

    svamp = read_jsonl(benchmark_file(benchmarks_dir, "svamp_test"))[0]
    texts = [f"Clean page {i}: {i} + {i} = {2 * i}." for i in range(900)] + [f"Copied: {svamp['question']}"]
    dataset = Dataset.from_dict(
        {
            "id": [f"page-{i}" for i in range(len(texts))],
            "text": texts,
            "source": ["web"] * len(texts),
            "metadata": ["{}"] * len(texts),
        }
    )
    config = DecontaminateConfig(decontam_benchmarks=[str(benchmark_file(benchmarks_dir, "svamp_test"))])
    stage = DecontaminateStage(config, StageContext(work_dir=tmp_path))
    result = run_stage(stage, dataset, "fp", tmp_path / "stage", shard_rows=1000)
    assert result.stats.dropped == {"contaminated_svamp": 1} and len(result.dataset) == 900
