"""A small LCE training set made offline: templated word problems whose code is really executed in the sandbox.

It exists so that LCE SFT can be exercised end to end without the Hub (``make train-lce MODEL=tiny``). Each example
follows MathCoder's layout: a text block that plans, code that computes (some examples continue in a second code
block that reuses the first block's variables, as a notebook would), the execution output produced by running that
code in one :class:`mathcode_pile.sandbox.session.PythonSession`, and a closing text block whose boxed answer is read
from the output. Generation is seeded, so the shipped file can be rebuilt identically::

    python -m mathcode_pile.lce.demo_data --count 200 --output mathcode_pile/lce/data/lce_demo.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mathcode_pile.lce.format import Block, build_conversation, to_chat_messages

logger = logging.getLogger(__name__)

DEMO_FILE = Path(__file__).parent / "data" / "lce_demo.jsonl"
NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas")
ITEMS = ("notebook", "pencil", "apple", "ticket", "marble", "sticker", "cookie", "book")


@dataclass(frozen=True)
class Step:
    """A text block followed (optionally) by a code block to run."""

    text: str
    code: str | None = None


@dataclass(frozen=True)
class Draft:
    question: str
    steps: tuple[Step, ...]


def shopping(rng: random.Random) -> Draft:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    count, price = rng.randint(2, 9), rng.randint(2, 15)
    bill = ((count * price) // 10 + 1 + rng.randint(0, 3)) * 10
    return Draft(
        f"{name} buys {count} {item}s at ${price} each and pays with a ${bill} bill. How much change does {name} get?",
        (
            Step(
                "The cost is the number of items times the price; the change is the bill minus the cost.",
                f"count = {count}\nprice = {price}\ncost = count * price\nchange = {bill} - cost\nprint(change)",
            ),
        ),
    )


def rectangle(rng: random.Random) -> Draft:
    length, width = rng.randint(3, 30), rng.randint(2, 20)
    return Draft(
        f"A rectangle is {length} cm long and {width} cm wide. What is the sum of its area and its perimeter?",
        (
            Step("First the area, length times width.",
                 f"length = {length}\nwidth = {width}\narea = length * width\nprint(area)"),
            Step("Now the perimeter, reusing the same sides, and the sum.",
                 "perimeter = 2 * (length + width)\nprint(area + perimeter)"),
        ),
    )  # fmt: skip


def linear_equation(rng: random.Random) -> Draft:
    a, b, c = rng.randint(2, 9), rng.randint(-20, 20), rng.randint(-30, 40)
    return Draft(
        f"Solve for x: {a}x + ({b}) = {c}.",
        (
            Step(
                "Write the equation with sympy and solve it for x.",
                f"from sympy import symbols, Eq, solve\nx = symbols('x')\nsolution = solve(Eq({a}*x + {b}, {c}), x)\n"
                "print(solution[0])",
            ),
        ),
    )


def discount(rng: random.Random) -> Draft:
    item, price, percent = rng.choice(ITEMS), rng.randint(10, 200), rng.choice((5, 10, 15, 20, 25, 30, 40, 50))
    return Draft(
        f"A {item} costs ${price}. It is discounted by {percent}%. What is the new price in dollars?",
        (
            Step(
                "The new price keeps (100 - discount) percent of the old one.",
                f"from fractions import Fraction\nnew_price = Fraction({price}) * (100 - {percent}) / 100\n"
                "print(float(new_price) if new_price.denominator != 1 else new_price)",
            ),
        ),
    )


def series_sum(rng: random.Random) -> Draft:
    low = rng.randint(1, 50)
    high = low + rng.randint(5, 100)
    return Draft(
        f"What is the sum of all integers from {low} to {high}, inclusive?",
        (Step("Add them directly with range.", f"total = sum(range({low}, {high} + 1))\nprint(total)"),),
    )


def two_numbers(rng: random.Random) -> Draft:
    first, second = rng.randint(5, 60), rng.randint(1, 40)
    total, difference = first + second, abs(first - second)
    return Draft(
        f"The sum of two numbers is {total} and their difference is {difference}. What is the larger number?",
        (
            Step(
                "Let the numbers be a and b with a >= b, and solve the two equations together.",
                f"from sympy import symbols, Eq, solve\na, b = symbols('a b')\n"
                f"roots = solve([Eq(a + b, {total}), Eq(a - b, {difference})], [a, b])\nprint(roots[a])",
            ),
        ),
    )


TEMPLATES: tuple[Callable[[random.Random], Draft], ...] = (
    shopping,
    rectangle,
    linear_equation,
    discount,
    series_sum,
    two_numbers,
)


def realize(draft: Draft, run_code: Callable[[str], str]) -> tuple[list[Block], str]:
    """Execute the draft's code blocks in order (one session) and write the solution; returns (blocks, answer)."""
    blocks: list[Block] = []
    output = ""
    for step in draft.steps:
        blocks.append(Block("text", step.text))
        if step.code is not None:
            blocks.append(Block("code", step.code))
            output = run_code(step.code)
            blocks.append(Block("execution", output))
    answer = output.strip().splitlines()[-1] if output.strip() else ""
    blocks.append(Block("text", f"The answer is $\\boxed{{{answer}}}$."))
    return blocks, answer


def generate_examples(count: int, seed: int, session_factory: Callable[[], object]) -> list[dict[str, object]]:
    """``count`` examples (templates in turn); every example's code runs in a fresh session from the factory."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        draft = TEMPLATES[index % len(TEMPLATES)](rng)
        session = session_factory()
        try:
            blocks, answer = realize(draft, session.run)  # type: ignore[attr-defined]
        finally:
            session.close()  # type: ignore[attr-defined]
        if not answer or any(b.kind == "execution" and "Error" in b.content for b in blocks):
            raise RuntimeError(
                f"example {index} ({TEMPLATES[index % len(TEMPLATES)].__name__}) did not execute: {blocks}"
            )
        messages = build_conversation(draft.question, solution=blocks)
        rows.append({"question": draft.question, "answer": answer, "messages": to_chat_messages(messages)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from mathcode_pile.lce.execution import SandboxSessions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEMO_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with SandboxSessions(workers=1) as sessions:
        rows = generate_examples(args.count, args.seed, sessions)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} LCE examples to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
