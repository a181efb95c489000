"""The engine's building blocks without a cluster: placement, hash samples, mergeable statistics, and, for every
registered algorithm, merges that give the same result in any grouping (run by the real executor over three
partitions in this process)."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import CSV, CSV_NO_LABEL, csv_bytes
from test_distributed import CASES

from byoa.algorithms import ALGORITHMS
from byoa.algorithms.base import QUIET
from byoa.data.blocks import Block, concat
from byoa.distributed.placement import Dealer
from byoa.engine.executor import Executor
from byoa.engine.partition import Partition
from byoa.hyperparameters import parse
from byoa.stats.samples import HashSample


def blocks_of(X, sizes):
    out, start = [], 0
    for n in sizes:
        out.append(Block(X[start : start + n], None))
        start += n
    return out


def test_fully_replicated_hosts_deal_each_role_in_turn():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    parts = []
    for i in range(3):
        dealer = Dealer(i, 3, "FullyReplicated")
        parts.append(concat([s for b in blocks_of(X, [3, 7, 10]) if (s := dealer.share(b, 0)) is not None]).X)
    assert sorted(np.concatenate(parts)[:, 0].tolist()) == X[:, 0].tolist()  # each record exactly once
    np.testing.assert_array_equal(parts[1][:, 0], X[1::3, 0])
    dealer = Dealer(1, 2, "FullyReplicated")  # roles are counted apart: each role is dealt from its own first record
    assert dealer.share(Block(X[:3]), 0).X[:, 0].tolist() == [2.0] and dealer.share(Block(X[3:5]), 2).X[:, 0].tolist() == [8.0]


def test_sharded_hosts_keep_all_their_records():
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    dealer = Dealer(1, 2, "ShardedByS3Key")
    assert all(dealer.share(b) is b for b in blocks_of(X, [2, 3]))


@pytest.mark.parametrize("sparse", [False, True])
def test_hash_samples_do_not_depend_on_order_batches_or_hosts(sparse):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5)).astype(np.float32)
    X[rng.random(X.shape) < 0.5] = 0
    y = rng.integers(0, 3, 2000).astype(np.float32)
    to_x = sp.csr_matrix if sparse else (lambda a: a)
    whole = HashSample(7, capacity=100)
    whole.add(Block(to_x(X), y))
    shuffled = HashSample(7, capacity=100)
    order = rng.permutation(2000)
    for part in np.array_split(order, 13):
        shuffled.add(Block(to_x(X[part]), y[part]))
    hosts = [HashSample(7, capacity=100) for _ in range(3)]
    for i, host in enumerate(hosts):
        host.add(Block(to_x(X[i::3]), y[i::3]))
    hosts[2].merge(hosts[0])
    hosts[2].merge(hosts[1])
    reference, h = whole.result()
    for other in (shuffled, hosts[2]):
        block, h2 = other.result()
        np.testing.assert_array_equal(h2, h)
        np.testing.assert_array_equal(block.y, reference.y)
        assert other.seen == 2000
    assert len(h) == 100 and not np.array_equal(HashSample(8, capacity=100).result()[1], h)


def test_hash_samples_are_uniform_and_keep_to_their_byte_budget():
    X = np.arange(100_000, dtype=np.float32)[:, None] * np.ones((1, 10), np.float32)
    sample = HashSample(0, budget=400_000)
    for part in np.array_split(np.arange(100_000), 50):
        sample.add(Block(X[part], None))
    block, _ = sample.result()
    assert 7_900 <= len(block) <= 8_000 and sample.bytes <= 400_000  # 40 bytes a record; a quarter of the budget is slack
    assert abs(block.X[:, 0].mean() / 100_000 - 0.5) < 0.02  # no part of the stream favoured


def test_accumulators_merged_across_hosts_equal_one_accumulator_over_all_records():
    from byoa.evaluation.baseline import BaselineStats
    from byoa.stats import metrics as M

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


def test_forests_joined_across_hosts_map_leaf_values_onto_all_classes():
    from byoa.algorithms.trees import RandomForestAlgorithm, TreeEnsembleModel, join_forests

    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 2)).astype(np.float32)
    y = np.where(X[:, 0] > 0, 2.0, 0.0).astype(np.float32)
    y[:150] = np.where(X[:150, 1] > 0, 1.0, y[:150])  # class 1 only on the first host
    hp = parse(RandomForestAlgorithm.params, {"n_estimators": "5"}, "random-forest").values
    algo = RandomForestAlgorithm(hp)
    parts = [algo.grow(Block(X[s], y[s]), 5, 0) for s in (slice(0, 150), slice(150, 300))]
    models = [TreeEnsembleModel.from_artifacts(*p) for p in parts]
    assert [len(m.classes) for m in models] == [3, 2]
    joined = TreeEnsembleModel.from_artifacts(*join_forests(parts))
    assert len(joined.roots) == 10
    expected = (models[0].predict(X)["score"] + np.insert(models[1].predict(X)["score"], 1, 0.0, axis=1)) / 2
    np.testing.assert_allclose(joined.predict(X)["score"], expected, atol=1e-6)


# ----------------------------------------------------------------------------- every algorithm's merges


class InProcessHosts:
    """Partitions in this process standing in for the followers' actors: the executor's calls reach them in order."""

    def __init__(self, partitions):
        self.partitions, self.names, self.waited = partitions, [p.host for p in partitions], 0.0

    def call(self, _call, method, *args, local, what):
        return local(), [getattr(p, method)(*args) for p in self.partitions]


class GroupingExecutor(Executor):
    """Folds every round's partials both ways, ((a b) c) and (a (b c)), and checks they agree."""

    merges_checked = 0

    @staticmethod
    def _reduce(algo, phase, parts):
        present = [p for p in parts if p is not None]
        if len(present) < 3:
            return Executor._reduce(algo, phase, parts)
        a, b = (copy.deepcopy(present[:3]) for _ in range(2))
        left = algo.merge(phase, algo.merge(phase, a[0], a[1]), a[2])
        right = algo.merge(phase, b[0], algo.merge(phase, b[1], b[2]))
        same(left, right, f"{algo.name} {phase}")
        GroupingExecutor.merges_checked += 1
        return Executor._reduce(algo, phase, parts)


