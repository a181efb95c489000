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

from ..errors import DataError


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


def widened(X, width: int):
    """Sparse records ``width`` columns wide, the columns they did not reach being zero (libsvm records carry no
    width; sparse requests may omit trailing zeros). Dense records are as wide as they are."""
    if X.shape[1] == width:
        return X
    if not sp.issparse(X) or X.shape[1] > width:
        raise ValueError(f"records {X.shape[1]} wide cannot be made {width} wide")
    X = sp.csr_matrix(X)
    return sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], width))


def fit_width(X, width: int, first: int = 0):
    """X as the ``width`` features the model takes: sparse records may be narrower (libsvm records carry no width,
    sparse requests may omit trailing zeros). DataError names the first record that does not fit, counting from
    ``first``."""
    got = X.shape[1]
    if got == width:
        return X
    if not sp.issparse(X):
        raise DataError(f"each record needs {width} features (the model's); got {got} (record {first})")
    if got < width:
        return widened(X, width)
    X = sp.csr_matrix(X)
    if (X.indices >= width).any():
        row, column = first_beyond(X, width)
        raise DataError(f"record {first + row} has feature index {column}, beyond the model's {width} features (indices count from 0)")
    raise DataError(f"the records have {got} features (sparse shape), more than the model's {width}")


def first_beyond(X, width: int) -> tuple[int, int]:
    """(row, column) of the first stored value of sparse X in a column >= ``width``: what makes X too wide."""
    X = sp.csr_matrix(X)
    i = int(np.argmax(X.indices >= width))
    return int(np.searchsorted(X.indptr, i, side="right") - 1), int(X.indices[i])


def concat(blocks: list[Block]) -> Block:
    """Stack blocks; mixes of dense and sparse become sparse, sparse ones as wide as the widest."""
    if len(blocks) == 1:
        return blocks[0]
    if any(sp.issparse(b.X) for b in blocks):
        width = max(b.n_features for b in blocks)
        X = sp.vstack([sp.csr_matrix(widened(b.X, width)) for b in blocks], format="csr", dtype=np.float32)
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
