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
from .split import HashPositions

SAMPLE_SALT = 2**32 + 1  # samples hash with another key than the data split, so they are independent of the roles


@lru_cache(maxsize=8)
def _hasher(seed: int) -> HashPositions:
    return HashPositions(seed + SAMPLE_SALT)


def record_hashes(block: Block, seed: int) -> np.ndarray:
    """The seeded 64-bit hash that orders records in every sample of this job."""
    return _hasher(seed).hash(block.X, block.y)


def nbytes(block: Block) -> int:
    X = block.X
    size = sum(a.nbytes for a in (X.data, X.indices, X.indptr)) if sp.issparse(X) else X.nbytes
    return int(size) + (0 if block.y is None else block.y.nbytes)


class HashSample:
    """The records with the smallest hashes, at most ``capacity`` records and about ``budget`` bytes.

    ``seen`` counts every record offered. Blocks are kept as they come until the limits are
    passed twice over, then cut back to the limit, so adding costs amortized O(records).
    """

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
        if limit is not None and self.kept > 2 * limit:
            self._trim(limit)

    def limit(self) -> int | None:
        """Records to keep: the capacity, and what fits the byte budget at the kept records' average size."""
        limits = [self.capacity] if self.capacity is not None else []
        if self.budget is not None and self.kept:
            limits.append(max(1, int(self.budget // max(self.bytes / self.kept, 1))))
        return min(limits) if limits else None

    def _trim(self, limit: int) -> None:
        block, h = self._joined()
        if len(h) > limit:
            order = np.argsort(h, kind="stable")[:limit]
            order.sort()
            block, h = block.take(order), h[order]
            self.cutoff = h.max()
        self.blocks, self.hashes = [block], [h]
        self.kept, self.bytes = len(h), nbytes(block)

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
        """The kept records in blocks of at most ``size`` (for scoring)."""
        block, _ = self.result()
        if block is not None:
            for start in range(0, len(block), size):
                yield block.rows(start, start + size)
