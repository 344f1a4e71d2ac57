"""MathCoder's code-executing inference and its evaluation.

``engine`` runs the loop (generate a block, execute code blocks in the problem's own sandboxed Python session,
append the output, repeat) in any block syntax of :mod:`mathcode_pile.lce.syntax` (LCE here, fenced Markdown for
:mod:`evaluation.tir_eval`); ``backends`` supplies blocks from a local transformers model or a TGI endpoint;
``benchmarks`` reads GSM8K, MATH, SVAMP, Mathematics and SimulEq; ``evaluate`` is the command line that grades
through :mod:`evaluation.grading`; ``report`` sets the results beside MathCoder's Table 2.
"""
