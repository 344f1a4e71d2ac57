"""``mathcode-pile classify train``: train the fastText math classifier (round 1, optionally LLM round 2).

Examples::

    # round 1 on the bundled samples
    mathcode-pile classify train --output models/math_classifier
    # the training sources and settings of a recipe, with round 2 labelled by a served model
    mathcode-pile classify train --config recipes/mathcode_pile/demo.yaml --round2-sample 200 \\
        --endpoint http://tgi:8080 --output models/math_classifier
    # your own files (one document per row, text in --text-field)
    mathcode-pile classify train --positives math.jsonl --negatives web.jsonl --output models/math_classifier

The folder can then be named by the recipe key ``classifier_model``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _file_sources(paths: list[str], text_field: str, prefix: str) -> list[dict[str, Any]]:
    return [
        {"name": f"{prefix}_{i}", "path": path, "text_field": text_field, "kind": "other"}
        for i, path in enumerate(paths)
    ]


def _run_train(args: argparse.Namespace) -> int:
    from mathcode_pile.classifier.rounds import train_math_classifier
    from mathcode_pile.config import RecipeError
    from mathcode_pile.llm.client import LLMConfig
    from mathcode_pile.stages.classify import ClassifyConfig

    llm_config = LLMConfig()
    config = ClassifyConfig()
    if args.config:
        from mathcode_pile.pipeline import parse_build_configs

        configs = parse_build_configs(args.config)
        config = configs.stage_configs[ClassifyConfig]
        llm_config = configs.llm
    try:
        overrides: dict[str, Any] = {}
        if args.positives:
            overrides["classifier_positive_sources"] = _file_sources(args.positives, args.text_field, "positives")
        if args.negatives:
            overrides["classifier_negative_sources"] = _file_sources(args.negatives, args.text_field, "negatives")
        for key, value in (
            ("classifier_target_precision", args.target_precision),
            ("classifier_seed", args.seed),
            ("classifier_round2_sample", args.round2_sample),
        ):
            if value is not None:
                overrides[key] = value
        config = ClassifyConfig(**{**config.__dict__, **overrides})
        settings = config.training_settings()
    except RecipeError as exc:
        print(f"mathcode-pile classify train: error: {exc}", file=sys.stderr)
        return 2
    if args.endpoint:
        llm_config = LLMConfig(**{**llm_config.__dict__, "llm_endpoint": args.endpoint})
    if settings.round2_sample:
        from pathlib import Path

        from mathcode_pile.llm.opening import open_llm

        with open_llm(llm_config, Path(args.output), needed=True) as llm:
            metrics = train_math_classifier(settings, args.output, llm)
    else:
        metrics = train_math_classifier(settings, args.output)
    summary = {
        "output": args.output,
        "selected_round": metrics["selected_round"],
        "threshold": metrics["threshold"],
        "rounds": {n: {"validation": r["validation"], "test": r["test"]} for n, r in metrics["rounds"].items()},
        "round2": metrics["round2"],
        "note": metrics["note"],
    }
    print(json.dumps(summary, indent=2))
    return 0


NAME = "classify"
HELP = "fastText math classifier: `classify train` builds one (round 1, LLM round 2)"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``classify`` subcommand's parser, added to ``subparsers`` (the command line lists it in ``cli.py``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(NAME, help=HELP, description=HELP)
    actions = parser.add_subparsers(dest="classify_action", required=True)
    train = actions.add_parser("train", help="train the classifier into --output (model.bin + metrics.json)")
    train.add_argument("--output", required=True, help="folder for model.bin, metrics.json, llm_labels.jsonl")
    train.add_argument("--config", help="recipe whose classifier_* and llm_* keys to use")
    train.add_argument("--positives", action="append", help="math documents (file/folder/glob; repeatable)")
    train.add_argument("--negatives", action="append", help="non-math documents (file/folder/glob; repeatable)")
    train.add_argument("--text-field", default="text", help="field holding the text in --positives/--negatives")
    train.add_argument("--target-precision", type=float, help="validation precision the threshold must reach")
    train.add_argument("--seed", type=int, help="seed of splits, sampling and fastText")
    train.add_argument("--round2-sample", type=int, help="documents the LLM labels for round 2 (0: round 1 only)")
    train.add_argument("--endpoint", help="LLM server for round 2 (default: the embedded model, served locally)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the chosen action (``train`` is the only one)."""
    return _run_train(args)
