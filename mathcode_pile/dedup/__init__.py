"""Near-duplicate removal across sources: MinHash LSH from datasketch, keep the first document of each cluster."""

from mathcode_pile.dedup.minhash import DuplicateOf, NearDuplicateIndex, deduplicate_texts, shingles

__all__ = ["DuplicateOf", "NearDuplicateIndex", "deduplicate_texts", "shingles"]
