"""Building blocks of multi-host training that need no cluster."""

from __future__ import annotations

import numpy as np
import pytest

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
    from byoa.stats import metrics as M
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


def test_initial_kmeans_centres_do_not_depend_on_how_records_are_split():
    from byoa.algorithms.kmeans import init_candidates, smallest_hashes

    X = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    whole = smallest_hashes([init_candidates(X, 12, 3)], 12)
    parts = smallest_hashes([init_candidates(X[i::3], 12, 3) for i in range(3)], 12)
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole, smallest_hashes([init_candidates(X, 12, 4)], 12))  # the seed matters


def test_merged_reservoirs_sample_each_host_in_proportion_to_what_it_saw():
    from byoa.stats.metrics import Reservoir

    shares = []
    for seed in range(200):
        a, b = Reservoir(50, [seed, 0]), Reservoir(50, [seed, 1])
        a.add(np.zeros((300, 1)))
        b.add(np.ones((100, 1)))
        a.merge(b)
        (sample,) = a.sample()
        assert len(sample) == 50 and a.seen == 400
        shares.append(sample.mean())
    assert abs(np.mean(shares) - 0.25) < 0.02  # b saw a quarter of the rows


def test_scaler_sums_merged_across_hosts_give_the_single_host_scaler():
    from byoa.algorithms.base import Context
    from byoa.algorithms.linear_learner import LinearLearnerAlgorithm, ScalerStats
    from byoa.hyperparameters import parse

    rng = np.random.default_rng(1)
    X = (rng.normal(size=(1000, 3)) * [1, 10, 100] + 5).astype(np.float32)
    y = (rng.random(1000) < 0.3).astype(np.float32)
    hp = parse(LinearLearnerAlgorithm.params, {"predictor_type": "binary_classifier", "feature_dim": "3", "positive_example_weight_mult": "balanced"}, "linear-learner").values
    whole, merged = LinearLearnerAlgorithm(hp, Context()), LinearLearnerAlgorithm(hp, Context())
    whole._setup(ScalerStats.of(Block(X, y), 2))
    parts = [ScalerStats.of(Block(X[i::2], y[i::2]), 2) for i in range(2)]
    parts[0].merge(parts[1])
    merged._setup(parts[0])
    np.testing.assert_allclose(merged.mean, X.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(merged.scale, X.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(merged.class_weights, whole.class_weights)
    assert merged.class_weights[1] == pytest.approx((y == 0).sum() / (y == 1).sum())


def test_forests_joined_across_hosts_map_leaf_values_onto_all_classes():
    from byoa.algorithms.base import Context
    from byoa.algorithms.trees import RandomForestAlgorithm
    from byoa.distributed.trees import join_forests
    from byoa.evaluation.views import MemoryChannel
    from byoa.hyperparameters import parse

    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 2)).astype(np.float32)
    y = np.where(X[:, 0] > 0, 2.0, 0.0).astype(np.float32)
    y[:150] = np.where(X[:150, 1] > 0, 1.0, y[:150])  # class 1 only on the first host
    hp = parse(RandomForestAlgorithm.params, {"n_estimators": "5"}, "random-forest").values
    models = [RandomForestAlgorithm(hp, Context()).fit(MemoryChannel("train", Block(X[s], y[s]), 0), None)
              for s in (slice(0, 150), slice(150, 300))]
    assert [len(m.classes) for m in models] == [3, 2]
    joined = join_forests([m.to_artifacts() for m in models], np.array([0.0, 1.0, 2.0]))
    assert len(joined.roots) == 10
    both = joined.predict(X)["score"]
    first, second = models[0].predict(X)["score"], models[1].predict(X)["score"]
    expected = (first + np.insert(second, 1, 0.0, axis=1)) / 2  # the second host never saw class 1
    np.testing.assert_allclose(both, expected, atol=1e-6)
