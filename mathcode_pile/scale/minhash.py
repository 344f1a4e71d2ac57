"""datatrove's multi-stage MinHash set up to see documents as the one-machine dedup does.

The one-machine index (:mod:`mathcode_pile.dedup.minhash`) shingles the project's normalized tokens (case,
punctuation and LaTeX delimiters ignored) and bands signatures as datasketch chooses for the threshold. Here the
signature step takes its shingles from that same :func:`~mathcode_pile.dedup.minhash.shingles` function (hashed with
xxhash64 on bytes: datatrove's own per-n-gram hashing of str was the step's cost, and the xxhash release installed
here refuses str), so both paths shingle the same words, and the bucket count and hashes per bucket are
datasketch's banding for the same threshold and permutation count. The permutations differ, so the two agree on
clusters up to MinHash's estimate (``tests/test_scale_dedup.py`` checks planted near-duplicates are found alike).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xxhash
from datatrove.pipeline.dedup.minhash import MinhashDedupSignature
from datatrove.utils.hashing import HashConfig
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from mathcode_pile.decontamination.normalize import normalize_tokens
from mathcode_pile.dedup.minhash import shingles


class NormalizedWordTokenizer(WordTokenizer):
    """Words as the project's normalizer yields them (the tokens both dedup paths shingle)."""

    def __init__(self) -> None:
        super().__init__("xx")

    def word_tokenize(self, text: str) -> list[str]:
        return normalize_tokens(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def minhash_config(dedup_config: Any) -> Any:
    """datatrove's MinHash settings matching the one-machine index: same shingle size, same LSH banding."""
    from datasketch.lsh import _optimal_param
    from datatrove.pipeline.dedup.minhash import MinhashConfig

    bands, rows = _optimal_param(dedup_config.dedup_threshold, dedup_config.dedup_num_perm, 0.5, 0.5)
    off = TextNormConfig(
        lowercase=False, norm_whitespace=False, remove_punctuation=False, norm_unicode_diacritics=False,
        norm_numbers=False,
    )  # fmt: skip
    # sha1: datatrove 0.10.1 hands xxhash a str, which the xxhash releases this project installs refuse
    return MinhashConfig(
        hash_config=HashConfig(precision=64, hash_fc="sha1"),
        n_grams=dedup_config.dedup_ngram_size,
        num_buckets=bands,
        hashes_per_bucket=rows,
        norm_config=off,
    )


class NormalizedMinhashSignature(MinhashDedupSignature):
    """datatrove's signature step over the project's shingles."""

    def get_shingles(self, text: str) -> np.ndarray:
        hashes = [xxhash.xxh64_intdigest(shingle) for shingle in shingles(text, self.config.n_grams)]
        return np.array(hashes, dtype=np.uint64).reshape((-1, 1))


def signature_step(output_folder: str, config: Any) -> Any:
    return NormalizedMinhashSignature(output_folder, config=config, language=NormalizedWordTokenizer())
