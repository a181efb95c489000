"""Blocks of decoded rows and the re-batching stage.

A ``Block`` is what every format decoder yields: ``X`` is a float32 numpy array
or a float32 CSR matrix, ``y`` a float32 vector (NaN where a record had no
label) or ``None`` when no record had one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np
import scipy.sparse as sp


@dataclass
class Block:
    X: object
    y: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def rows(self, start: int, stop: int) -> "Block":
        return Block(self.X[start:stop], None if self.y is None else self.y[start:stop])

    def take(self, mask: np.ndarray) -> "Block":
        return Block(self.X[mask], None if self.y is None else self.y[mask])


def dense(X) -> np.ndarray:
    """X as a numpy array (sparse matrices expanded)."""
    return X.toarray() if sp.issparse(X) else X


def first_non_finite(X) -> tuple[int, int, float] | None:
    """(row, column, value) of the first NaN or infinity in X (dense or CSR), or None.

    The common case, all finite, costs one pass over the stored values."""
    values = X.data if sp.issparse(X) else X
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        i = int(np.argmax(bad))
        return int(np.searchsorted(X.indptr, i, side="right") - 1), int(X.indices[i]), float(X.data[i])
    row, col = np.argwhere(bad)[0]
    return int(row), int(col), float(X[row, col])


def concat(blocks: list[Block]) -> Block:
    """Stack blocks; mixes of dense and sparse become sparse."""
    if len(blocks) == 1:
        return blocks[0]
    if any(sp.issparse(b.X) for b in blocks):
        X = sp.vstack([sp.csr_matrix(b.X) for b in blocks], format="csr", dtype=np.float32)
    else:
        X = np.concatenate([b.X for b in blocks])
    if all(b.y is None for b in blocks):
        y = None
    else:
        y = np.concatenate([b.y if b.y is not None else np.full(len(b), np.nan, np.float32) for b in blocks])
    return Block(X, y)


def gather(blocks: Iterable[Block]) -> Block | None:
    """All blocks in one (a pass read into memory), or None if there were no records."""
    blocks = list(blocks)
    return concat(blocks) if blocks else None


def rebatch(blocks: Iterable[Block], size: int) -> Iterator[Block]:
    """Cut a stream of blocks of any size into batches of exactly ``size`` rows (last one shorter)."""
    pending: list[Block] = []
    count = 0
    for block in blocks:
        start = 0
        while len(block) - start > 0:
            take = min(size - count, len(block) - start)
            pending.append(block.rows(start, start + take))
            count += take
            start += take
            if count == size:
                yield concat(pending)
                pending, count = [], 0
    if count:
        yield concat(pending)
