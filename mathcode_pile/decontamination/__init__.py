"""Benchmark decontamination: a normalized n-gram index of test items, a file-level runner and its CLI."""

from mathcode_pile.decontamination.benchmarks import BenchmarkError, TestItem, load_test_items
from mathcode_pile.decontamination.index import Match, NgramIndex
from mathcode_pile.decontamination.normalize import normalize_text, normalize_tokens

__all__ = [
    "BenchmarkError",
    "Match",
    "NgramIndex",
    "TestItem",
    "load_test_items",
    "normalize_text",
    "normalize_tokens",
]
