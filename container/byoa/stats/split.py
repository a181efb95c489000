"""Which records train, which choose the threshold, which test: one position per record.

Every record of the training channel gets a *position* in [0, 1). Roles are
ranges of positions: ``[0, test)`` is test, the next ``validation`` share of
the rest is validation, the remainder trains. k-fold folds are ranges of the
non-test positions. Positions come from one of two sources:

* ``HashPositions``: a seeded hash of the record's values (features and label).
  Decided on the fly, so it works on a stream (Pipe mode, streaming algorithms),
  is stable when SageMaker reshuffles each epoch, and keeps exact duplicates in
  the same role (no duplicate leaks from train into test).
* ``IndexPositions``: computed from the whole label column in File mode, for
  exact fractions: a seeded permutation (``random``), a permutation within each
  class (``stratified``) or the reversed file order (``sequential``: the last
  rows get the smallest positions, so they are held out first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ..hyperparameters import AnyOf, Integer, Options, Param, Real

TRAIN, VALIDATION, TEST, IGNORE = 0, 1, 2, 3
ROLE_NAMES = ("train", "validation", "test")
STRATEGIES = ("random", "stratified", "sequential")

PARAMS = [
    Param("test_fraction", Real(0.05, 0.5), 0.2, "share of 'train' held out as test when there is no 'test' channel"),
    Param("threshold_fraction", Real(0.01, 0.5), 0.1,
          "share of the training part held out as validation (threshold, early stopping) when there is no 'validation' channel"),
    Param("split_strategy", Options(STRATEGIES), "random",
          "random; stratified (classifiers, File mode); sequential (last rows held out, File mode)"),
    Param("k_fold", AnyOf((Options((0,)), Integer(2, 20))), 0, "k-fold cross-validation on the non-test part (File mode); 0 = off"),
    Param("k_fold_tolerance", Real(0, 1), 0.05, "a fold further than this (absolute) from the mean makes the verdict inconsistent"),
]

def splitmix(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer: every input bit affects every output bit (uint64 arithmetic wraps)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


HASH_ROWS = 4096  # rows widened to 64 bits at a time: a small buffer reused, not a new array per block


def _dense_hash(bits: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Sum over columns of bits * key, mod 2**64, in row chunks through one reused buffer (cache-sized, and no
    fresh pages to fault in for every block)."""
    n = len(bits)
    h = np.empty(n, np.uint64)
    buf = np.empty((min(n, HASH_ROWS), bits.shape[1]), np.uint64)
    for lo in range(0, n, HASH_ROWS):
        part = bits[lo : lo + HASH_ROWS]
        wide = buf[: len(part)]
        np.copyto(wide, part, casting="unsafe")
        np.einsum("ij,j->i", wide, keys, out=h[lo : lo + len(part)])  # wraps mod 2**64; far faster than a product + row sum
    return h


class HashPositions:
    """Position = seeded multilinear hash of the row's float32 bit patterns, finalized by splitmix64.

    Integer arithmetic only, so a record hashes the same whatever batch it arrives in.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._keys: dict[int, np.ndarray] = {}

    def keys(self, width: int) -> np.ndarray:
        if width not in self._keys:
            rng = np.random.default_rng([self.seed, width])
            self._keys[width] = rng.integers(0, 2**63, width + 2, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        return self._keys[width]

    def hash(self, X, y: np.ndarray | None) -> np.ndarray:
        d = X.shape[1]
        K = self.keys(d)
        with np.errstate(over="ignore"):
            if sp.issparse(X):
                X = sp.csr_matrix(X)
                bits = np.ascontiguousarray(X.data, dtype=np.float32).view(np.uint32).astype(np.uint64)
                terms = (bits + K[X.indices]) * K[(X.indices + 1) % d]
                sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(terms, dtype=np.uint64)])
                h = sums[X.indptr[1:]] - sums[X.indptr[:-1]]
            else:
                h = _dense_hash(np.ascontiguousarray(X, dtype=np.float32).view(np.uint32), K[:d])
            if y is not None:
                label = np.ascontiguousarray(np.nan_to_num(y, nan=-1.0), dtype=np.float32).view(np.uint32).astype(np.uint64)
                h = h + label * K[d]
            return splitmix(h ^ K[d + 1])

    def __call__(self, block, first: int) -> np.ndarray:
        return unit(self.hash(block.X, block.y))


def unit(h: np.ndarray) -> np.ndarray:
    """Hashes as positions in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


