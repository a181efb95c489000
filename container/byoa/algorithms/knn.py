"""k-nearest neighbours: a seeded uniform sample of ``sample_size`` records (one pass, memory
bounded by the sample), optional sign random projection, exact search.

The sample is the training records with the smallest seeded hashes (``stats.samples``), so it
is the same records on one host or many. Train-role metrics leave each record out of its own vote.
"""

from __future__ import annotations

import logging

import numpy as np

from ..data.blocks import Block, dense
from ..data.inputs import ChannelRule
from ..errors import ConfigError, DataError
from ..hyperparameters import AnyOf, Integer, Options, Param, Tune
from ..model_io import ArraySpec
from ..stats import metrics as M
from ..stats.samples import HashSample, record_hashes
from .base import COMMON, QUIET, WHOLE_PASS, Algorithm, Evaluator, Model, require_labels, test_channel
from .kmeans import squared_distances

log = logging.getLogger("byoa.train")

MAX_DISTANCES = 20_000_000  # rows x sample entries computed at once
TRAIN_SAMPLE = 5000  # training records scored (leave-one-out) for train-role metrics: prediction's cost, not quadratic


def _unit_rows(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class KNNModel(Model):
    name = "knn"
    verbose_outputs = ("distances", "labels")

    def __init__(self, predictor_type, k, metric, sample_X, sample_y, projection, hashes=None, seed=0):
        """``sample_X`` is already projected; for COSINE its rows are normalised here, once. ``hashes``: the
        sample records' seeded hashes (``stats.samples``), which identify a training record in its own sample."""
        self.predictor_type, self.k, self.metric = predictor_type, int(k), metric
        self.X = sample_X.astype(np.float32)
        self.y = sample_y.astype(np.float32)
        self.projection = projection.astype(np.float32) if projection is not None and projection.size else None
        self.hashes = np.zeros(0, np.uint64) if hashes is None else hashes.astype(np.uint64)
        self.seed = int(seed)
        if metric == "COSINE":
            self.X = _unit_rows(self.X)

    @property
    def task(self) -> str:
        return "multiclass" if self.predictor_type == "classifier" else "regression"

    @property
    def metric_defs(self):
        return M.KNN_CLASSIFIER if self.predictor_type == "classifier" else M.KNN_REGRESSOR

    def neighbours(self, X, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(distances, sample indices) of the k nearest, nearest first. For INNER_PRODUCT and COSINE,
        the "distance" is the negated similarity, so ascending still means nearest first."""
        Q = dense(X).astype(np.float32)
        if self.projection is not None:
            Q = Q @ self.projection
        if self.metric == "COSINE":
            Q = _unit_rows(Q)
        k = min(self.k if k is None else k, len(self.X))
        step = max(1, MAX_DISTANCES // max(len(self.X), 1))
        dist, idx = [], []
        for lo in range(0, len(Q), step):
            q = Q[lo : lo + step]
            d = squared_distances(q, self.X) if self.metric == "L2" else -(q @ self.X.T)
            part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(d.shape[1]), (len(q), 1))
            pd = np.take_along_axis(d, part, axis=1)
            order = np.argsort(pd, axis=1, kind="stable")
            idx.append(np.take_along_axis(part, order, axis=1))
            dist.append(np.take_along_axis(pd, order, axis=1))
        dist, idx = np.concatenate(dist), np.concatenate(idx)
        if self.metric == "L2":
            dist = np.sqrt(dist)
        return dist.astype(np.float32), idx

    @property
    def n_features(self) -> int:
        return self.projection.shape[0] if self.projection is not None else self.X.shape[1]

    def vote(self, labels: np.ndarray) -> np.ndarray:
        """The prediction from the neighbours' labels, nearest first in each row."""
        if self.predictor_type == "regressor":
            return labels.mean(axis=1)
        classes = np.unique(labels)  # majority vote; ties go to the label whose nearest member is nearest
        hits = labels[:, :, None] == classes[None, None, :]
        counts = hits.sum(axis=1)
        first = np.where(hits.any(axis=1), hits.argmax(axis=1), labels.shape[1])
        return classes[np.argmax(counts * (labels.shape[1] + 1) - first, axis=1)]

    def predict(self, X) -> dict:
        dist, idx = self.neighbours(X)
        labels = self.y[idx]
        return {"predicted_label": self.vote(labels).astype(np.float32), "distances": dist, "labels": labels}

    def predict_leaving_out(self, block: Block) -> np.ndarray:
        """Predictions for training records, each without its own entry in the sample (leave-one-out):
        k+1 neighbours are searched and a record's own entry, found by its hash, is dropped."""
        _, idx = self.neighbours(block.X, self.k + 1)
        if idx.shape[1] <= self.k:
            return self.vote(self.y[idx])
        own = self.hashes[idx] == record_hashes(block, self.seed)[:, None] if len(self.hashes) else np.zeros(idx.shape, bool)
        drop = np.where(own.any(axis=1), own.argmax(axis=1), idx.shape[1] - 1)
        keep = np.ones(idx.shape, bool)
        keep[np.arange(len(idx)), drop] = False
        return self.vote(self.y[idx[keep].reshape(len(idx), self.k)])

    def evaluator(self, role="test"):
        return _KNNEvaluator(self, leave_one_out=role == "train")

    def to_artifacts(self):
        arrays = {"X": self.X, "y": self.y, "projection": self.projection if self.projection is not None else np.zeros(0, np.float32),
                  "hashes": self.hashes}
        return arrays, {"predictor_type": self.predictor_type, "k": self.k, "metric": self.metric, "seed": self.seed}

    artifact_arrays = {
        "X": ArraySpec("f", [("sample", "dimension")]),
        "y": ArraySpec("f", [("sample",)]),
        "projection": ArraySpec("f", [("features", "dimension"), (0,)]),
        "hashes": ArraySpec("u", [("sample",), (0,)]),
    }
    artifact_meta = {"predictor_type": Options(("classifier", "regressor")), "k": Integer(1),
                     "metric": Options(("L2", "INNER_PRODUCT", "COSINE")), "seed": Integer(0)}

    @classmethod
    def from_artifacts(cls, arrays, meta):
        return cls(meta["predictor_type"], meta["k"], meta["metric"], arrays["X"], arrays["y"], arrays["projection"],
                   arrays["hashes"], meta["seed"])


class _KNNEvaluator(Evaluator):
    """Accuracy (and the confusion matrix over the sample's labels, plus "other") or regression metrics."""

    def __init__(self, model: KNNModel, leave_one_out: bool = False):
        self.model, self.leave_one_out = model, leave_one_out
        self.classes = np.unique(model.y)
        self.acc = M.MulticlassAccumulator(len(self.classes) + 1, 1) if model.predictor_type == "classifier" else M.RegressionAccumulator()

    def add(self, block: Block) -> None:
        y = require_labels(block, self.channel)
        pred = self.model.predict_leaving_out(block) if self.leave_one_out else self.model.predict(block.X)["predicted_label"]
        if isinstance(self.acc, M.RegressionAccumulator):
            self.acc.add(y, pred)
            return
        guess = M.class_index(self.classes, pred)
        self.acc.add(M.class_index(self.classes, y), np.eye(len(self.classes) + 1, dtype=np.float32)[guess])

    def result(self) -> dict:
        if isinstance(self.acc, M.RegressionAccumulator):
            r = self.acc.result()
            return {"r2": r["r2"], "mse": r["mse"]}
        r = self.acc.result(1.0, [*self.classes.tolist(), "other"])
        details = {k: r[k] for k in ("confusion_matrix", "classes", "per_class")}
        return {"accuracy": r["multiclass_accuracy"], **details}


class KNNAlgorithm(Algorithm):
    name = "knn"
    metric_defs = M.KNN_CLASSIFIER + M.KNN_REGRESSOR
    model_class = KNNModel
    train_sample_limit = TRAIN_SAMPLE
    width_costs = "the dense sample (or the projection) and a dense mini-batch"
    channels = [
        ChannelRule("train", "labelled records; a seeded uniform sample of sample_size is kept as the index", required=True),
        ChannelRule("validation", "labelled records scored with the same metrics, never in the index"),
        test_channel(),
    ]
    objectives = {"binary": "test:accuracy", "multiclass": "test:accuracy", "regression": "test:mse"}
    example = {"k": "5", "feature_dim": "4", "predictor_type": "classifier", "sample_size": "150"}

    @classmethod
    def working_bytes(cls, hp, n_features):
        target = hp["dimension_reduction_target"]
        return 4 * n_features * (hp["mini_batch_size"] + (hp["sample_size"] if target == "none" else target))
    params = [
        Param("k", Integer(1), help="neighbours per prediction", tune=Tune(1, 1024)),
        Param("feature_dim", Integer(1)),
        Param("predictor_type", Options(("classifier", "regressor"))),
        Param("sample_size", Integer(1), help="records kept: a seeded uniform sample of the training records",
              tune=Tune(256, 20_000_000)),
        Param("dimension_reduction_type", Options(("none", "sign"), unsupported=("fjlt",)), "none", "sign: random +-1 projection"),
        Param("dimension_reduction_target", AnyOf((Options(("none",)), Integer(1))), "none", "required with dimension_reduction_type"),
        Param("index_metric", Options(("L2", "INNER_PRODUCT", "COSINE")), "L2"),
        Param("index_type", Options(("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ")), "faiss.Flat", "search is always exact here", ignored=True),
        Param("faiss_index_ivf_nlists", AnyOf((Options(("auto",)), Integer(1))), "auto", ignored=True),
        Param("faiss_index_pq_m", Integer(1), 16, ignored=True),
        Param("mini_batch_size", Integer(1), 5000, "records read per batch"),
        *COMMON,
    ]

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        if hp["dimension_reduction_type"] == "sign":
            target = hp["dimension_reduction_target"]
            if target == "none":
                raise ConfigError("dimension_reduction_target is required when dimension_reduction_type=sign")
            if target > hp["feature_dim"]:
                raise ConfigError(f"dimension_reduction_target={target} is larger than feature_dim={hp['feature_dim']}")
        self.sample: HashSample | None = None  # partition side: this partition's sample
        self.cutoff = None  # leader: the largest hash in the job's sample
        self.seen = 0
        self.chosen: tuple | None = None  # leader: (X, y, hashes) of the job's sample

    def projection(self) -> np.ndarray | None:
        """The random +-1 projection of ``sign``: drawn from the seed first, so every host draws the same."""
        if self.hp["dimension_reduction_type"] != "sign":
            return None
        target = self.hp["dimension_reduction_target"]
        rng = np.random.default_rng(self.hp["seed"])
        return (rng.integers(0, 2, (self.hp["feature_dim"], target)) * 2 - 1).astype(np.float32) / np.sqrt(target)

    # --- the reduction: one pass; each partition keeps its smallest hashes, then sends what is in the job's sample
    def round(self):
        return "hashes", WHOLE_PASS

    def broadcast(self, phase):
        return self.cutoff

    def partial(self, phase, cutoff, batches):
        if phase == "hashes":
            projection = self.projection()
            self.sample = HashSample(self.hp["seed"], capacity=self.hp["sample_size"])
            for batch in batches:  # hashed on the records as read, kept projected
                X = dense(batch.X).astype(np.float32)
                labels = require_labels(batch, "train")
                self.sample.add(Block(X @ projection if projection is not None else X, labels), record_hashes(batch, self.hp["seed"]))
            if not self.sample.seen:
                return None
            return self.sample.result()[1], self.sample.seen
        block, h = self.sample.result()  # "fetch": only the records in the job's sample travel
        keep = h <= cutoff
        return (dense(block.X)[keep], block.y[keep], h[keep]) if block is not None else None

    def merge(self, phase, a, b):
        if phase == "hashes":
            return np.sort(np.concatenate([a[0], b[0]]))[: self.hp["sample_size"]], a[1] + b[1]
        return tuple(np.concatenate(pair) for pair in zip(a, b))

    def update(self, phase, merged):
        if phase == "hashes":
            self.cutoff, self.seen = merged[0][-1], merged[1]
            return "fetch"
        X, y, h = merged
        order = np.argsort(h, kind="stable")[: self.hp["sample_size"]]
        self.chosen = X[order], y[order], h[order]
        return None

    def finish(self, validate) -> KNNModel:
        if self.chosen is None:
            raise DataError("channel 'train' has no records")
        X, y, h = self.chosen
        log.info("knn sample: %d of %d records", len(X), self.seen)
        return KNNModel(self.hp["predictor_type"], self.hp["k"], self.hp["index_metric"], X, y, self.projection(), h, self.hp["seed"])
