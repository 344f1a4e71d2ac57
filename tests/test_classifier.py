"""fastText math classifier: round 1 on the bundled samples, LLM round 2 through the real embedded server, threshold
and metrics, the filter stage (given model or trained and cached in the work dir), the CLI and the labelling stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from datasets import Dataset

from mathcode_pile.classifier import (
    ClassifierTrainingSettings,
    MathClassifier,
    prepare_text,
    sample_training_sources,
    train_math_classifier,
)
from mathcode_pile.classifier.labeling import parse_topic_label
from mathcode_pile.classifier.train import binary_metrics, choose_threshold
from mathcode_pile.cli import main
from mathcode_pile.llm.client import LLMClient, LLMConfig
from mathcode_pile.llm.embedded import EMBEDDED_GGUF_NAME
from mathcode_pile.runner import run_stage
from mathcode_pile.sources import document_metadata
from mathcode_pile.stages.base import StageContext
from mathcode_pile.stages.classify import ClassifyConfig, MathClassifyStage
from mathcode_pile.stages.llm_label import LLMLabelConfig, LLMLabelStage

WEB_PAGES = [
    ("math", "If 3x + 5 = 20 then 3x = 15 and x = 5; check: 3 * 5 + 5 = 20."),
    ("math", "The probability of two heads in three fair coin flips is $\\binom{3}{2} / 2^3 = 3/8$."),
    ("other", "Our team won the final after extra time; the captain thanked the fans who travelled to support them."),
    ("other", "The museum opens at nine; the guided tour of the medieval rooms starts in the main hall."),
]


@pytest.fixture(scope="module")
def bundled_round1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Round 1 trained on every bundled sample (1,854 math and non-math questions)."""
    positives, negatives = sample_training_sources()
    folder = tmp_path_factory.mktemp("round1")
    metrics = train_math_classifier(ClassifierTrainingSettings(positives, negatives), folder)
    return folder, metrics


def test_prepare_text_keeps_math_symbols_and_drops_sentence_punctuation_and_line_breaks() -> None:
    assert prepare_text("Solve $x^2+1=0$. Why?\nBecause (A) É") == "solve $x^2+1=0$  why  because  a  É"
    assert prepare_text("lone \ud800 surrogate") == "lone   surrogate"  # replaced: fastText takes UTF-8 only


def test_threshold_is_the_lowest_reaching_the_target_precision() -> None:
    scores = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    truth = [True, True, True, False, True, False, False, True]
    threshold, met = choose_threshold(scores, truth, target_precision=0.8)
    assert (threshold, met) == (0.6, True)  # 4 of 5 at >= 0.6; lower thresholds fall under 0.8
    assert binary_metrics(scores, truth, threshold).recall == 0.8
    assert choose_threshold(scores, truth, target_precision=1.0) == (0.8, True)
    assert choose_threshold([0.8, 0.9], [False, True], target_precision=1.0) == (0.9, True)
    # no threshold is precise enough: the most precise one is used and the result says so
    assert choose_threshold([0.9, 0.8], [False, True], target_precision=1.0) == (0.8, False)
    with pytest.raises(ValueError, match="at least one math example"):
        choose_threshold([0.5], [False], 0.9)


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"), ("(B) Algebra", "B"), ("Answer: C.", "C"), ("**E. Probability and statistics**", "E"),
        ("The topic is geometry", "C"), ("Not mathematics", "I"), ("I. Not mathematics", "I"),
        ("I think it is about algebra", "B"), ("A. Breast milk is good for babies", None),
        ("A. Arithmetic and word problems\nB. Algebra", "A"), ("algebra and geometry", None), ("", None),
    ],
)  # fmt: skip
def test_topic_answers_are_parsed_robustly(answer: str, letter: str | None) -> None:
    label = parse_topic_label(answer)
    assert label.letter == letter
    assert label.is_math == (None if letter is None else letter not in "HI")


def test_round1_on_bundled_samples_reports_metrics_and_separates_math(bundled_round1) -> None:
    folder, metrics = bundled_round1
    round1 = metrics["rounds"]["1"]
    assert metrics["selected_round"] == 1 and "not run" in metrics["note"]
    assert round1["target_met"] and round1["validation"]["precision"] >= 0.95
    assert round1["test"]["precision"] >= 0.9 and round1["test"]["recall"] >= 0.85
    assert metrics["data"]["splits"]["test"] > 250
    written = json.loads((folder / "metrics.json").read_text())
    assert written["threshold"] == metrics["threshold"] == round1["threshold"]
    classifier = MathClassifier(folder)
    scores = classifier.scores([text for _, text in WEB_PAGES])
    assert [s >= classifier.threshold for s in scores] == [label == "math" for label, _ in WEB_PAGES]


