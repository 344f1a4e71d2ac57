"""The project's layout rules, checked on the source: no import circle between its modules (lazy imports inside
functions included, since they close a circle as soon as they run) and no module that imports a command line, which
lists its subcommands itself. The graph is read from the AST, so nothing is imported and the check takes a second."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mathcode_pile", "evaluation", "training", "hub_cards")
COMMAND_LINES = {"mathcode_pile.cli", "evaluation.cli"}


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` refers to: itself, or for ``package.attribute`` the package; None if external."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports anywhere in its file (top level, functions, ``TYPE_CHECKING`` blocks)."""
    found = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for name in targets if (target := _known(name, modules)) is not None)
    found.discard(module)
    return found


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    modules = module_files(root, packages)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other in a circle (strongly connected components of size > 1, or a
    module importing itself), each sorted; found with an iterative Tarjan search (no recursion limit to hit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    cycles.append(sorted(component))
    return cycles


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert len(graph) > 100, "the packages were not found"
    cycles = import_cycles(graph)
    assert not cycles, "import circles (break them; lazy imports count too):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )


def test_no_module_imports_a_command_line() -> None:
    graph = import_graph(ROOT, PACKAGES)
    importers = {module: sorted(graph[module] & COMMAND_LINES) for module in graph}
    assert {module: found for module, found in importers.items() if found} == {}


def test_the_check_finds_a_planted_circle(tmp_path: Path) -> None:
    """A lazy import closing a three-module circle, and a relative import closing another, are both reported."""
    package = tmp_path / "planted"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .c import value\n")
    (package / "a.py").write_text("from planted import b\n")
    (package / "b.py").write_text("import os\n\ndef later():\n    from planted.sub import c\n")
    (package / "sub" / "c.py").write_text("value = 1\n\ndef f():\n    import planted.a\n")
    (package / "d.py").write_text("from . import e\n")
    (package / "e.py").write_text("from .d import name\n")
    (package / "f.py").write_text("import planted.a\n")
    cycles = import_cycles(import_graph(tmp_path, ("planted",)))
    assert sorted(cycles) == [["planted.a", "planted.b", "planted.sub.c"], ["planted.d", "planted.e"]]


@pytest.mark.parametrize(
    ("command", "option"),
    [("build", "--help-keys"), ("instruct", "--help-keys"), ("classify", "train"), ("decontaminate", "--ngram"),
     ("verify", "--rel-tol")],
)  # fmt: skip
def test_the_command_line_offers_every_subcommand(
    command: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mathcode_pile.cli import main

    with pytest.raises(SystemExit) as listing:
        main(["--help"])
    assert listing.value.code == 0 and command in capsys.readouterr().out
    with pytest.raises(SystemExit) as own_help:
        main([command, "--help"])
    assert own_help.value.code == 0 and option in capsys.readouterr().out
