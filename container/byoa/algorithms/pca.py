"""PCA in one streaming pass with memory bounded by the feature count.

``regular``: exact mean and covariance sums, then an eigendecomposition.
``randomized``: a single-pass Nystrom sketch of the covariance (Tropp et al.,
2017), O(feature_dim * (num_components + extra)) memory, for wide data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ..data.blocks import Block
from ..data.inputs import ChannelRule
from ..errors import ConfigError, DataError
from ..hyperparameters import Boolean, Integer, Options, Param, Real
from ..model_io import ArraySpec
from ..stats import metrics as M
from .base import COMMON, QUIET, WHOLE_PASS, Algorithm, Evaluator, Model, test_channel


class PCAModel(Model):
    name = "pca"
    task = "projection"
    metric_defs = M.PCA

    def __init__(self, mean: np.ndarray, components: np.ndarray, explained_variance: np.ndarray, total_variance: float):
        self.mean = mean.astype(np.float64)
        self.components = components.astype(np.float64)  # (num_components, feature_dim), orthonormal rows
        self.explained_variance = explained_variance.astype(np.float64)
        self.total_variance = float(total_variance)

    def project(self, X) -> np.ndarray:
        if sp.issparse(X):
            return np.asarray(X @ self.components.T) - self.mean @ self.components.T
        return (X - self.mean) @ self.components.T

    @property
    def n_features(self) -> int:
        return self.mean.shape[0]

    def predict(self, X) -> dict:
        return {"projection": self.project(X).astype(np.float32)}

    def evaluator(self, role="test"):
        return _PCAEvaluator(self)

    def to_artifacts(self):
        arrays = {"mean": self.mean, "components": self.components, "explained_variance": self.explained_variance}
        return arrays, {"total_variance": self.total_variance}

    artifact_arrays = {
        "mean": ArraySpec("f", [("features",)]),
        "components": ArraySpec("f", [("components", "features")]),
        "explained_variance": ArraySpec("f", [("components",)]),
    }
    artifact_meta = {"total_variance": Real(0)}

    @classmethod
    def from_artifacts(cls, arrays, meta):
        return cls(arrays["mean"], arrays["components"], arrays["explained_variance"], meta["total_variance"])


class _PCAEvaluator(Evaluator):
    """Explained variance ratio and reconstruction error of the data given, about the model's mean."""

    def __init__(self, model: PCAModel):
        self.model = model
        self.n = 0
        self.total = self.kept = 0.0

    def add(self, block: Block) -> None:
        X = block.X
        if sp.issparse(X):
            sq = np.asarray(X.multiply(X).sum(axis=1)).ravel() - 2 * np.asarray(X @ self.model.mean).ravel()
            sq += self.model.mean @ self.model.mean
        else:
            centred = X - self.model.mean
            sq = np.einsum("ij,ij->i", centred, centred)
        P = self.model.project(X)
        self.n += len(sq)
        self.total += float(sq.sum())
        self.kept += float(np.einsum("ij,ij->", P, P))

    def merge(self, other: "_PCAEvaluator") -> None:
        self.n += other.n
        self.total += other.total
        self.kept += other.kept

    def result(self) -> dict:
        n = max(self.n, 1)
        return {
            "explained_variance_ratio": self.kept / self.total if self.total > 0 else 0.0,
            "reconstruction_error": max(self.total - self.kept, 0.0) / n,
        }


@dataclass
class Moments:
    """The sums a PCA needs, over any set of records: count, sum, sum of squares, and X^T X (regular) or
    the sketch X^T X Omega (randomized). Sums of parts add up to the sums of the whole."""

    n: int
    sum: np.ndarray
    sumsq: float
    second: np.ndarray

    def merge(self, other: "Moments") -> "Moments":
        return Moments(self.n + other.n, self.sum + other.sum, self.sumsq + other.sumsq, self.second + other.second)


