"""The one text normalization used on both sides of the contamination check (benchmark items and documents).

Unicode is folded with NFKC (full-width digits, ligatures, non-breaking spaces), then lower-cased; what remains are the
runs of letters and digits. That drops case, whitespace, punctuation and LaTeX delimiters (``$``, ``\\(``, ``\\[``,
braces, backslashes) in one pass, so ``Janet's ducks lay $16$ eggs`` and ``janet’s  ducks LAY 16 eggs`` give the same
tokens. LaTeX command names survive as words (``\\frac{1}{2}`` gives ``frac 1 2``) on both sides alike.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+")


def normalize_tokens(text: str) -> list[str]:
    """Lower-cased letter/digit runs of ``text`` after NFKC folding."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def normalize_text(text: str) -> str:
    """The normalized tokens joined by single spaces (what containment is checked on)."""
    return " ".join(normalize_tokens(text))
