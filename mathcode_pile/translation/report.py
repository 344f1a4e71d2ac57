"""The translation funnel in the dataset card: per source, documents → responses → parsed computations → ran OK →
verified, as a table and a plot, with the reasons behind every loss.

Each translation stage counts its level per source in its statistics (``funnel/<level>/<source>`` keys of
``StageStats.extra``, summed over shards like every counter, so resumed shards keep theirs). When the card is written,
:func:`mathcode_pile.card.stage_sections` hands every stage its merged statistics in pipeline order: the translate,
parse and verify stages' renderers only :meth:`TranslationFunnel.record` theirs, and the render stage, which comes
last, turns everything recorded into one section.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from mathcode_pile.card import CardSection
from mathcode_pile.card_text import markdown_text, plot_label
from mathcode_pile.stats import StageStats

FUNNEL_LEVELS = ("documents", "responses", "computations", "ran_ok", "verified")
LEVEL_TITLES = {
    "documents": "documents",
    "responses": "with a response",
    "computations": "parsed computations",
    "ran_ok": "ran OK",
    "verified": "verified",
}
PLOT_PATH = "plots/translation_funnel.png"
#: The funnel levels each stage counts (a level it counted zero times still belongs in the table).
STAGE_LEVELS = {
    "translate": ("documents", "responses"),
    "parse_computations": ("computations",),
    "verify_computations": ("ran_ok", "verified"),
}


def funnel_key(level: str, source: str) -> str:
    return f"funnel/{level}/{source}"


def reason_key(group: str, reason: str) -> str:
    """Counter key of a loss reason (``parse_issue/missing_code``, ``exec_status/timeout``, ``verify/mismatch``)."""
    return f"{group}/{reason}"


class TranslationFunnel:
    """Per-source funnel counts and loss reasons, gathered from the translation stages' statistics."""

    def __init__(self) -> None:
        self.levels: dict[str, Counter[str]] = defaultdict(Counter)
        self.reasons: dict[str, Counter[str]] = defaultdict(Counter)

    def reset(self) -> None:
        self.levels.clear()
        self.reasons.clear()

    def record(self, stats: StageStats) -> None:
        """Take the funnel and reason counters of one stage (a card-section renderer that adds no section)."""
        for level in STAGE_LEVELS.get(stats.stage, ()):
            self.levels.setdefault(level, Counter())
        for key, count in stats.extra.items():
            group, _, rest = key.partition("/")
            if group == "funnel":
                level, _, source = rest.partition("/")
                self.levels[level][source] = count
            elif group in ("parse_issue", "exec_status", "verify"):
                self.reasons[group][rest] = count

    def sources(self) -> list[str]:
        return sorted({source for counts in self.levels.values() for source in counts})

    def table(self) -> str:
        levels = [level for level in FUNNEL_LEVELS if level in self.levels]
        header = "| source | " + " | ".join(LEVEL_TITLES[level] for level in levels) + " |"
        rule = "|---|" + "---:|" * len(levels)
        rows = [header, rule]
        totals: Counter[str] = Counter()
        for source in self.sources():
            cells = [f"{self.levels[level][source]:,}" for level in levels]
            totals.update({level: self.levels[level][source] for level in levels})
            rows.append(f"| {markdown_text(source)} | " + " | ".join(cells) + " |")
        if len(self.sources()) > 1:
            rows.append("| **total** | " + " | ".join(f"**{totals[level]:,}**" for level in levels) + " |")
        return "\n".join(rows)

    def reasons_text(self) -> str:
        titles = {
            "parse_issue": "Blocks or responses that could not be parsed",
            "exec_status": "Sandbox outcomes of the snippets",
            "verify": "Verification outcomes of the snippets that ran",
        }
        lines = []
        for group, title in titles.items():
            counts = self.reasons.get(group)
            if counts:
                listed = ", ".join(f"{reason}: {count:,}" for reason, count in sorted(counts.items()))
                lines.append(f"- {title}: {listed}.")
        return "\n".join(lines)

    def plot(self, path: Path) -> None:
        """Grouped bars, one group per source, one bar per funnel level."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        levels = [level for level in FUNNEL_LEVELS if level in self.levels]
        sources = self.sources()
        positions = np.arange(len(sources))
        width = 0.8 / max(1, len(levels))
        figure, axis = plt.subplots(figsize=(max(5.0, 1.6 * len(sources) + 3), 3.4), dpi=100)
        for index, level in enumerate(levels):
            values = [self.levels[level][source] for source in sources]
            axis.bar(positions + (index - (len(levels) - 1) / 2) * width, values, width, label=LEVEL_TITLES[level])
        axis.set_xticks(positions, [plot_label(source) for source in sources])
        axis.set_ylabel("count")
        axis.set_title("Translation funnel per source")
        axis.legend(fontsize="small")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, metadata={"Software": None})
        plt.close(figure)

    def section(self, output_dir: Path | None, how_rendered: str) -> CardSection | None:
        """The card section (and its plot under ``output_dir``), or None when no translation stage ran."""
        if not self.levels:
            return None
        parts = [
            "Each document was sent to the translation model, which lists the document's computations (conditions "
            "needed, LaTeX expression, stated result, Python snippet). Every snippet ran in an isolated sandbox "
            "(fresh interpreter state, CPU / memory / file-size / process limits, no network, scrubbed environment) "
            "and was kept only if its printed output matched the stated result (math-verify, then a numeric "
            "tolerance). " + how_rendered,
            "",
            self.table(),
        ]
        reasons = self.reasons_text()
        if reasons:
            parts += ["", reasons]
        if output_dir is not None:
            self.plot(output_dir / PLOT_PATH)
            parts += ["", f"![Translation funnel per source]({PLOT_PATH})"]
        return CardSection(title="Model-translated mathematical code", body="\n".join(parts))


#: The funnel of the build running in this process (reset when the render stage is created).
FUNNEL = TranslationFunnel()
