"""Snippets per second: the sandbox pool vs one ``python -c`` process per snippet vs an unsafe in-process ``exec``.

The same math snippets (about half import sympy, the rest use fractions / math / numpy / itertools) run three ways,
in one run, on this machine:

- ``SandboxPool``: pre-warmed isolated workers, a forked child per snippet (limits, no network, fresh state);
- baseline: a new ``python -c`` interpreter per snippet, with as many running at once as the pool has workers
  (no isolation at all, but a fresh state too); the goal is sandbox / baseline >= 20;
- ``exec`` in this process, one after another (one core), after the workers' same imports and warm-up, output
  captured: no isolation and no fresh state. The ratio exec / sandbox is the price of isolation (the sandbox uses
  ``--workers`` cores, so the printed per-core figure is the fairer one).

With ``--before GIT_REF`` the sandbox package as it was at that commit runs the same snippets too (in a process of
its own, from an export of ``mathcode_pile/sandbox`` at that ref), so the cost of a change to the sandbox (e.g. its
kernel layers) is measured against the code before it, on the same machine, in the same run.

Run: ``python benchmarks/sandbox.py [--snippets 200] [--workers N] [--before GIT_REF]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mathcode_pile.sandbox import DEFAULT_WARMUP, SandboxLimits, SandboxPool

SYMPY_TEMPLATES = (
    "import sympy as sp\nx = sp.Symbol('x')\nprint(sp.solve(x**2 - {a}*x + {b}, x))",
    "import sympy as sp\nprint(sp.Rational({a}, {b}) + sp.Rational(1, {c}))",
    "import sympy as sp\nx = sp.Symbol('x')\nprint(sp.integrate(x**{c} + {a}*x, (x, 0, {b})))",
    "import sympy as sp\nprint(sp.factorint({a} * {b} * {c}))",
    "import sympy as sp\nprint(sp.simplify(sp.sqrt({a}**2 * {b})))",
)
PLAIN_TEMPLATES = (
    "from fractions import Fraction\nprint(Fraction({a}, {b}) * Fraction({c}, {a} + 1))",
    "import math\nprint(round(math.sqrt({a}**2 + {b}**2), 6))",
    "import math\nprint(math.comb({a} + {c}, {c}), math.gcd({a}, {b}))",
    "import numpy as np\nprint(float(np.mean(np.arange({a}, {a} + {b}))))",
    "import itertools\nprint(sum(1 for p in itertools.permutations(range({c})) if p[0] < p[-1]))",
)


def make_snippets(count: int) -> list[str]:
    """``count`` distinct snippets, alternating sympy and non-sympy ones."""
    snippets = []
    for index in range(count):
        templates = SYMPY_TEMPLATES if index % 2 == 0 else PLAIN_TEMPLATES
        template = templates[(index // 2) % len(templates)]
        a, b, c = 3 + index % 17, 2 + index % 11, 2 + index % 5
        snippets.append(template.format(a=a, b=b, c=c))
    return snippets


def run_subprocesses(snippets: list[str], workers: int, timeout_s: float) -> tuple[float, list[str]]:
    def one(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
        return done.stdout

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:
        outputs = list(executor.map(one, snippets))
    return time.perf_counter() - started, outputs


def run_in_process(snippets: list[str]) -> tuple[float, list[str]]:
    # the same imports and warm-up as a sandbox worker, outside the timing
    exec(compile(DEFAULT_WARMUP, "<warmup>", "exec"), {"__name__": "__warmup__"})
    outputs = []
    started = time.perf_counter()
    for code in snippets:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})  # the unsafe reference point
        outputs.append(buffer.getvalue())
    return time.perf_counter() - started, outputs


#: Runs in a process of its own with PYTHONPATH at an exported sandbox package; snippets on stdin, JSON on stdout.
MEASURE_SCRIPT = """
import json, sys, time
from mathcode_pile.sandbox import SandboxLimits, SandboxPool
snippets, workers, timeout_s, isolation = json.load(sys.stdin)
pool = SandboxPool(workers=workers, limits=SandboxLimits(timeout_s=timeout_s), isolation=isolation)
info = pool.worker_info()
for index in range(pool.size):
    pool.request(index, {"op": "ping"}, 60.0)