class PCAAlgorithm(Algorithm):
    name = "pca"
    checkpoints = True
    metric_defs = M.PCA
    model_class = PCAModel
    channels = [
        ChannelRule("train", "records to project (labels, if any, are ignored)", required=True),
        ChannelRule("validation", "records scored with the same metrics, never fitted on"),
        test_channel("records"),
    ]
    # no objective: more components always explain more variance, so tuning has nothing to find
    example = {"feature_dim": "4", "num_components": "2", "mini_batch_size": "50"}
    params = [
        Param("feature_dim", Integer(1)),
        Param("num_components", Integer(1)),
        Param("mini_batch_size", Integer(1)),
        Param("algorithm_mode", Options(("regular", "randomized")), "regular"),
        Param("subtract_mean", Boolean(), True, "false: components of the uncentred second moment"),
        Param("extra_components", Integer(-1), -1, "randomized sketch oversampling; -1 = max(10, num_components)"),
        *COMMON,
    ]

    width_costs = "the d x d second moment (regular) or the d x sketch matrices (randomized), and their decomposition"

    @staticmethod
    def sketch_width(hp, n_features: int) -> int:
        """Columns of the randomized sketch: num_components plus the oversampling, at most the features."""
        extra = hp["extra_components"]
        return min(n_features, hp["num_components"] + (max(10, hp["num_components"]) if extra < 0 else extra))

    @classmethod
    def working_bytes(cls, hp, n_features):
        return 8 * 4 * n_features * (cls.sketch_width(hp, n_features) if hp["algorithm_mode"] == "randomized" else n_features)

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        if hp["num_components"] > hp["feature_dim"]:
            raise ConfigError(f"num_components={hp['num_components']} is larger than feature_dim={hp['feature_dim']}")
        d = hp["feature_dim"]
        self.omega = None
        if hp["algorithm_mode"] == "randomized":
            self.omega = self.rng.standard_normal((d, self.sketch_width(hp, d)))  # the same on every host: drawn from the seed first
        self.moments: Moments | None = None

    # --- the reduction: one pass, moments summed (more epochs would count records twice)
    def round(self):
        return "moments", WHOLE_PASS

    def partial(self, phase, shared, batches):
        total = None
        for batch in batches:
            part = self._moments(batch.X.astype(np.float64))
            total = part if total is None else total.merge(part)
        return total

    def _moments(self, X) -> Moments:
        sumsq = float(X.multiply(X).sum() if sp.issparse(X) else np.einsum("ij,ij->", X, X))
        if self.omega is None:
            second = np.asarray((X.T @ X).todense() if sp.issparse(X) else X.T @ X)
        else:
            second = np.asarray(X.T @ np.asarray(X @ self.omega))
        return Moments(X.shape[0], np.asarray(X.sum(axis=0)).ravel(), sumsq, second)

    def merge(self, phase, a, b):
        return a.merge(b)

    def update(self, phase, merged):
        self.moments = merged
        return None

    def state(self):
        m = self.moments
        return {"sum": m.sum, "second": m.second}, {"n": m.n, "sumsq": m.sumsq}

    def load_state(self, arrays, meta):
        self.moments = Moments(meta["n"], arrays["sum"], meta["sumsq"], arrays["second"])

    def finish(self, validate) -> PCAModel:
        """The model from the moments of every training record."""
        m = self.moments
        n = 0 if m is None else m.n
        if n < 2:
            raise DataError(f"channel 'train' has {n} records; PCA needs at least 2")
        mean = m.sum / n if self.hp["subtract_mean"] else np.zeros_like(m.sum)
        denom = n - 1 if self.hp["subtract_mean"] else n
        total = (m.sumsq - n * mean @ mean) / denom
        k = self.hp["num_components"]
        if self.omega is None:
            cov = (m.second - n * np.outer(mean, mean)) / denom
            values, vectors = np.linalg.eigh(cov)
            order = np.argsort(values)[::-1][:k]
            values, vectors = np.maximum(values[order], 0), vectors[:, order]
        else:
            values, vectors = self._nystrom(m, mean, denom, k)
        vectors = vectors * np.where(vectors[np.abs(vectors).argmax(axis=0), range(vectors.shape[1])] < 0, -1, 1)
        return PCAModel(mean, vectors.T, values, total)

    def _nystrom(self, m: Moments, mean, denom, k):
        Y = (m.second - m.n * np.outer(mean, mean @ self.omega)) / denom  # covariance @ omega
        nu = np.sqrt(Y.shape[0]) * np.finfo(float).eps * np.linalg.norm(Y)
        Y_nu = Y + nu * self.omega
        core = self.omega.T @ Y_nu
        chol = scipy.linalg.cholesky((core + core.T) / 2, lower=False)
        B = scipy.linalg.solve_triangular(chol, Y_nu.T, trans="T").T
        U, s, _ = np.linalg.svd(B, full_matrices=False)
        return np.maximum(s[:k] ** 2 - nu, 0), U[:, :k]