def same(a, b, where: str) -> None:
    """Structural equality of two partials, arrays to rounding (sums added in another order)."""
    if isinstance(a, HashSample):
        (block_a, ha), (block_b, hb) = a.result(), b.result()
        np.testing.assert_array_equal(ha, hb, err_msg=where)
        return same(block_a, block_b, where)
    if isinstance(a, Block):
        return same((a.X.toarray() if sp.issparse(a.X) else a.X, a.y), (b.X.toarray() if sp.issparse(b.X) else b.X, b.y), where)
    if isinstance(a, np.ndarray) or np.isscalar(a):
        if np.asarray(a).dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
        return None
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        return [same(a[k], b[k], f"{where}.{k}") for k in a] and None
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        return [same(x, y, where) for x, y in zip(a, b)] and None
    if a is None or isinstance(a, str):
        assert a == b, where
        return None
    return same(dataclasses.asdict(a) if dataclasses.is_dataclass(a) else vars(a), dataclasses.asdict(b) if dataclasses.is_dataclass(b) else vars(b), where)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_merges_give_the_same_result_in_any_grouping(algorithm, tmp_path, monkeypatch):
    """Three partitions of one job, trained by the real executor; every round's partials are merged
    ((a b) c) and (a (b c)). A new algorithm is covered through its case in test_distributed."""
    if ALGORITHMS[algorithm].collective:
        pytest.skip("its partitions train together through xgboost's collective, which needs them at once, not in turn: "
                    "test_distributed's 2- and 3-host jobs cover it")
    data, hp, _ = CASES[algorithm]
    X, y = data()
    parsed = parse(ALGORITHMS[algorithm].params, {k: str(v) for k, v in hp.items()}, algorithm).values
    partitions = []
    for i in range(3):
        base = tmp_path / f"algo-{i + 1}"
        (base / "input" / "data" / "train").mkdir(parents=True)
        (base / "input" / "config").mkdir(parents=True)
        (base / "input" / "data" / "train" / "part.csv").write_bytes(csv_bytes(X[i::3]) if y is None else csv_bytes(X[i::3], y[i::3]))
        (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(
            {"train": {"ContentType": CSV_NO_LABEL if y is None else CSV, "S3DistributionType": "ShardedByS3Key"}}))
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
        partitions.append(Partition.from_job(algorithm, parsed, i, 3, f"algo-{i + 1}"))
    GroupingExecutor.merges_checked = 0
    executor = GroupingExecutor(partitions[0], InProcessHosts(partitions[1:]), QUIET)
    model = executor.fit(ALGORITHMS[algorithm](parsed, QUIET, 3))
    assert GroupingExecutor.merges_checked > 0
    assert executor.evaluate(model).sizes()["test"] > 0