class IndexPositions:
    """Positions computed in advance for the records of a File-mode channel, in file order."""

    def __init__(self, positions: np.ndarray):
        self.positions = positions

    def __call__(self, block, first: int) -> np.ndarray:
        return self.positions[first : first + len(block)]


def ordered_positions(y: np.ndarray, strategy: str, seed: int) -> np.ndarray:
    """Exact positions for ``len(y)`` records: ranks in a seeded permutation, per class when stratified."""
    n = len(y)
    if strategy == "sequential":
        return 1.0 - (np.arange(n) + 0.5) / n
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return (rng.permutation(n) + 0.5) / n
    positions = np.empty(n)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        positions[members] = (rng.permutation(len(members)) + 0.5) / len(members)
    return positions


def label_order_warning(y: np.ndarray) -> str | None:
    """Why a sequential split of this label column would mislead, or None.

    Labels grouped in runs (each value in one contiguous block, e.g. all 0s then all 1s)
    or strongly rank-correlated with row order look sorted.
    """
    y = y[~np.isnan(y)]
    values = np.unique(y)
    if len(y) < 4 or len(values) < 2:
        return None
    changes = int((y[1:] != y[:-1]).sum())
    if len(values) <= len(y) // 4 and changes <= len(values) - 1:
        return f"the label looks sorted: its {len(values)} values come in {changes + 1} contiguous runs"
    if len(values) > 10:
        ranks = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(np.float64)
        rho = float(np.corrcoef(np.arange(len(y)), ranks)[0, 1])
        if abs(rho) >= 0.9:
            return f"the label looks sorted: its rank correlation with row order is {rho:.2f}"
    return None


# ----------------------------------------------------------------------------- roles from positions


def holdout_roles(u: np.ndarray, test: float, validation: float) -> np.ndarray:
    """``[0, test)`` test, then ``validation`` of the rest, then train."""
    roles = np.full(len(u), TRAIN, np.uint8)
    roles[u < test + validation * (1.0 - test)] = VALIDATION
    roles[u < test] = TEST
    return roles


def fold_roles(u: np.ndarray, test: float, validation: float, k: int, fold: int, forward: bool) -> np.ndarray:
    """Roles for one fold of k-fold on the non-test positions; the final test part is never seen.

    ``forward`` (sequential): time-series forward chaining over k+1 blocks in file order;
    fold i trains on blocks 0..i (its latest ``validation`` share validates) and tests on block i+1.
    Otherwise fold i tests on the i-th k-th of the positions and trains on the others.
    """
    roles = np.full(len(u), IGNORE, np.uint8)
    rest = u >= test
    v = (u - test) / (1.0 - test)
    if forward:
        t = 1.0 - v  # 0 = earliest row
        block = np.minimum((t * (k + 1)).astype(np.int64), k)
        end = (fold + 1) / (k + 1)
        fit = rest & (block <= fold)
        roles[fit] = TRAIN
        roles[fit & (t >= end * (1.0 - validation))] = VALIDATION
        roles[rest & (block == fold + 1)] = TEST
        return roles
    which = np.minimum((v * k).astype(np.int64), k - 1)
    within = v * k - which  # uniform in [0, 1) inside each fold
    fit = rest & (which != fold)
    roles[fit] = TRAIN
    roles[fit & (within < validation)] = VALIDATION
    roles[rest & (which == fold)] = TEST
    return roles


@dataclass
class Split:
    """Assigns roles to the records of one channel, block by block."""

    positions: Callable
    role_of: Callable[[np.ndarray], np.ndarray]

    def roles(self, block, first: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Each record's role, and its hash when roles come from hashes (None for exact shares)."""
        if isinstance(self.positions, HashPositions):
            h = self.positions.hash(block.X, block.y)
            return self.role_of(unit(h)), h
        return self.role_of(self.positions(block, first)), None
