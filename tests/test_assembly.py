"""Assembly: mixture weights, token counts with a real tokenizer, Parquet shards, plots and a valid card; the pile
recipes parse; a whole basic-data build runs and its dry-run upload is exactly the built folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset

from mathcode_pile.assemble import assemble_corpus, load_tokenizer
from mathcode_pile.card import CardSection, validate_dataset_card
from mathcode_pile.hub import list_upload_files, push_folder_to_hub
from mathcode_pile.pipeline import build_pile, parse_build_configs
from mathcode_pile.stages.base import DROP_COLUMN, StageContext
from mathcode_pile.stages.mixture import MixtureConfig, MixtureStage, copies_for
from mathcode_pile.stats import StageStats

BASIC_STAGES = ["code_math_filter", "math_classify", "dedup", "decontaminate", "mixture"]


@pytest.mark.parametrize("recipe", sorted(Path(__file__).parents[1].glob("recipes/mathcode_pile/*.yaml")))
def test_every_pile_recipe_parses(recipe: Path, repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    configs = parse_build_configs(recipe)
    stages = configs.pipeline.stages
    assert stages[: len(BASIC_STAGES)] == BASIC_STAGES  # the basic-data filters run before translation
    assert "translate" in stages
    kinds = {source["kind"] for source in configs.pipeline.sources}
    assert {"math_text", "code"} <= kinds


def test_full_recipe_reads_the_papers_components_from_the_hub(repo_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo_root)
    configs = parse_build_configs(repo_root / "recipes" / "mathcode_pile" / "full.yaml")
    hub_ids = {source["hub_id"] for source in configs.pipeline.sources}
    assert {"open-web-math/open-web-math", "ajibawa-2023/Maths-College", "bigcode/starcoderdata"} <= hub_ids
    from mathcode_pile.stages.classify import ClassifyConfig
    from mathcode_pile.stages.decontaminate import DecontaminateConfig

    assert configs.stage_configs[ClassifyConfig].classifier_round2_sample > 0
    assert "openai/gsm8k:main" in configs.stage_configs[DecontaminateConfig].decontam_benchmarks


def corpus(rows: list[tuple[str, str, float]]) -> Dataset:
    return Dataset.from_dict(
        {
            "id": [f"{source}/{i}" for i, (source, _, _) in enumerate(rows)],
            "text": [text for _, text, _ in rows],
            "source": [source for source, _, _ in rows],
            "metadata": [json.dumps({"kind": "math_text", "weight": weight}) for _, _, weight in rows],
        }
    )


def test_mixture_weights_sample_and_repeat_deterministically() -> None:
    assert [copies_for("doc", w, seed=0) for w in (0.0, 1.0, 2.0, 3.0)] == [0, 1, 2, 3]
    halves = [copies_for(f"doc-{i}", 0.5, seed=0) for i in range(2000)]
    assert 900 < sum(halves) < 1100 and set(halves) == {0, 1}
    stage = MixtureStage(MixtureConfig(mixture_weights={"textbook": 2.0}), StageContext(work_dir=Path()))
    rows = [("owm", f"page {i}", 0.5) for i in range(40)] + [("textbook", "chapter", 1.0)]
    batch = corpus(rows)[:]
    out = stage.process_batch(batch)
    kept = [i for i, reason in enumerate(out[DROP_COLUMN]) if reason is None]
    kept_owm = sum(out["source"][i] == "owm" for i in kept)
    assert 10 < kept_owm < 30
    assert sum(reason == "mixture_sampled_out" for reason in out[DROP_COLUMN]) == 40 - kept_owm
    textbook_ids = [out["id"][i] for i in kept if out["source"][i] == "textbook"]
    assert textbook_ids == ["textbook/40", "textbook/40#copy1"]  # recipe weight overrides the source's 1.0
    assert stage.process_batch(batch) == out
    assert json.loads(out["metadata"][kept[-1]])["mixture_weight"] == 2.0


def test_assembly_counts_tokens_per_component_and_writes_a_valid_folder(tmp_path: Path) -> None:
    rows = [("owm", f"Page {i}: the sum 1 + 2 + ... + {i} equals {i * (i + 1) // 2}.", 1.0) for i in range(1, 8)]
    rows += [("code", "import sympy\nprint(sympy.factorint(360))", 2.0)] * 2
    dataset = corpus(rows)
    stats = [
        StageStats(stage="load_sources", rows_in=9, rows_kept=9),
        StageStats(stage="dedup", rows_in=9, rows_kept=9),
    ]
    output = assemble_corpus(
        dataset,
        stats,
        tmp_path / "pile",
        pretty_name="Test Pile",
        recipe="recipes/test.yaml",
        kinds={"owm": "math_text", "code": "code", "empty": "textbook"},
        rows_per_shard=4,
        sections=[CardSection("Extra", "A section added by another stage.")],
    )
    shards = sorted(str(p.relative_to(output / "data")) for p in (output / "data").rglob("*.parquet"))
    assert shards == [  # one folder per component, 4 rows per shard: 7 owm rows make two shards
        "code/train-00000-of-00001.parquet",
        "owm/train-00000-of-00002.parquet",
        "owm/train-00001-of-00002.parquet",
    ]
    assert {p.name for p in (output / "plots").iterdir()} == {"funnel.png", "composition.png", "lengths.png"}
    tokenizer = load_tokenizer("embedded")
    expected = {
        source: sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for s, t, _ in rows if s == source)
        for source in ("owm", "code")
    }
    composition = {row["source"]: row for row in json.loads((output / "composition.json").read_text())}
    assert {s: composition[s]["tokens"] for s in expected} == expected
    assert composition["empty"]["documents"] == 0 and composition["code"]["weight"] == 2.0
    card = (output / "README.md").read_text()
    validate_dataset_card(card, output)
    total = sum(expected.values())
    assert "| code | code | 2 |" in card and f"**{total:,}**" in card
    assert "Tokens are counted with the `SmolLM2-135M-Instruct (embedded)` tokenizer" in card and "## Extra" in card
    assert len(load_dataset(str(output), split="train")) == 9
    # a rebuild into the same folder loads the new rows, not the ones ``datasets`` cached for the previous build
    assemble_corpus(dataset.select(range(5)), stats, output, pretty_name="Test Pile", recipe="r.yaml",
                    kinds={"owm": "math_text"}, rows_per_shard=4, tokenizer=None)  # fmt: skip
    assert load_dataset(str(output), split="train")["id"] == dataset["id"][:5]
    assert not (output / "data" / "code").exists()  # the rebuild has no code rows: no stale component is left


def test_each_component_is_a_configuration_whose_rows_and_counts_match_the_card(tmp_path: Path) -> None:
    rows = [("web_math", f"Page {i} adds {i} and {i}.", 1.0) for i in range(5)]
    rows += [("translated_code", f"Step {i}\n```python\nprint({i} + {i})\n```", 1.0) for i in range(3)]
    rows += [("textbook", "Chapter 1: limits.", 1.0), ("web_math", "One more page.", 1.0)]
    dataset = corpus(rows)
    output = assemble_corpus(
        dataset, [StageStats(stage="load_sources", rows_in=10, rows_kept=10)], tmp_path / "pile",
        pretty_name="Component Pile", recipe="r.yaml", kinds={"web_math": "web", "textbook": "textbook"},
        rows_per_shard=2, tokenizer=None,
    )  # fmt: skip
    card_text = (output / "README.md").read_text()
    card = validate_dataset_card(card_text, output)
    configs = {entry["config_name"]: entry for entry in card.data.to_dict()["configs"]}
    assert sorted(configs) == ["default", "textbook", "translated_code", "web_math"]
    infos = {entry["config_name"]: entry for entry in card.data.to_dict()["dataset_info"]}
    composition = {row["source"]: row["documents"] for row in json.loads((output / "composition.json").read_text())}
    for component, expected_rows in (("web_math", 6), ("translated_code", 3), ("textbook", 1)):
        loaded = load_dataset(str(output), component, split="train")
        assert set(loaded["source"]) == {component}
        assert loaded["id"] == [i for i, s in zip(dataset["id"], dataset["source"], strict=True) if s == component]
        assert len(loaded) == expected_rows == composition[component]
        assert infos[component]["splits"][0]["num_examples"] == expected_rows
        assert f"| `{component}` | {expected_rows} |" in card_text
    everything = load_dataset(str(output), split="train")
    assert sorted(everything["id"]) == sorted(dataset["id"]) and infos["default"]["splits"][0]["num_examples"] == 10
    assert 'load_dataset("' + str(output) + '", "textbook", split="train")' in card_text
    # translated_code's kind is read from its rows' metadata (it is no source of the recipe)
    assert "| translated_code | math_text | 3 |" in card_text

    # a rebuild with different rows: every configuration loads the new rows, not what `datasets` cached before
    smaller = dataset.filter(lambda row: row["source"] != "translated_code" and not row["id"].endswith("/9"))
    assemble_corpus(smaller, [], output, pretty_name="Component Pile", recipe="r.yaml", kinds={}, rows_per_shard=2,
                    tokenizer=None)  # fmt: skip
    assert len(load_dataset(str(output), "web_math", split="train")) == 5
    with pytest.raises(ValueError, match="translated_code"):
        load_dataset(str(output), "translated_code", split="train")


def write_basic_recipe(tmp_path: Path, repo_root: Path) -> Path:
    samples = repo_root / "mathcode_pile" / "data" / "samples"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""dataset_name: Basic Pile
output_dir: {tmp_path / "out"}
shard_rows: 5
sources:
  - {{name: aqua_rat, path: {samples / "aqua_rat.jsonl"}, text_template: "{{question}}\\n{{rationale}}", max_docs: 6}}
  - {{name: web_math, path: {samples / "web_math.jsonl"}, kind: web, metadata_fields: [url], weight: 2.0}}
  - {{name: textbook, path: {samples / "textbook"}, kind: textbook}}
  - {{name: code, path: {samples / "code"}, kind: code}}
stages: [{", ".join(BASIC_STAGES)}]
""",
        encoding="utf-8",
    )
    return recipe


