"""``mathcode-pile``: the corpus builder's command line.

``build`` runs a whole corpus recipe and ``instruct`` an LCE instruction-data recipe; the other subcommands run one
step on files or train a model. Every subcommand is listed here (:data:`RECIPE_COMMANDS`, :data:`FILE_COMMANDS`): a
command module only offers ``add_parser(subparsers)`` and ``run(args)`` and never imports this module, so importing a
stage never pulls in the command line.
Any recipe key can be overridden: ``mathcode-pile build --config R.yaml --shard_rows 50 --llm_max_concurrency 8``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from mathcode_pile.classifier import cli as classify_command
from mathcode_pile.config import RecipeError
from mathcode_pile.decontamination import cli as decontaminate_command
from mathcode_pile.log_setup import setup_logging
from mathcode_pile.translation import verify_command

#: Friendly aliases for the most used overrides (``--endpoint`` reads better than ``--llm_endpoint``).
BUILD_ALIASES = {
    "--endpoint": "--llm_endpoint",
    "--output": "--output_dir",
    "--push-to-hub": "--push_to_hub",
    "--dry-run": "--dry_run",
    "--num-proc": "--num_proc",
}


def _apply_aliases(argv: Sequence[str]) -> list[str]:
    result = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = BUILD_ALIASES.get(key, key)
        result.append(f"{key}{sep}{value}" if sep else key)
    return result


def _print_recipe_keys(config_classes: list[type]) -> int:
    from transformers import HfArgumentParser

    HfArgumentParser(config_classes).print_help()
    return 0


def _require_config(args: argparse.Namespace, command: str) -> None:
    if args.config is None:
        raise RecipeError(
            f"{command} needs a recipe: --config RECIPE.yaml (e.g. {RECIPE_COMMANDS[command][1]}); "
            f"'mathcode-pile {command} --help-keys' lists every key"
        )


def _run_build(args: argparse.Namespace, overrides: list[str]) -> int:
    from mathcode_pile.pipeline import build_config_classes, build_pile, parse_build_configs

    if args.help_keys:
        return _print_recipe_keys(build_config_classes())
    from mathcode_pile.build_summary import summarize_build

    _require_config(args, "build")
    configs = parse_build_configs(args.config, _apply_aliases(overrides))
    output = build_pile(configs)
    print(summarize_build(output, configs.pipeline.resolved_work_dir, configs.recipe))
    return 0


def _run_instruct(args: argparse.Namespace, overrides: list[str]) -> int:
    from mathcode_pile.instruct.build import build_instruct, config_classes, parse_instruct_configs

    if args.help_keys:
        return _print_recipe_keys(config_classes())
    _require_config(args, "instruct")
    output = build_instruct(parse_instruct_configs(args.config, _apply_aliases(overrides)))
    if not (output / "data").is_dir():
        print(f"no row was kept; {output / 'README.md'} lists what each step dropped and why")
        return 0
    print(f"LCE instruction data written to {output}  (load it with datasets.load_dataset({str(output)!r}))")
    return 0


#: Commands driven by a recipe plus ``--key value`` overrides: name -> (help, example recipe, run).
RECIPE_COMMANDS: dict[str, tuple[str, str, Callable[[argparse.Namespace, list[str]], int]]] = {
    "build": ("build MathCode-Pile from a recipe", "recipes/mathcode_pile/demo.yaml", _run_build),
    "instruct": (
        "build LCE instruction data (teacher solutions, problem interpolation, self-distillation) from a recipe",
        "recipes/mathcode_instruct/demo.yaml",
        _run_instruct,
    ),
}


#: Commands on files or models; each module has ``NAME``, ``add_parser(subparsers)`` and ``run(args) -> int``.
FILE_COMMANDS: tuple[ModuleType, ...] = (classify_command, decontaminate_command, verify_command)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="mathcode-pile", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, example, _) in RECIPE_COMMANDS.items():
        command = subparsers.add_parser(
            name,
            help=help_text,
            description=f"{help_text[0].upper()}{help_text[1:]}. Extra --key value pairs override recipe keys; "
            "--help-keys lists them all.",
        )
        command.add_argument("--config", help=f"recipe YAML, e.g. {example}")
        command.add_argument("--help-keys", action="store_true", help="list every recipe key with its help and exit")
    for module in FILE_COMMANDS:
        module.add_parser(subparsers)
    args, unknown = parser.parse_known_args(argv)
    setup_logging(args.verbose)
    try:
        if args.command in RECIPE_COMMANDS:
            return RECIPE_COMMANDS[args.command][2](args, unknown)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return next(module for module in FILE_COMMANDS if args.command == module.NAME).run(args)
    except RecipeError as exc:
        print(f"mathcode-pile: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mathcode-pile: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