def test_training_is_deterministic(tmp_path: Path) -> None:
    positives, negatives = sample_training_sources()
    settings = ClassifierTrainingSettings(positives, negatives)
    first = train_math_classifier(settings, tmp_path / "a")
    second = train_math_classifier(settings, tmp_path / "b")
    assert first["threshold"] == second["threshold"]
    assert MathClassifier(tmp_path / "a").digest() == MathClassifier(tmp_path / "b").digest()


@pytest.mark.slow
def test_round2_labels_round1_output_with_the_llm_and_reports_the_comparison(embedded_server, tmp_path: Path) -> None:
    from mathcode_pile.llm.cache import RequestCache

    positives, negatives = sample_training_sources()
    settings = ClassifierTrainingSettings(positives, negatives, round2_sample=12)
    cache = RequestCache(tmp_path / "cache.sqlite")
    config = LLMConfig(llm_endpoint=embedded_server.url, llm_model=EMBEDDED_GGUF_NAME, llm_max_concurrency=2)
    client = LLMClient(config, cache)
    metrics = train_math_classifier(settings, tmp_path / "clf", client)
    report = metrics["round2"]
    assert report["sampled"] == 12 and report["labelled"] + report["unparseable_answers"] == 12
    assert client.counters["requests"] == 12
    labels = [json.loads(line) for line in (tmp_path / "clf" / "llm_labels.jsonl").read_text().splitlines()]
    assert len(labels) == 12 and all("answer" in row and "source_label_math" in row for row in labels)
    # half of the sample comes from documents round 1 accepts, half from those it rejects
    assert sum(row["source_label_math"] for row in labels) in range(4, 9)
    if "2" in metrics["rounds"]:
        comparison = report["heldout_comparison"]
        better = comparison["round2"]["f1"] > comparison["round1"]["f1"]
        assert metrics["selected_round"] == (2 if better else 1)
        assert ("beats" in metrics["note"]) == better
    else:
        assert metrics["note"].startswith("round 2 skipped") and report["skipped"]
    assert (tmp_path / "clf" / "model.bin").is_file()
    # a rerun pays for nothing: every label comes from the request cache
    again = LLMClient(config, cache)
    train_math_classifier(settings, tmp_path / "clf2", again)
    assert again.counters["requests"] == 0 and again.counters["cache_hits"] == 12
    cache.close()


def test_round2_trains_on_balanced_labels_and_keeps_the_better_round() -> None:
    """The round-2 path with a labeller that agrees with the source labels (what a strong LLM gives)."""
    from mathcode_pile.classifier.data import read_labeled, split_examples
    from mathcode_pile.classifier.labeling import TopicLabel
    from mathcode_pile.classifier.rounds import _selection_note, round2_from_labels
    from mathcode_pile.classifier.train import FastTextParams, train_round

    positives, negatives = sample_training_sources()
    examples, _ = read_labeled(positives, negatives)
    splits = split_examples(examples, seed=0)
    settings = ClassifierTrainingSettings(positives, negatives)
    round1 = train_round(1, splits["train"], splits["validation"], splits["test"], FastTextParams(), 0.95)
    candidates = splits["validation"] + splits["test"]
    pairs = [
        (
            e,
            TopicLabel("A", "Arithmetic and word problems", True, "A")
            if e.is_math
            else TopicLabel("I", "x", False, "I"),
        )
        for e in candidates
    ]
    pairs[0] = (pairs[0][0], TopicLabel(None, None, None, "no idea"))  # an unparseable answer is left out
    round2, report = round2_from_labels(round1, pairs, settings)
    assert round2 is not None and report["unparseable_answers"] == 1
    assert report["agreement_with_source_labels"] == 1.0
    assert report["labelled"] == report["llm_math"] + report["llm_not_math"] == len(candidates) - 1
    train_math = report["train_balanced"] // 2
    assert report["train_balanced"] == round2.train_size == 2 * train_math  # balanced: as many of each class
    comparison = report["heldout_comparison"]
    assert comparison["size"] == report["heldout"] > 50
    selected, note = _selection_note(report, round2)
    assert selected == (2 if comparison["round2"]["f1"] > comparison["round1"]["f1"] else 1)
    assert ("beats" in note) == (selected == 2) and str(comparison["round1"]["f1"]) in note
    assert selected == 2 or "agree with the source labels on 100%" in note  # the note says why round 1 stays
    # a labeller that calls everything math leaves round 2 nothing to learn from, and the note says so
    all_math = [(e, TopicLabel("A", "Arithmetic and word problems", True, "A")) for e in candidates]
    skipped, report = round2_from_labels(round1, all_math, settings)
    assert skipped is None and "0 not math" in report["skipped"]
    assert _selection_note(report, None)[0] == 1