def test_basic_data_build_reports_every_stage_and_dry_run_lists_the_folder(tmp_path: Path, repo_root: Path) -> None:
    recipe = write_basic_recipe(tmp_path, repo_root)
    output = build_pile(parse_build_configs(recipe, ["--push_to_hub", "org/Basic-Pile", "--dry_run", "true"]))
    stats = {s["stage"]: s for s in json.loads((output / "stats.json").read_text())}
    assert stats["code_math_filter"]["dropped"] == {"no_math_import": 1}
    assert stats["math_classify"]["dropped"] == {"not_math": 2}  # the cooking and the travel page
    assert stats["dedup"]["dropped"] == {"near_duplicate": 1}  # the web copy of an AQuA-RAT problem
    assert stats["decontaminate"]["dropped"] == {"contaminated_gsm8k": 1}  # the forum post quoting GSM8K
    assert stats["mixture"]["rows_kept"] == stats["mixture"]["rows_in"] + 2  # two web pages left, weight 2
    dataset = load_dataset(str(output), split="train")
    assert len(dataset) == stats["mixture"]["rows_kept"]
    card = (output / "README.md").read_text()
    validate_dataset_card(card, output)
    for heading in ("## Code with math packages", "## Math classifier", "## Deduplication", "## Decontamination"):
        assert heading in card
    assert "| decontaminate | " in card and "contaminated_gsm8k: 1" in card
    assert 'load_dataset("org/Basic-Pile"' in card
    assert push_folder_to_hub(output, "org/Basic-Pile", dry_run=True) == list_upload_files(output)
    assert {"README.md", "stats.json", "composition.json", "plots/funnel.png"} <= set(list_upload_files(output))


