"""Building blocks of multi-host training that need no cluster."""

from __future__ import annotations

import numpy as np

from byoa.data.blocks import Block, concat
from byoa.distributed.data import share


def blocks_of(X, sizes):
    out, start = [], 0
    for n in sizes:
        out.append(Block(X[start : start + n], None))
        start += n
    return out


def test_fully_replicated_hosts_split_records_by_index_modulo_the_host_count():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    parts = [concat(list(share(iter(blocks_of(X, [3, 7, 10])), i, 3, "FullyReplicated"))).X for i in range(3)]
    assert sorted(np.concatenate(parts)[:, 0].tolist()) == X[:, 0].tolist()  # each record exactly once
    np.testing.assert_array_equal(parts[1][:, 0], X[1::3, 0])


def test_sharded_hosts_keep_all_their_records():
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    kept = concat(list(share(iter(blocks_of(X, [2, 3])), 1, 2, "ShardedByS3Key"))).X
    np.testing.assert_array_equal(kept, X)


def test_accumulators_merged_across_hosts_equal_one_accumulator_over_all_records():
    from byoa.evaluation import metrics as M
    from byoa.evaluation.baseline import BaselineStats

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 1000).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), 1000)
    score = rng.random(1000)
    halves = (slice(0, 400), slice(400, 1000))
    for make, feed in (
        (M.BinaryAccumulator, lambda a, s: a.add((y[s] > 0).astype(np.float32), score[s])),
        (lambda: M.MulticlassAccumulator(3, 2), lambda a, s: a.add(y[s], probs[s])),
        (M.RegressionAccumulator, lambda a, s: a.add(y[s], score[s])),
    ):
        whole, parts = make(), [make(), make()]
        feed(whole, slice(None))
        for part, s in zip(parts, halves):
            feed(part, s)
        parts[0].merge(parts[1])
        a, b = vars(whole), vars(parts[0])
        for key in a:
            np.testing.assert_allclose(np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float), rtol=1e-12, err_msg=key)
    X = rng.normal(size=(1000, 4)).astype(np.float32)
    for task in ("multiclass", "regression", "clustering"):
        whole, parts = BaselineStats(task), [BaselineStats(task), BaselineStats(task)]
        whole.add(Block(X, y))
        for part, s in zip(parts, halves):
            part.add(Block(X[s], y[s]))
        parts[0].merge(parts[1])
        assert whole.n == parts[0].n and whole.classes == parts[0].classes
        assert np.isclose(whole.sy, parts[0].sy) and np.isclose(whole.sxx, parts[0].sxx, rtol=1e-6)
