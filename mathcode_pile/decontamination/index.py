"""One n-gram index of every benchmark test item, checked in the useful direction: test item inside document.

Every test item of at least ``n`` normalized tokens contributes all its ``n``-grams; a document is contaminated when
it contains any of them. An item shorter than ``n`` tokens has no ``n``-gram, so it is indexed whole and matches by
normalized containment: the document contains the item's full token sequence. Items shorter than
``min_item_tokens`` (``"Which statement is true?"``) are too generic to match on their own; they are counted per
benchmark in :attr:`NgramIndex.too_short` and reported, never dropped silently.

How the lookup stays fast: tokens are mapped to integer ids from the benchmarks' own vocabulary (a document token
outside it can start or end no match). Every window of a document is hashed with a polynomial hash modulo 2**64,
computed for all positions at once with NumPy from prefix sums (an odd base is invertible modulo 2**64, so a window's
hash is a difference of prefix sums times a power of the inverse). Window hashes are looked up in sorted arrays with
``searchsorted`` behind a one-bit-per-prefix filter that rejects almost every clean window in one array access. A
batch of documents is checked in one pass, separated by an unknown token so no window spans two
documents. The arrays are small and pickle quickly, and the hash does not depend on ``PYTHONHASHSEED``, so an index
built in one process answers the same in ``num_proc`` workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mathcode_pile.decontamination.benchmarks import TestItem
from mathcode_pile.decontamination.normalize import normalize_tokens

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2**64
_BASE_INVERSE = np.uint64(pow(int(_BASE), -1, 2**64))
_UNKNOWN = -1
_FILTER_BITS = 24  # 16M-entry prefix filter (16 MB): under 2% false hits with 300k windows


@dataclass(frozen=True)
class Match:
    """Why a document was flagged: which test item, how (``ngram`` or ``containment``), and the matched words."""

    benchmark: str
    test_id: str
    part: str
    kind: str
    matched_text: str

    def to_dict(self) -> dict[str, str]:
        return {
            "benchmark": self.benchmark,
            "test_id": self.test_id,
            "part": self.part,
            "match": self.kind,
            "matched_text": self.matched_text,
        }


def _powers(base: np.uint64, count: int) -> np.ndarray:
    powers = np.empty(count, dtype=np.uint64)
    if count:
        powers[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(np.full(count - 1, base, dtype=np.uint64), out=powers[1:])
    return powers


class WindowHasher:
    """Prefix sums of one id sequence, from which the hash of every window of any length is one vector operation."""

    def __init__(self, ids: np.ndarray) -> None:
        known = ids != _UNKNOWN
        values = np.where(known, ids, 0).astype(np.uint64)
        with np.errstate(over="ignore"):
            weighted = np.cumsum(values * _powers(_BASE, len(ids)), dtype=np.uint64)
        self.prefix = np.concatenate(([np.uint64(0)], weighted))
        self.inverse_powers = _powers(_BASE_INVERSE, len(ids))
        self.unknown_before = np.concatenate(([0], np.cumsum(~known)))
        self.size = len(ids)

    def windows(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every window of ``length`` ids and whether the window holds only known tokens."""
        count = self.size - length + 1
        if count <= 0:
            return np.empty(0, dtype=np.uint64), np.empty(0, dtype=bool)
        with np.errstate(over="ignore"):
            hashes = (self.prefix[length:] - self.prefix[:count]) * self.inverse_powers[:count]
        return hashes, (self.unknown_before[length:] - self.unknown_before[:count]) == 0


