"""Samples that do not depend on how records are split into batches, files or hosts.

A record's place in a sample is decided by a seeded hash of its values (features and
label): the sample of a stream is its records with the smallest hashes (a bottom-k
sample). That makes it uniform over the records, the same whatever their order, and
mergeable: the sample of two streams is the bottom-k of the two samples. So one host
and n hosts keep the same records, and a merge in any grouping gives the same result.
Identical records hash alike and are kept or dropped together.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from ..data.blocks import Block, concat
from .split import HashPositions, splitmix

SAMPLE_KEY = np.uint64(0x9E3779B97F4A7C15)  # remixes the split's hash, so a record's sample rank is independent of its role


@lru_cache(maxsize=8)
def _hasher(seed: int) -> HashPositions:
    return HashPositions(seed)


def from_split_hashes(h: np.ndarray) -> np.ndarray:
    """Sample hashes from the data split's hashes of the same records (one 64-bit mix each: no second pass over values)."""
    return splitmix(h ^ SAMPLE_KEY)


def record_hashes(block: Block, seed: int) -> np.ndarray:
    """The seeded 64-bit hash that orders records in every sample of this job."""
    return from_split_hashes(_hasher(seed).hash(block.X, block.y))


def nbytes(block: Block) -> int:
    X = block.X
    size = sum(a.nbytes for a in (X.data, X.indices, X.indptr)) if sp.issparse(X) else X.nbytes
    return int(size) + (0 if block.y is None else block.y.nbytes)


class HashSample:
    """The records with the smallest hashes, at most ``capacity`` records and about ``budget`` bytes.

    ``seen`` counts every record offered. Blocks are kept as they come until the limits are
    passed by a quarter, then cut back to the limit: the new cutoff comes from the hashes alone
    (8 bytes a record), and each kept block is filtered in place, so memory stays near the limit.
    """

    SLACK = 1.25

    def __init__(self, seed: int, capacity: int | None = None, budget: int | None = None):
        self.seed, self.capacity, self.budget = seed, capacity, budget
        self.blocks: list[Block] = []
        self.hashes: list[np.ndarray] = []
        self.seen = 0
        self.kept = 0
        self.bytes = 0
        self.cutoff = np.uint64(2**64 - 1)  # once trimmed: records hashing above it can never enter

    def add(self, block: Block, hashes: np.ndarray | None = None) -> None:
        if len(block) == 0:
            return
        self.seen += len(block)
        h = record_hashes(block, self.seed) if hashes is None else hashes
        below = h <= self.cutoff
        if not below.all():
            block, h = block.take(below), h[below]
        if len(h):
            self._keep(block, h)

    def _keep(self, block: Block, h: np.ndarray) -> None:
        self.blocks.append(block)
        self.hashes.append(h)
        self.kept += len(h)
        self.bytes += nbytes(block)
        limit = self.limit()
        if limit is not None and self.kept > self.SLACK * limit:
            self._trim(limit)

    def limit(self) -> int | None:
        """Records to keep after a trim: the capacity, and what leaves the slack inside the byte budget at the
        kept records' average size (so the budget is never passed)."""
        limits = [self.capacity] if self.capacity is not None else []
        if self.budget is not None and self.kept:
            limits.append(max(1, int(self.budget / self.SLACK // max(self.bytes / self.kept, 1))))
        return min(limits) if limits else None

    def _trim(self, limit: int) -> None:
        """Keep the ``limit`` smallest hashes (and any records tied with the largest of them)."""
        if self.kept > limit:
            self.cutoff = np.partition(np.concatenate(self.hashes), limit - 1)[limit - 1]
            for i, h in enumerate(self.hashes):  # one block at a time: the old copy goes before the next is made
                keep = h <= self.cutoff
                if not keep.all():
                    self.blocks[i], self.hashes[i] = self.blocks[i].take(keep), h[keep]
            self.blocks = [b for b, h in zip(self.blocks, self.hashes) if len(h)]
            self.hashes = [h for h in self.hashes if len(h)]
        self.kept, self.bytes = sum(len(h) for h in self.hashes), sum(nbytes(b) for b in self.blocks)

    def _joined(self) -> tuple[Block, np.ndarray]:
        if len(self.blocks) == 1:
            return self.blocks[0], self.hashes[0]
        return concat(self.blocks), np.concatenate(self.hashes)

    def merge(self, other: "HashSample") -> None:
        """Fold another host's sample in: the result is the sample of everything both saw."""
        self.seen += other.seen
        for block, h in zip(other.blocks, other.hashes):
            below = h <= self.cutoff
            if below.any():
                self._keep(block.take(below) if not below.all() else block, h[below])
        self.cutoff = min(self.cutoff, other.cutoff)

    def result(self) -> tuple[Block | None, np.ndarray]:
        """(the kept records in hash order, their hashes); (None, empty) if nothing was kept."""
        if not self.blocks:
            return None, np.zeros(0, np.uint64)
        limit = self.limit()
        if limit is not None:
            self._trim(limit)
        block, h = self._joined()
        order = np.argsort(h, kind="stable")
        return block.take(order), h[order]

    def blocks_of(self, size: int):
        """The kept records in blocks of at most ``size``, in no particular order (for scoring: no copy)."""
        limit = self.limit()
        if limit is not None:
            self._trim(limit)
        for block in self.blocks:
            for start in range(0, len(block), size):
                yield block.rows(start, start + size)