def documents(rows: list[tuple[str, str]], kind: str = "web") -> Dataset:
    return Dataset.from_dict(
        {
            "id": [f"page-{i}" for i in range(len(rows))],
            "text": [text for _, text in rows],
            "source": ["web"] * len(rows),
            "metadata": [json.dumps({"kind": kind})] * len(rows),
        }
    )


def test_cli_trains_a_folder_that_the_filter_stage_uses(tmp_path: Path, capsys) -> None:
    assert main(["classify", "train", "--output", str(tmp_path / "clf"), "--target-precision", "0.97"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rounds"]["1"]["validation"]["precision"] >= 0.97
    assert json.loads((tmp_path / "clf" / "metrics.json").read_text())["target_precision"] == 0.97
    config = ClassifyConfig(classifier_model=str(tmp_path / "clf"))
    stage = MathClassifyStage(config, StageContext(work_dir=tmp_path / "work"))
    rows = [*WEB_PAGES, ("math", "A train covers 120 km in 2 hours, so its speed is 120 / 2 = 60 km/h.")]
    result = run_stage(stage, documents(rows), "fp", tmp_path / "work" / "02_math_classify", shard_rows=2)
    assert result.stats.dropped == {"not_math": 2}
    assert result.dataset["id"] == ["page-0", "page-1", "page-4"]
    assert all(score >= stage.classifier.threshold for score in result.dataset["math_score"])
    # other kinds (textbooks, code) pass without a score
    passed = run_stage(stage, documents(WEB_PAGES, kind="textbook"), "fp2", tmp_path / "work" / "x", shard_rows=8)
    assert passed.stats.rows_dropped == 0
    assert all(math.isnan(score) for score in passed.dataset["math_score"])
    # a threshold of 1.0 keeps nothing the classifier is unsure about; the override is part of the fingerprint
    strict = MathClassifyStage(ClassifyConfig(classifier_model=str(tmp_path / "clf"), classifier_threshold=1.0),
                               StageContext(work_dir=tmp_path / "work"))  # fmt: skip
    assert strict.fingerprint("fp") != stage.fingerprint("fp")


def test_stage_trains_its_model_into_the_work_dir_once(tmp_path: Path) -> None:
    context = StageContext(work_dir=tmp_path)
    stage = MathClassifyStage(ClassifyConfig(), context)
    folder = stage.classifier.folder
    assert folder.parent == tmp_path / "classifier" and (folder / "metrics.json").is_file()
    model_mtime = (folder / "model.bin").stat().st_mtime_ns
    again = MathClassifyStage(ClassifyConfig(), context)
    assert again.classifier.folder == folder and (folder / "model.bin").stat().st_mtime_ns == model_mtime
    assert again.fingerprint("x") == stage.fingerprint("x")
    other = MathClassifyStage(ClassifyConfig(classifier_seed=1), context)
    assert other.classifier.folder != folder


@pytest.mark.slow
def test_llm_label_stage_labels_a_sample_through_the_cached_client(embedded_server, tmp_path: Path) -> None:
    from mathcode_pile.llm.cache import RequestCache

    cache = RequestCache(tmp_path / "cache.sqlite")
    client = LLMClient(LLMConfig(llm_endpoint=embedded_server.url, llm_model=EMBEDDED_GGUF_NAME), cache)
    stage = LLMLabelStage(LLMLabelConfig(llm_label_fraction=0.5), StageContext(work_dir=tmp_path, llm=client))
    dataset = documents([(label, f"{text} (page {i})") for i in range(2) for label, text in WEB_PAGES])
    result = run_stage(stage, dataset, "fp", tmp_path / "labels", shard_rows=4)
    labelled = [document_metadata(m) for m in result.dataset["metadata"] if "llm_topic" in document_metadata(m)]
    assert result.stats.rows_kept == 8 and 0 < len(labelled) < 8
    assert result.stats.extra["labelled"] == len(labelled) == result.stats.extra["llm_requests"]
    topics = sum(v for k, v in result.stats.extra.items() if k.startswith("topic_"))
    assert topics == len(labelled)
    cache.close()