def save_word_tokenizer(folder: Path) -> Path:
    """A real ``save_pretrained`` tokenizer that makes one token of every whitespace-separated word."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="[UNK]").save_pretrained(folder)
    return folder


def write_tokens_recipe(tmp_path: Path, repo_root: Path) -> Path:
    samples = repo_root / "mathcode_pile" / "data" / "samples"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""output_dir: {tmp_path / "out"}
sources:
  - {{name: aqua_rat, path: {samples / "aqua_rat.jsonl"}, text_template: "{{question}}\\n{{rationale}}", max_docs: 5}}
stages: []
""",
        encoding="utf-8",
    )
    return recipe


@pytest.mark.parametrize("choice", ["words", "none"])
def test_the_recipe_chooses_the_tokenizer_that_counts_tokens(tmp_path: Path, repo_root: Path, choice: str) -> None:
    recipe = write_tokens_recipe(tmp_path, repo_root)
    tokenizer = str(save_word_tokenizer(tmp_path / "words")) if choice == "words" else "none"
    output = build_pile(parse_build_configs(recipe, ["--token_count_tokenizer", tokenizer]))
    texts = load_dataset(str(output), split="train")["text"]
    composition = {row["source"]: row for row in json.loads((output / "composition.json").read_text())}
    card = (output / "README.md").read_text()
    validate_dataset_card(card, output)
    if choice == "words":
        assert composition["aqua_rat"]["tokens"] == sum(len(text.split()) for text in texts)
        assert f"Tokens are counted with the `{tokenizer}` tokenizer" in card
    else:
        assert not composition["aqua_rat"].get("tokens") and "Tokens are counted" not in card


def test_an_unloadable_tokenizer_fails_the_build_before_any_stage(tmp_path: Path, repo_root: Path) -> None:
    from mathcode_pile.config import RecipeError

    recipe = write_tokens_recipe(tmp_path, repo_root)
    missing = tmp_path / "no-such-tokenizer"
    with pytest.raises(
        RecipeError, match=r"recipe\.yaml: token_count_tokenizer .*no-such-tokenizer.* cannot be loaded"
    ):
        build_pile(parse_build_configs(recipe, ["--token_count_tokenizer", str(missing)]))
    assert not (tmp_path / "out_work").exists() and not (tmp_path / "out").exists()