with pool:
    started = time.perf_counter()
    results = pool.run_many(snippets)
    seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "mode": info.mode, "stdout": [r.stdout for r in results]}))
"""


def run_sandbox_at(ref: str, snippets: list[str], workers: int, timeout_s: float, isolation: str) -> dict[str, object]:
    """The pool of ``mathcode_pile/sandbox`` as of git ``ref``, timed on ``snippets`` in a separate process."""
    repo = Path(__file__).resolve().parents[1]
    export = Path(tempfile.mkdtemp(prefix=".sandbox-before-", dir=repo))
    try:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", ref, "mathcode_pile/sandbox"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
        (export / "mathcode_pile" / "__init__.py").write_text("")
        done = subprocess.run(
            [sys.executable, "-c", MEASURE_SCRIPT],
            input=json.dumps([snippets, workers, timeout_s, isolation]),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(export)},
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(export, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snippets", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="per snippet (generous: a loaded machine)")
    parser.add_argument("--before", metavar="GIT_REF", help="also time the sandbox package as of this git ref")
    parser.add_argument("--isolation", default="auto", help="sandbox isolation mode (both sandboxes; default auto)")
    args = parser.parse_args()
    snippets = make_snippets(args.snippets)
    print(f"{len(snippets)} snippets ({sum('sympy' in s for s in snippets)} import sympy), {args.workers} worker(s)")

    started = time.perf_counter()
    pool = SandboxPool(workers=args.workers, limits=SandboxLimits(timeout_s=args.timeout_s), isolation=args.isolation)
    info = pool.worker_info()
    for index in range(pool.size):  # every worker ready before timing
        pool.request(index, {"op": "ping"}, 60.0)
    startup = time.perf_counter() - started
    with pool:
        started = time.perf_counter()
        results = pool.run_many(snippets)
        sandbox_s = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    print(f"sandbox ({info.mode} isolation): pool start {startup:.2f}s (once), {sandbox_s:.2f}s for the snippets, "
          f"{len(failed)} failed")  # fmt: skip

    before = None
    if args.before:
        before = run_sandbox_at(args.before, snippets, args.workers, args.timeout_s, args.isolation)
        same = sum(r.stdout == b for r, b in zip(results, before["stdout"], strict=True))
        print(f"sandbox at {args.before} ({before['mode']} isolation): {before['seconds']:.2f}s for the snippets, "
              f"outputs identical to the current sandbox's: {same}/{len(snippets)}")  # fmt: skip

    subprocess_s, subprocess_outputs = run_subprocesses(snippets, args.workers, args.timeout_s)
    exec_s, exec_outputs = run_in_process(snippets)
    agree = sum(r.stdout == s == e for r, s, e in zip(results, subprocess_outputs, exec_outputs, strict=True))
    print(f"outputs identical across the three ways: {agree}/{len(snippets)}")

    rate = {name: len(snippets) / seconds for name, seconds in
            (("sandbox", sandbox_s), ("python -c", subprocess_s), ("in-process exec", exec_s))}  # fmt: skip
    print()
    print(f"{'way':<18}{'seconds':>10}{'snippets/s':>14}")
    for name, seconds in (("sandbox", sandbox_s), ("python -c", subprocess_s), ("in-process exec", exec_s)):
        print(f"{name:<18}{seconds:>10.2f}{rate[name]:>14.1f}")
    print()
    print(f"sandbox / python -c     = {rate['sandbox'] / rate['python -c']:.1f}x  (goal >= 20x)")
    print(f"in-process exec / sandbox = {rate['in-process exec'] / rate['sandbox']:.2f}x  (the price of isolation; "
          "goal <= 6x)")  # fmt: skip
    if before is not None:
        before_rate = len(snippets) / float(before["seconds"])
        print(f"sandbox at {args.before}: {before_rate:.1f} snippets/s; now {rate['sandbox']:.1f} snippets/s "
              f"(now / before = {rate['sandbox'] / before_rate:.2f}x)")  # fmt: skip
    per_core = rate["in-process exec"] / (rate["sandbox"] / args.workers)
    print(f"in-process exec / sandbox per core = {per_core:.2f}x")
    print(f"sandbox incl. pool start / python -c = {len(snippets) / (sandbox_s + startup) / rate['python -c']:.1f}x")


if __name__ == "__main__":
    main()
