"""Near-duplicate detection with MinHash LSH (datasketch), keeping the first document of every cluster.

Documents are shingled into word n-grams of the normalized text (the same normalization as decontamination: case,
punctuation and LaTeX delimiters ignored), hashed into MinHash signatures in bulk, and looked up in a
:class:`datasketch.MinHashLSH` index. An LSH hit is confirmed with the signatures' estimated Jaccard similarity, so a
banding false positive does not remove a document. A document is a duplicate when it is similar to one already
kept; it is then dropped and never indexed, so every cluster keeps exactly its first member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from mathcode_pile.decontamination.normalize import normalize_tokens

#: datasketch's default permutation scheme since 2.0; stored signatures are rebuilt with it.
MINHASH_SCHEME = "affine32"


def shingles(text: str, ngram_size: int) -> set[bytes]:
    """Word ``ngram_size``-grams of the normalized text; a shorter text is one shingle.

    A text without letters or digits (symbols only) is one shingle of its stripped raw form, so such texts are not
    all duplicates of each other.
    """
    tokens = normalize_tokens(text)
    if not tokens:
        return {text.strip().encode("utf-8")} if text.strip() else set()
    if len(tokens) <= ngram_size:
        return {" ".join(tokens).encode("utf-8")}
    return {" ".join(tokens[i : i + ngram_size]).encode("utf-8") for i in range(len(tokens) - ngram_size + 1)}


@dataclass(frozen=True)
class DuplicateOf:
    """The kept document a dropped one duplicates, with the estimated Jaccard similarity of their shingles."""

    key: str
    similarity: float


class NearDuplicateIndex:
    """Keys and signatures of the documents kept so far, queried by LSH banding."""

    def __init__(self, threshold: float = 0.7, num_perm: int = 128, ngram_size: int = 5, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if ngram_size < 1 or num_perm < 2:
            raise ValueError("ngram_size must be >= 1 and num_perm >= 2")
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram_size = ngram_size
        self.seed = seed
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._signatures: dict[str, LeanMinHash] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def __contains__(self, key: str) -> bool:
        return key in self._signatures

    def signatures(self, texts: Sequence[str], chunk: int = 1000) -> list[np.ndarray]:
        """MinHash hash values (``uint32[num_perm]``) of each text, computed in bulk ``chunk`` texts at a time."""
        values: list[np.ndarray] = []
        for start in range(0, len(texts), chunk):
            shingle_sets = [shingles(text, self.ngram_size) for text in texts[start : start + chunk]]
            minhashes = MinHash.bulk(shingle_sets, num_perm=self.num_perm, seed=self.seed)
            values.extend(np.asarray(m.hashvalues) for m in minhashes)
        return values

    def _lean(self, hashvalues: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=hashvalues, scheme=MINHASH_SCHEME)

    def find_duplicate(self, hashvalues: np.ndarray) -> DuplicateOf | None:
        """The most similar kept document at or above the threshold, or ``None``."""
        minhash = self._lean(hashvalues)
        best: DuplicateOf | None = None
        for key in self._lsh.query(minhash):
            similarity = float(minhash.jaccard(self._signatures[key]))
            if similarity >= self.threshold and (best is None or similarity > best.similarity):
                best = DuplicateOf(key, similarity)
        return best

    def add(self, key: str, hashvalues: np.ndarray) -> None:
        if key in self._signatures:
            return
        minhash = self._lean(hashvalues)
        self._lsh.insert(key, minhash)
        self._signatures[key] = minhash

    def check_and_add(self, key: str, hashvalues: np.ndarray) -> DuplicateOf | None:
        """Keep-first decision for one document: its duplicate, or ``None`` after indexing it as kept.

        A key already indexed (a document re-processed after an interrupted run) is kept, not matched with itself.
        """
        if key in self._signatures:
            return None
        duplicate = self.find_duplicate(hashvalues)
        if duplicate is None:
            self.add(key, hashvalues)
        return duplicate


def deduplicate_texts(
    keys: Sequence[str], texts: Sequence[str], threshold: float = 0.7, num_perm: int = 128, ngram_size: int = 5
) -> list[DuplicateOf | None]:
    """One-shot keep-first dedup of a list of documents (``None`` = kept)."""
    index = NearDuplicateIndex(threshold, num_perm, ngram_size)
    return [index.check_and_add(k, h) for k, h in zip(keys, index.signatures(texts), strict=True)]
