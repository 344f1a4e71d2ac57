"""Model translation of math text into computations with Python code, executed and verified (MathCoder2 §2.2).

- :mod:`.prompt`: the instruction (never cut) and the document side (truncated or chunked);
- :mod:`.parser`: responses → computations (conditions, LaTeX expression, stated result, code), failures counted;
- :mod:`.verify`: printed output vs stated result (the project's grader, plus rounding and percent rules);
- :mod:`.execution`: snippets through the sandbox (:mod:`mathcode_pile.sandbox`) and the verdicts, shared by the
  ``verify_computations`` stage and ``mathcode-pile verify`` (:mod:`.verify_command`);
- :mod:`.render`: verified steps and their code interleaved with the source text;
- :mod:`.report`: the per-source funnel (documents → responses → computations → ran OK → verified) in the card.
"""