def window_hashes(ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every window of ``length`` ids and whether the window holds only known tokens."""
    return WindowHasher(ids).windows(length)


class NgramIndex:
    """Normalized n-gram (and short-item) index over benchmark test items."""

    def __init__(self, ngram_size: int = 13, min_item_tokens: int = 5) -> None:
        if ngram_size < 1:
            raise ValueError("ngram_size must be >= 1")
        if min_item_tokens < 1:
            raise ValueError("min_item_tokens must be >= 1")
        self.ngram_size = ngram_size
        self.min_item_tokens = min(min_item_tokens, ngram_size)
        self.items: list[TestItem] = []
        self.vocabulary: dict[str, int] = {}
        self.items_per_benchmark: Counter[str] = Counter()
        self.too_short: Counter[str] = Counter()
        # window length -> hash -> item index, for items added since the last lookup (first item wins)
        self._pending: dict[int, dict[int, int]] = {}
        # window length -> (sorted hashes, item indices), what lookups use
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._filter = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        """Number of distinct windows (n-grams plus whole short items) in the index."""
        return sum(len(keys) for keys, _ in self._frozen().values())

    @classmethod
    def build(cls, items: Iterable[TestItem], ngram_size: int = 13, min_item_tokens: int = 5) -> NgramIndex:
        index = cls(ngram_size, min_item_tokens)
        for item in items:
            index.add(item)
        return index

    def add(self, item: TestItem) -> None:
        """Index one test item (first item wins when two share an n-gram)."""
        item_index = len(self.items)
        self.items.append(item)
        self.items_per_benchmark[item.benchmark] += 1
        tokens = normalize_tokens(item.text)
        if len(tokens) < self.min_item_tokens:
            self.too_short[item.benchmark] += 1
            return
        vocabulary = self.vocabulary
        ids = np.array([vocabulary.setdefault(token, len(vocabulary)) for token in tokens], dtype=np.int64)
        length = min(len(ids), self.ngram_size)
        hashes, _ = window_hashes(ids, length)
        windows = self._pending.setdefault(length, {})
        for value in hashes.tolist():
            windows.setdefault(value, item_index)

    def _frozen(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Sorted hash arrays per window length, with the items added since the last call merged in."""
        if not self._pending:
            return self._tables
        for length, windows in self._pending.items():
            keys = np.fromiter(windows.keys(), dtype=np.uint64, count=len(windows))
            values = np.fromiter(windows.values(), dtype=np.int64, count=len(windows))
            if length in self._tables:  # earlier items win: keep the existing entry of a shared window
                old_keys, old_values = self._tables[length]
                fresh = ~np.isin(keys, old_keys)
                keys = np.concatenate((old_keys, keys[fresh]))
                values = np.concatenate((old_values, values[fresh]))
            order = np.argsort(keys, kind="stable")
            self._tables[length] = (keys[order], values[order])
        self._pending.clear()
        # one bit per hash prefix: most windows are rejected by one array lookup instead of a binary search
        self._filter = np.zeros(1 << _FILTER_BITS, dtype=bool)
        for keys, _ in self._tables.values():
            self._filter[keys >> np.uint64(64 - _FILTER_BITS)] = True
        return self._tables

    def find(self, text: str) -> Match | None:
        """The first test item found inside ``text``, or ``None`` when the text is clean."""
        return self.find_batch([text])[0]

    def find_batch(self, texts: Sequence[str]) -> list[Match | None]:
        """:meth:`find` for many documents in one vectorized pass."""
        results: list[Match | None] = [None] * len(texts)
        tables = self._frozen()
        if not tables or not texts:
            return results
        get = self.vocabulary.get
        token_lists = [normalize_tokens(text) for text in texts]
        starts = np.zeros(len(texts), dtype=np.int64)
        ids: list[int] = []
        for position, tokens in enumerate(token_lists):
            starts[position] = len(ids)
            ids.extend([get(token, _UNKNOWN) for token in tokens])
            ids.append(_UNKNOWN)  # no window spans two documents
        id_array = np.array(ids, dtype=np.int64)
        shift = np.uint64(64 - _FILTER_BITS)
        hasher = WindowHasher(id_array)
        for length in sorted(tables, reverse=True):  # n-grams first, then shorter whole items
            keys, values = tables[length]
            hashes, valid = hasher.windows(length)
            candidates = np.flatnonzero(valid)
            candidates = candidates[self._filter[hashes[candidates] >> shift]]
            slots = np.minimum(np.searchsorted(keys, hashes[candidates]), len(keys) - 1)
            found = keys[slots] == hashes[candidates]
            hits, hit_slots = candidates[found], slots[found]
            docs = np.searchsorted(starts, hits, side="right") - 1
            for position, slot, doc in zip(hits.tolist(), hit_slots.tolist(), docs.tolist(), strict=True):
                if results[doc] is not None:
                    continue
                item = self.items[int(values[slot])]
                offset = position - int(starts[doc])
                matched = " ".join(token_lists[doc][offset : offset + length])
                kind = "ngram" if length == self.ngram_size else "containment"
                results[doc] = Match(item.benchmark, item.test_id, item.part, kind, matched)
        return results

    def summary(self) -> dict[str, dict[str, int]]:
        """Per benchmark: items read, items indexed, items too short to match alone."""
        return {
            name: {
                "items": count,
                "indexed": count - self.too_short[name],
                "too_short": self.too_short[name],
            }
            for name, count in sorted(self.items_per_benchmark.items())
        }

    def __getstate__(self) -> dict[str, object]:
        # workers get the compact sorted arrays, not the build-time dictionaries
        self._frozen()
        return dict(self.__dict__)
