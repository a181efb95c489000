"""Finding the leaf of every (record, tree) pair of a forest stored as flat node arrays.

Three ways, chosen by the size of the job, all giving the same leaves:

* a plain Python walk, for a few records (one request row): no numpy call overhead;
* numpy, all pairs one level per step (leaves point to themselves, so no masking),
  for medium batches;
* scikit-learn's compiled trees, rebuilt from the arrays (no pickle involved),
  one thread per CPU over the trees, for big batches (batch transform). scikit-learn
  is imported on the first such batch only, so it never slows the server's start.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterator

import numpy as np

from ..data.blocks import dense

log = logging.getLogger(__name__)

PYTHON_STEP_US, NUMPY_CALL_US, NUMPY_ELEMENT_US = 0.15, 7.0, 0.012  # rough costs, measured on this project's CI machine
COMPILED_MIN_PAIRS = 5_000  # records x trees from which the compiled walk pays for itself (100 trees: 50 records)
COMPILED_MIN_TREES = 8  # a lone tree (or a few) walks big batches fast enough in numpy: no scikit-learn in memory


def levels(left, right, feature, roots) -> Iterator[np.ndarray]:
    """The node indices at each depth, roots first. It ends on a forest (``forest_problem`` says None); on node
    arrays with shared children or cycles reached from a root it may not."""
    level = roots
    while level.size:
        yield level
        inner = level[feature[level] >= 0]
        level = np.concatenate([left[inner], right[inner]])


def forest_problem(left, right, feature, roots, n_features: int) -> str | None:
    """What keeps these node arrays from being a forest every walk can trust, or None.

    Each tree's nodes are one contiguous run starting at its root (as the compiled walk rebuilds them); a leaf
    has feature -2 and no children; an inner node splits on a feature < ``n_features`` and has two children in
    its own tree; every node but a root is the child of exactly one node, and is reached from a root (no cycles).
    """
    nodes = len(left)
    if not nodes or not len(roots) or roots[0] != 0 or (np.diff(roots) <= 0).any() or roots[-1] >= nodes:
        return f"roots {roots[:5].tolist()}... must start at 0 and increase, below {nodes} nodes"
    leaf = feature < 0
    bad = np.where(leaf, (feature != -2) | (left != -1) | (right != -1),
                   (feature >= n_features) | (left < 0) | (left >= nodes) | (right < 0) | (right >= nodes))
    if bad.any():
        i = int(np.argmax(bad))
        return f"node {i} (feature {feature[i]}, children {left[i]}, {right[i]}) is neither a leaf nor a split on one of {n_features} features"
    inner = np.flatnonzero(~leaf)
    tree_of = np.searchsorted(roots, np.arange(nodes), side="right") - 1
    children = np.concatenate([left[inner], right[inner]])
    outside = tree_of[children] != np.tile(tree_of[inner], 2)
    if outside.any():
        return f"node {int(np.tile(inner, 2)[np.argmax(outside)])} has a child in another tree"
    parents = np.bincount(children, minlength=nodes)
    expected = np.ones(nodes, np.int64)
    expected[roots] = 0
    if (parents != expected).any():
        i = int(np.argmax(parents != expected))
        return f"node {i} has {parents[i]} parents, {expected[i]} expected"
    reached = sum(len(level) for level in levels(left, right, feature, roots))  # one parent each: every node met once
    if reached != nodes:
        return f"{nodes - reached} nodes form a cycle unreachable from any root"
    return None


class Walker:
    def __init__(self, left, right, feature, threshold, roots, n_features: int):
        self.left, self.right, self.feature, self.threshold, self.roots = left, right, feature, threshold, roots
        self.n_features = n_features
        leaf = feature < 0
        index = np.arange(len(left))
        self._left = np.where(leaf, index, left)  # a leaf is its own child
        self._right = np.where(leaf, index, right)
        self._feature = np.where(leaf, 0, feature)
        self._threshold = np.where(leaf, np.inf, threshold)
        depth = self._depths()
        self.max_depth = int(depth.max())
        self.mean_leaf_depth = float(depth[leaf].mean())
        self._lists = None
        self._compiled = None
        self._lock = threading.Lock()

    @property
    def compiles(self) -> bool:
        """Whether big batches go through scikit-learn's compiled trees (forests only)."""
        return len(self.roots) >= COMPILED_MIN_TREES

    def _depths(self) -> np.ndarray:
        depth = np.zeros(len(self.left), np.int64)
        for d, level in enumerate(levels(self.left, self.right, self.feature, self.roots)):
            depth[level] = d
        return depth

    def mean_value(self, X, value: np.ndarray) -> np.ndarray:
        """The mean over trees of each record's leaf value row: shape (records, value columns)."""
        if self.compiles and X.shape[0] * len(self.roots) >= COMPILED_MIN_PAIRS:
            return self._compiled_mean(X, value)
        return value[self.leaves(X)].mean(axis=1)

    def leaves(self, X) -> np.ndarray:
        """Global leaf index of every (record, tree): shape (records, trees). For small and medium batches."""
        pairs = X.shape[0] * len(self.roots)
        python_us = pairs * self.mean_leaf_depth * PYTHON_STEP_US
        numpy_us = self.max_depth * (NUMPY_CALL_US + pairs * NUMPY_ELEMENT_US)
        return self._python_leaves(X) if python_us < numpy_us else self._numpy_leaves(X)

    def _python_leaves(self, X) -> np.ndarray:
        if self._lists is None:
            self._lists = (self.left.tolist(), self.right.tolist(), self.feature.tolist(), self.threshold.tolist(), self.roots.tolist())
        L, R, F, T, roots = self._lists
        out = []
        for x in dense(X).tolist():
            row = []
            for n in roots:
                f = F[n]
                while f >= 0:
                    n = L[n] if x[f] <= T[n] else R[n]
                    f = F[n]
                row.append(n)
            out.append(row)
        return np.array(out, dtype=np.int64).reshape(X.shape[0], len(roots))

    def _numpy_leaves(self, X) -> np.ndarray:
        X = np.ascontiguousarray(dense(X), dtype=np.float32)
        n = X.shape[0]
        node = np.tile(self.roots, n)
        base = np.repeat(np.arange(n, dtype=np.int64) * X.shape[1], len(self.roots))
        flat = X.ravel()
        for _ in range(self.max_depth):
            go_left = flat[base + self._feature[node]] <= self._threshold[node]
            node = np.where(go_left, self._left[node], self._right[node])
        return node.reshape(n, len(self.roots))

    def _compiled_mean(self, X, value: np.ndarray) -> np.ndarray:
        """Each thread walks a share of the trees and sums their leaf values; ``apply`` releases the GIL."""
        from concurrent.futures import ThreadPoolExecutor

        from ..cpus import available_cpus

        trees = self.compiled_trees()
        X = np.ascontiguousarray(dense(X), dtype=np.float32)
        threads = min(available_cpus(), len(trees))

        def walk(share: int) -> np.ndarray:
            total = np.zeros((X.shape[0], value.shape[1]))
            for t in range(share, len(trees), threads):
                total += value[trees[t].apply(X) + self.roots[t]]
            return total

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return sum(pool.map(walk, range(threads))) / len(trees)

    def compiled_trees(self) -> list:
        with self._lock:
            if self._compiled is None:
                self._compiled = self._build_compiled()
            return self._compiled

    def _build_compiled(self) -> list:
        import time

        started = time.monotonic()
        from sklearn.tree._tree import NODE_DTYPE, Tree

        ends = np.append(self.roots[1:], len(self.left))
        trees = []
        for start, end in zip(self.roots, ends):
            count = int(end - start)
            nodes = np.zeros(count, dtype=NODE_DTYPE)
            leaf = self.feature[start:end] < 0
            nodes["left_child"] = np.where(leaf, -1, self.left[start:end] - start)
            nodes["right_child"] = np.where(leaf, -1, self.right[start:end] - start)
            nodes["feature"] = np.where(leaf, -2, self.feature[start:end])
            nodes["threshold"] = np.where(leaf, -2.0, self.threshold[start:end])
            tree = Tree(self.n_features, np.array([1], dtype=np.intp), 1)
            tree.__setstate__({"max_depth": self.max_depth, "node_count": count, "nodes": nodes,
                               "values": np.zeros((count, 1, 1), np.float64)})
            trees.append(tree)
        log.info("compiled tree walk ready for big batches (%d trees, scikit-learn loaded in %.2f s)", len(trees), time.monotonic() - started)
        return trees
