"""Metric formulas against scikit-learn's on fixed predictions, and the streaming accumulators."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from byoa.stats import metrics as M


def test_worked_example_cat_is_positive():
    actual = ["dog", "cat", "dog", "cat", "dog", "dog", "cat", "dog", "cat", "dog"]
    predicted = ["dog", "dog", "dog", "cat", "dog", "dog", "cat", "cat", "cat", "cat"]
    y = np.array([a == "cat" for a in actual])
    p = np.array([a == "cat" for a in predicted])
    tp, fp, fn, tn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum()), int((~y & ~p).sum())
    assert (tp, fn, fp, tn) == (3, 1, 2, 4)
    m = M.binary_from_confusion(tp, fp, fn, tn)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["recall"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.6)
    assert m["f_beta"] == pytest.approx(0.667, abs=5e-4)
    assert m["specificity"] == pytest.approx(0.667, abs=5e-4)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_binary_accumulator_equals_scikit_learn(beta):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000).astype(np.float32)
    prob = np.clip(0.35 * y + rng.random(3000) * 0.65, 0, 1).astype(np.float32)
    acc = M.BinaryAccumulator()
    for lo in range(0, 3000, 700):
        acc.add(y[lo : lo + 700], prob[lo : lo + 700])
    threshold = 0.4
    r = acc.result(threshold, beta)
    pred = prob >= threshold
    assert r["binary_classification_accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert r["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert r["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert r[M.beta_name("binary_f", beta)] == pytest.approx(skm.fbeta_score(y, pred, beta=beta))
    assert r["binary_classification_cross_entropy_objective"] == pytest.approx(skm.log_loss(y, prob), rel=1e-5)
    assert r["roc_auc_score"] == pytest.approx(skm.roc_auc_score(y, prob), abs=1e-3)  # 10,000 score bins


def test_multiclass_and_regression_accumulators_equal_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 2000)
    probs = rng.dirichlet(np.ones(4), 2000)
    probs[np.arange(2000), y] += 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    acc = M.MulticlassAccumulator(4, 2)
    acc.add(y.astype(np.float32), probs)
    r = acc.result(1.0)
    pred = probs.argmax(axis=1)
    assert r["multiclass_accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert r["macro_precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert r["macro_recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert r["macro_f_1.000"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert r["multiclass_top_k_accuracy_2"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=2))
    assert r["multiclass_cross_entropy_objective"] == pytest.approx(skm.log_loss(y, probs), rel=1e-6)
    assert r["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()

    t = rng.normal(size=500)
    p = t + rng.normal(scale=0.3, size=500)
    reg = M.RegressionAccumulator()
    reg.add(t[:200], p[:200])
    reg.add(t[200:], p[200:])
    r = reg.result()
    assert r["mse"] == pytest.approx(skm.mean_squared_error(t, p))
    assert r["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(t, p)))
    assert r["absolute_loss"] == pytest.approx(skm.mean_absolute_error(t, p))
    assert r["r2"] == pytest.approx(skm.r2_score(t, p))


def test_hash_samples_are_uniform_over_seeds_and_fixed_by_the_seed():
    from byoa.data.blocks import Block
    from byoa.stats.samples import HashSample

    X = np.arange(100, dtype=np.float32)[:, None]
    counts = np.zeros(100)
    for seed in range(300):
        sample = HashSample(seed, capacity=10)
        for lo in range(0, 100, 7):
            sample.add(Block(X[lo : lo + 7]))
        block, _ = sample.result()
        assert len(set(block.X[:, 0].tolist())) == 10 and sample.seen == 100
        counts[block.X[:, 0].astype(int)] += 1
    assert counts.min() > 10 and counts.max() < 60  # expected 30 each
    a, b = HashSample(7, capacity=5), HashSample(7, capacity=5)
    a.add(Block(X[:50]))
    b.add(Block(X[:50]))
    assert a.result()[0].X.tolist() == b.result()[0].X.tolist()
