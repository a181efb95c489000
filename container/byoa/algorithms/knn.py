"""k-nearest neighbours: a seeded reservoir sample of ``sample_size`` records
(one pass, memory bounded by the sample), optional sign random projection, exact search."""

from __future__ import annotations

import logging

import numpy as np

from ..data.blocks import Block, dense
from ..errors import ConfigError, DataError
from ..stats import metrics as M
from ..hyperparameters import AnyOf, Integer, Options, Param
from .base import COMMON, Algorithm, Evaluator, Model, batches, require_labels
from .kmeans import squared_distances

log = logging.getLogger("byoa.train")

MAX_DISTANCES = 20_000_000  # rows x sample entries computed at once


def _unit_rows(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class KNNModel(Model):
    name = "knn"

    def __init__(self, predictor_type, k, metric, sample_X, sample_y, projection):
        """``sample_X`` is already projected; for COSINE its rows are normalised here, once."""
        self.predictor_type, self.k, self.metric = predictor_type, int(k), metric
        self.X = sample_X.astype(np.float32)
        self.y = sample_y.astype(np.float32)
        self.projection = projection.astype(np.float32) if projection is not None and projection.size else None
        if metric == "COSINE":
            self.X = _unit_rows(self.X)

    @property
    def task(self) -> str:
        return "multiclass" if self.predictor_type == "classifier" else "regression"

    @property
    def metric_defs(self):
        return M.KNN_CLASSIFIER if self.predictor_type == "classifier" else M.KNN_REGRESSOR

    def neighbours(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(distances, sample indices) of the k nearest, nearest first. For INNER_PRODUCT and COSINE,
        the "distance" is the negated similarity, so ascending still means nearest first."""
        Q = dense(X).astype(np.float32)
        if self.projection is not None:
            Q = Q @ self.projection
        if self.metric == "COSINE":
            Q = _unit_rows(Q)
        k = min(self.k, len(self.X))
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

    verbose_outputs = ("distances", "labels")

    @property
    def n_features(self) -> int:
        return self.projection.shape[0] if self.projection is not None else self.X.shape[1]

    def predict(self, X) -> dict:
        dist, idx = self.neighbours(X)
        labels = self.y[idx]
        if self.predictor_type == "regressor":
            label = labels.mean(axis=1)
        else:  # majority vote; ties go to the label whose nearest member is nearest
            classes = np.unique(labels)
            hits = labels[:, :, None] == classes[None, None, :]
            counts = hits.sum(axis=1)
            first = np.where(hits.any(axis=1), hits.argmax(axis=1), labels.shape[1])
            label = classes[np.argmax(counts * (labels.shape[1] + 1) - first, axis=1)]
        return {"predicted_label": label.astype(np.float32), "distances": dist, "labels": labels}

    def evaluator(self):
        return _KNNEvaluator(self)

    def to_artifacts(self):
        arrays = {"X": self.X, "y": self.y, "projection": self.projection if self.projection is not None else np.zeros(0, np.float32)}
        return arrays, {"predictor_type": self.predictor_type, "k": self.k, "metric": self.metric}

    @classmethod
    def from_artifacts(cls, arrays, meta):
        return cls(meta["predictor_type"], meta["k"], meta["metric"], arrays["X"], arrays["y"], arrays["projection"])


class _KNNEvaluator(Evaluator):
    """Accuracy (and the confusion matrix over the sample's labels, plus "other") or regression metrics."""

    def __init__(self, model: KNNModel):
        self.model = model
        self.classes = np.unique(model.y)
        self.acc = M.MulticlassAccumulator(len(self.classes) + 1, 1) if model.predictor_type == "classifier" else M.RegressionAccumulator()

    def add(self, block: Block) -> None:
        y = require_labels(block, self.channel)
        pred = self.model.predict(block.X)["predicted_label"]
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
    streaming = False
    metric_defs = M.KNN_CLASSIFIER + M.KNN_REGRESSOR
    model_class = KNNModel
    params = [
        Param("k", Integer(1), help="neighbours per prediction"),
        Param("feature_dim", Integer(1)),
        Param("predictor_type", Options(("classifier", "regressor"))),
        Param("sample_size", Integer(1), help="records kept (uniform reservoir sample over the stream)"),
        Param("dimension_reduction_type", Options(("none", "sign"), unsupported=("fjlt",)), "none", "sign: random +-1 projection"),
        Param("dimension_reduction_target", AnyOf((Options(("none",)), Integer(1))), "none", "required with dimension_reduction_type"),
        Param("index_metric", Options(("L2", "INNER_PRODUCT", "COSINE")), "L2"),
        Param("index_type", Options(("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ")), "faiss.Flat", "search is always exact here", ignored=True),
        Param("faiss_index_ivf_nlists", AnyOf((Options(("auto",)), Integer(1))), "auto", ignored=True),
        Param("faiss_index_pq_m", Integer(1), 16, ignored=True),
        Param("mini_batch_size", Integer(1), 5000, "records read per batch"),
        *COMMON,
    ]

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        if hp["dimension_reduction_type"] == "sign":
            target = hp["dimension_reduction_target"]
            if target == "none":
                raise ConfigError("dimension_reduction_target is required when dimension_reduction_type=sign")
            if target > hp["feature_dim"]:
                raise ConfigError(f"dimension_reduction_target={target} is larger than feature_dim={hp['feature_dim']}")

    def projection(self) -> np.ndarray | None:
        """The random +-1 projection of ``sign``: drawn from the seed first, so every host draws the same."""
        if self.hp["dimension_reduction_type"] != "sign":
            return None
        target = self.hp["dimension_reduction_target"]
        rng = np.random.default_rng(self.hp["seed"])
        return (rng.integers(0, 2, (self.hp["feature_dim"], target)) * 2 - 1).astype(np.float32) / np.sqrt(target)

    def draw(self, train, seed) -> M.Reservoir:
        """A uniform sample of ``sample_size`` records of one pass (projected when asked)."""
        projection = self.projection()
        sample = M.Reservoir(self.hp["sample_size"], seed)
        for batch in batches(train, self.hp["mini_batch_size"]):
            X = dense(batch.X).astype(np.float32)
            sample.add(X @ projection if projection is not None else X, require_labels(batch, train.name))
        return sample

    def model_from(self, X: np.ndarray, y: np.ndarray, seen: int, channel: str) -> KNNModel:
        if seen == 0:
            raise DataError(f"channel '{channel}' has no records")
        log.info("knn sample: %d of %d records", len(X), seen)
        return KNNModel(self.hp["predictor_type"], self.hp["k"], self.hp["index_metric"], X, y, self.projection())

    def fit(self, train, validation):
        log.info("knn reads the training data once (epoch 0) to draw its sample")
        sample = self.draw(train, self.hp["seed"])
        return self.model_from(*(sample.sample() or (None, None)), sample.seen, train.name)
