"""Small post-training sets made offline from the LCE demo set: tool-integrated (TIR) and chain-of-thought (CoT).

They exist so that post-training runs end to end without the Hub (``make post-train MODEL=tiny DATA=tir``), in the
columns of ``AI-MO/NuminaMath-TIR`` / ``AI-MO/NuminaMath-CoT`` (``problem``, ``solution``, ``messages``) plus the
gold ``answer``. Each row is one problem of ``lce_demo.jsonl`` (:mod:`mathcode_pile.lce.demo_data`):

- TIR: the solution in fenced Markdown. Every code block is run again, in order, in one fresh sandboxed
  :class:`mathcode_pile.sandbox.session.PythonSession` per problem, and the ```` ```output ```` block holds what that
  run printed. A run whose output differs from the one recorded in the LCE set stops the build (naming the row), so
  both files say the same thing.
- CoT: the same reasoning with no code: each text block is followed by the result its code computed, and the closing
  sentence states the boxed answer.

The build is deterministic, so the shipped files can be rebuilt identically::

    python -m mathcode_pile.lce.tir_demo
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mathcode_pile.jsonl import read_jsonl
from mathcode_pile.lce.demo_data import DEMO_FILE
from mathcode_pile.lce.format import Block, blocks_to_tir
from mathcode_pile.lce.syntax import conversation_from_row

logger = logging.getLogger(__name__)

DATA_DIR = DEMO_FILE.parent
TIR_DEMO_FILE = DATA_DIR / "tir_demo.jsonl"
COT_DEMO_FILE = DATA_DIR / "cot_demo.jsonl"
#: Where each shipped set comes from, as model cards state it.
PROVENANCE = {
    TIR_DEMO_FILE.name: (
        "Provenance: `tir_demo.jsonl` is made by MathCode from its LCE demo set (`lce_demo.jsonl`, templated word "
        "problems): each solution is rewritten as ```python / ```output fences and every code block is run again "
        "in the sandbox, the output fence holding what that run printed (`python -m mathcode_pile.lce.tir_demo`)."
    ),
    COT_DEMO_FILE.name: (
        "Provenance: `cot_demo.jsonl` is made by MathCode from its LCE demo set (`lce_demo.jsonl`, templated word "
        "problems): the reasoning of each solution with the result of its code stated in words, no code "
        "(`python -m mathcode_pile.lce.tir_demo`)."
    ),
}


class DemoBuildError(RuntimeError):
    """A demo row whose code does not reproduce its recorded output; the message names the row."""


def demo_provenance(dataset_name: str) -> str | None:
    """The provenance line of a shipped demo set named by a recipe (None for any other data)."""
    path = Path(dataset_name)
    if path.name in PROVENANCE and path.parent.resolve() == DATA_DIR.resolve():
        return PROVENANCE[path.name]
    return None


def rerun_blocks(blocks: Sequence[Block], run_code: Callable[[str], str], where: str) -> list[Block]:
    """The blocks with every execution block replaced by what running the code before it prints now."""
    rerun: list[Block] = []
    for block in blocks:
        if block.kind != "execution":
            rerun.append(block)
            continue
        if not rerun or rerun[-1].kind != "code":
            raise DemoBuildError(f"{where}: an execution block does not follow a code block")
        output = run_code(rerun[-1].content)
        if output.strip() != block.content.strip():
            raise DemoBuildError(f"{where}: the code printed {output!r}, the LCE set records {block.content!r}")
        rerun.append(Block("execution", output))
    return rerun


def cot_solution(blocks: Sequence[Block]) -> str:
    """Chain-of-thought text: the reasoning, each code result stated in words, the final text as written."""
    sentences = []
    for block in blocks:
        if block.kind == "text":
            sentences.append(block.content.strip())
        elif block.kind == "execution":
            sentences.append(f"This gives {block.content.strip().splitlines()[-1]}.")
    return "\n\n".join(sentences)


def build_rows(source: list[dict[str, Any]], session_factory: Callable[[], Any]) -> tuple[list[dict], list[dict]]:
    """(TIR rows, CoT rows) for the LCE rows of ``source``; one fresh session per problem."""
    tir_rows, cot_rows = [], []
    for index, row in enumerate(source):
        messages = conversation_from_row(row)
        question = next(message.text for message in messages if message.role == "user")
        (answer_message,) = [message for message in messages if message.role == "assistant"]
        session = session_factory()
        try:
            blocks = rerun_blocks(answer_message.blocks, session.run, f"{DEMO_FILE.name}: row {index}")
        finally:
            session.close()
        for solution, rows in ((blocks_to_tir(blocks), tir_rows), (cot_solution(blocks), cot_rows)):
            chat = [{"role": "user", "content": question}, {"role": "assistant", "content": solution}]
            rows.append({"problem": question, "solution": solution, "answer": row["answer"], "messages": chat})
    return tir_rows, cot_rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    from mathcode_pile.lce.execution import SandboxSessions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=DEMO_FILE, help="LCE rows (default: the shipped demo set)")
    parser.add_argument("--output-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source = read_jsonl(args.input)
    try:
        with SandboxSessions(workers=1) as sessions:
            tir_rows, cot_rows = build_rows(source, sessions)
    except DemoBuildError as error:
        print(f"tir_demo: error: {error}", file=sys.stderr)
        return 2
    write_jsonl(tir_rows, args.output_dir / TIR_DEMO_FILE.name)
    write_jsonl(cot_rows, args.output_dir / COT_DEMO_FILE.name)
    print(f"wrote {len(tir_rows)} TIR and {len(cot_rows)} CoT rows to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
