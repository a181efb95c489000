"""Factorization machines as the built-in has them: a bias, linear weights and ``num_factors``-dimensional
feature factors whose dot products weigh every pair of features,

    s(x) = w0 + sum_j w_j x_j + 0.5 * sum_f ((sum_j v_jf x_j)^2 - sum_j v_jf^2 x_j^2),

trained by streaming mini-batch Adam with separate rates and weight decays for the three parts, on
logistic loss (``binary_classifier``, labels 0/1) or squared loss (``regressor``).

Sparse batches stay sparse: a batch's columns are renumbered to the features it holds, the pair term
uses the identity above on that compact matrix, and only those rows of ``w`` and ``V`` (and of their
Adam moments) are read and updated (lazy Adam, as MXNet's row-sparse updates). Memory per step grows
with the batch, not with ``feature_dim``.

As a reduction, like the linear learner: every partition trains on its own mini-batches from the
leader's parameters, and the leader averages them (weighted by records) after 1, 2, 4, ... up to
``SYNC_STEPS`` local updates each epoch. One host is plain mini-batch training.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..data.inputs import ChannelRule
from ..errors import ConfigError, DataError
from ..hyperparameters import Integer, Options, Param, Real, Tune
from ..model_io import ArraySpec
from ..stats import metrics as M
from ..stats.links import sigmoid
from .base import COMMON, QUIET, WHOLE_PASS, Algorithm, LocalSteps, Model, ScoreEvaluator, require_labels, test_channel

log = logging.getLogger("byoa.train")

PARTS = ("bias", "linear", "factors")
INIT_METHODS = ("normal", "uniform", "constant")
SIGMA = {"bias": 0.01, "linear": 0.01, "factors": 0.001}  # the built-in's *_init_sigma defaults
LR = {"bias": 0.1, "linear": 0.001, "factors": 0.0001}
WD = {"bias": 0.01, "linear": 0.001, "factors": 0.00001}
BETA_1, BETA_2 = 0.9, 0.999
OBJECTIVE = {"binary_classifier": "binary_classification_cross_entropy_objective", "regressor": "mse"}


def _part_params(part: str) -> list[Param]:
    return [
        Param(f"{part}_lr", Real(0), LR[part], f"Adam step size of the {part} term",
              tune=Tune(LR[part] / 100, min(LR[part] * 100, 1.0), "Logarithmic")),
        Param(f"{part}_wd", Real(0), WD[part], f"L2 weight decay of the {part} term",
              tune=Tune(max(WD[part] / 1000, 1e-8), min(WD[part] * 1000, 1.0), "Logarithmic")),
        Param(f"{part}_init_method", Options(INIT_METHODS), "normal", f"initial {part} values: normal(0, sigma), "
              "uniform(-scale, scale) or a constant value"),
        Param(f"{part}_init_sigma", Real(0), SIGMA[part], "standard deviation for init_method=normal"),
        Param(f"{part}_init_scale", Real(0), None, "half-width for init_method=uniform (required with it)"),
        Param(f"{part}_init_value", Real(), None, "the value for init_method=constant (required with it)"),
    ]


class FactorizationMachinesModel(Model):
    name = "factorization-machines"
    threshold = 0.5  # predicted_label = 1 when score >= 0.5, as the built-in

    def __init__(self, predictor_type: str, w0: float, w: np.ndarray, V: np.ndarray, beta: float = 1.0):
        self.predictor_type = predictor_type
        # float64 for predictions: the pair identity subtracts two large sums, which float32 would cancel away
        self.w0, self.w, self.V = float(w0), w.astype(np.float64), V.astype(np.float64)
        self.beta = beta

    @property
    def n_features(self) -> int:
        return len(self.w)

    @property
    def task(self) -> str:
        return "binary" if self.predictor_type == "binary_classifier" else "regression"

    @property
    def positive_class(self) -> float | None:
        return 1.0 if self.task == "binary" else None

    @property
    def integer_outputs(self) -> tuple:
        return ("predicted_label",) if self.task == "binary" else ()

    @property
    def metric_defs(self):
        return M.FM_BINARY if self.task == "binary" else M.FM_REGRESSION

    def raw_scores(self, X) -> np.ndarray:
        Xc, rows = compact(X, np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # a model may overflow: its scores are inf or nan, not an error
            return scores(Xc, self.w0, self.w[rows], self.V[rows])[0]

    def predict(self, X) -> dict:
        s = self.raw_scores(X)
        if self.task == "regression":
            return {"score": s.astype(np.float32)}
        p = sigmoid(s)
        return {"score": p.astype(np.float32), "predicted_label": (p >= self.threshold).astype(np.float32)}

    def evaluator(self, role="test"):
        return ScoreEvaluator(self, beta=self.beta)

    def check_labels(self, y: np.ndarray, channel: str) -> None:
        if self.task == "binary":
            check_binary(y, channel)

    def to_artifacts(self):
        arrays = {"w0": np.array([self.w0]), "w": self.w.astype(np.float32), "V": self.V.astype(np.float32)}
        return arrays, {"predictor_type": self.predictor_type, "beta": self.beta}

    artifact_arrays = {
        "w0": ArraySpec("f", [(1,)]),
        "w": ArraySpec("f", [("features",)]),
        "V": ArraySpec("f", [("features", "factors")]),
    }
    artifact_meta = {"predictor_type": Options(("binary_classifier", "regressor")), "beta": Real(0, low_open=True)}

    @classmethod
    def from_artifacts(cls, arrays, meta):
        return cls(meta["predictor_type"], float(arrays["w0"][0]), arrays["w"], arrays["V"], meta["beta"])


def compact(X, dtype=np.float32) -> tuple[object, np.ndarray | slice]:
    """(the batch on only the columns it uses, those columns): a sparse batch of any width costs what its values
    cost. A dense batch keeps every column."""
    if not sp.issparse(X):
        return np.asarray(X, dtype=dtype), slice(None)
    X = X.tocsr()
    cols, inverse = np.unique(X.indices, return_inverse=True)
    shape = (X.shape[0], len(cols))
    return sp.csr_matrix((X.data.astype(dtype, copy=False), inverse.astype(np.int32), X.indptr), shape=shape), cols


def scores(Xc, w0: float, w: np.ndarray, V: np.ndarray):
    """(scores, X squared, XV) of a compact batch, given the rows of ``w`` and ``V`` of its columns."""
    X2 = sp.csr_matrix((Xc.data * Xc.data, Xc.indices, Xc.indptr), shape=Xc.shape) if sp.issparse(Xc) else Xc * Xc
    XV = np.asarray(Xc @ V)
    pair = 0.5 * (XV * XV - np.asarray(X2 @ (V * V))).sum(axis=1)
    return w0 + np.asarray(Xc @ w).ravel() + pair, X2, XV


def check_binary(y: np.ndarray, channel: str) -> None:
    if not np.isin(y, (0.0, 1.0)).all():
        bad = y[~np.isin(y, (0.0, 1.0))][0]
        raise DataError(f"channel '{channel}': predictor_type=binary_classifier needs labels 0 or 1; got {bad:g}")


@dataclass
class Params:
    """The bias and every feature's row [w_j, v_j1 .. v_jk], with their Adam moments: three planes (values, first
    and second moments) of contiguous rows, so a step gathers the rows it touches with ``np.take`` and updates
    them as contiguous arrays (Adam on strided rows costs three times as much)."""

    bias: np.ndarray  # (3,): w0, its first and second moments
    rows: np.ndarray  # (3, features, 1 + factors): [w_j, v_j], their first moments, their second moments
    t: int = 0  # updates made

    def copy(self) -> "Params":
        return Params(self.bias.copy(), self.rows.copy(), self.t)


@dataclass
class Progress:
    """A partition's part of a round: the records-weighted average of its parameters (float64, so that merges in any
    order agree), its records and its training loss."""

    records: int
    bias: np.ndarray
    rows: np.ndarray
    t: int
    loss: float

    def merge(self, other: "Progress") -> "Progress":
        n = self.records + other.records
        a, b = self.records / n, other.records / n
        f64 = np.float64
        return Progress(n, a * self.bias.astype(f64) + b * other.bias.astype(f64), a * self.rows.astype(f64) + b * other.rows.astype(f64),
                        max(self.t, other.t), self.loss + other.loss)


class FactorizationMachinesAlgorithm(LocalSteps, Algorithm):
    name = "factorization-machines"
    metric_defs = M.FM_BINARY + M.FM_REGRESSION
    model_class = FactorizationMachinesModel
    width_costs = "w, V, their Adam moments, a partition's copy and the average (feature_dim x (num_factors + 1) x 9 float32)"
    channels = [
        ChannelRule("train", "labelled records, usually sparse RecordIO-protobuf (binary_classifier: labels 0 or 1)", required=True),
        ChannelRule("validation", "labelled records scored with the same metrics, never trained on"),
        test_channel(),
    ]
    objectives = {"binary": "test:roc_auc_score", "regression": "test:rmse"}
    example = {"feature_dim": "4", "num_factors": "2", "predictor_type": "regressor", "epochs": "20", "mini_batch_size": "16"}
    params = [
        Param("feature_dim", Integer(1), help="number of features; each record must have exactly this many"),
        Param("num_factors", Integer(1, 1000), help="dimension of the feature factors; the built-in suggests 2 to 1000, 64 to start",
              tune=Tune(2, 128, "Logarithmic")),
        Param("predictor_type", Options(("binary_classifier", "regressor"))),
        Param("epochs", Integer(1), 1, "passes over the training data", tune=Tune(1, 50, "Logarithmic")),
        Param("mini_batch_size", Integer(1), 1000, "records per update", tune=Tune(100, 10000, "Logarithmic")),
        *(p for part in PARTS for p in _part_params(part)),
        Param("clip_gradient", Real(0, low_open=True), None, "clip every gradient element to [-this, this]; not set: no clipping"),
        Param("eps", Real(0, low_open=True), 1e-8, "Adam's epsilon"),
        Param("rescale_grad", Real(0, low_open=True), None, "multiplies the mini-batch's mean gradient; not set: 1"),
        Param("f_beta", Real(0, low_open=True), 1.0, "beta of the binary_f_beta metric"),
        *COMMON,
    ]

    @classmethod
    def working_bytes(cls, hp, n_features):
        return 4 * 9 * n_features * (hp["num_factors"] + 1)

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        for part in PARTS:
            method = hp[f"{part}_init_method"]
            needed = {"uniform": f"{part}_init_scale", "constant": f"{part}_init_value"}.get(method)
            if needed and hp[needed] is None:
                raise ConfigError(f"{part}_init_method={method} needs {needed}")
        self.params: Params | None = None
        self.epoch_loss, self.epoch_records = 0.0, 0
        self.rescale = 1.0 if hp["rescale_grad"] is None else hp["rescale_grad"]
        k = hp["num_factors"]  # per column of a feature's row [w_j, v_j]: its rate and decay
        self.rates = np.array([hp["linear_lr"]] + [hp["factors_lr"]] * k, np.float32)
        self.decays = np.array([hp["linear_wd"]] + [hp["factors_wd"]] * k, np.float32)

    @property
    def epochs(self) -> int:
        return self.hp["epochs"]

    def _init(self, part: str, shape) -> np.ndarray:
        method = self.hp[f"{part}_init_method"]
        if method == "normal":
            return self.rng.normal(0.0, self.hp[f"{part}_init_sigma"], shape).astype(np.float32)
        if method == "uniform":
            scale = self.hp[f"{part}_init_scale"]
            return self.rng.uniform(-scale, scale, shape).astype(np.float32)
        return np.full(shape, self.hp[f"{part}_init_value"], dtype=np.float32)

    def _start(self) -> Params:
        d, k = self.hp["feature_dim"], self.hp["num_factors"]
        rows = np.zeros((3, d, 1 + k), np.float32)
        rows[0, :, 0], rows[0, :, 1:] = self._init("linear", (d,)), self._init("factors", (d, k))
        return Params(np.array([self._init("bias", (1,))[0], 0.0, 0.0], np.float32), rows)

    # --- the reduction
    def round(self):
        if self.params is None:
            self.params = self._start()
        return "train", WHOLE_PASS if self.count == 1 else self._sync_steps()

    def broadcast(self, phase):
        return self.params

    def partial(self, phase, shared: Params, batches):
        p = shared.copy()
        size = math.ceil(self.batch_size / self.count)
        records, loss = 0, 0.0
        for batch in batches:
            y = require_labels(batch, "train")
            if self.hp["predictor_type"] == "binary_classifier":
                check_binary(y, "train")
            for lo in range(0, len(y), size):
                loss += self._step(p, batch.X[lo : lo + size], y[lo : lo + size])
                records += len(y[lo : lo + size])
        if records == 0:
            return None
        return Progress(records, p.bias, p.rows, p.t, loss)

    def merge(self, phase, a, b):
        return a.merge(b)

    def update(self, phase, merged: Progress):
        self.params = Params(merged.bias.astype(np.float32), merged.rows.astype(np.float32, copy=False), merged.t)
        self.epoch_loss += merged.loss
        self.epoch_records += merged.records
        return None

    def end_epoch(self, epoch, validate) -> bool:
        self.sync_round = 0
        if self.epoch_records:
            name = OBJECTIVE[self.hp["predictor_type"]]
            self.ctx.emit(f"#quality_metric: host={self.ctx.host}, epoch={epoch}, train {name} <loss>="
                          f"{self.epoch_loss / self.epoch_records:.6g}")
        self.epoch_loss, self.epoch_records = 0.0, 0
        return False

    def finish(self, validate) -> FactorizationMachinesModel:
        if self.params is None or self.params.t == 0:
            raise DataError("channel 'train' has no records")
        p = self.params
        return FactorizationMachinesModel(self.hp["predictor_type"], float(p.bias[0]), p.rows[0, :, 0], p.rows[0, :, 1:], self.hp["f_beta"])

    # --- one mini-batch
    def _step(self, p: Params, X, y: np.ndarray) -> float:
        """One Adam update of the bias and of the rows of the batch's features; returns the batch's summed loss."""
        Xc, cols = compact(X)
        dense = isinstance(cols, slice)
        R = p.rows if dense else np.empty((3, len(cols), p.rows.shape[2]), np.float32)  # the touched rows
        if not dense:
            for plane, touched in zip(p.rows, R):
                np.take(plane, cols, axis=0, out=touched)
        w, V = R[0, :, 0], R[0, :, 1:]
        s, X2, XV = scores(Xc, float(p.bias[0]), w, V)
        n = len(y)
        if self.hp["predictor_type"] == "binary_classifier":
            prob = sigmoid(s)
            loss = -float(np.sum(y * np.log(np.clip(prob, 1e-15, 1)) + (1 - y) * np.log(np.clip(1 - prob, 1e-15, 1))))
            g = prob - y
        else:
            g = s - y
            loss = float(np.sum(g * g))
        g = (g * (self.rescale / n)).astype(np.float32)
        G = np.empty(R.shape[1:], np.float32)
        G[:, 0] = np.asarray(Xc.T @ g).ravel()
        G[:, 1:] = np.asarray(Xc.T @ (g[:, None] * XV)) - np.asarray(X2.T @ g).ravel()[:, None] * V
        p.t += 1
        self._adam(R, G, self.rates, self.decays, p.t)
        if not dense:
            for plane, touched in zip(p.rows, R):
                plane[cols] = touched
        self._adam(p.bias[:, None], np.array([g.sum()], np.float32), np.float32(self.hp["bias_lr"]),
                   np.float32(self.hp["bias_wd"]), p.t)  # a view: updated in place
        return loss

    def _adam(self, R: np.ndarray, G: np.ndarray, lr, wd, t: int) -> None:
        """Adam on ``R`` = [values, first moments, second moments], in place, with L2 decay ``wd``. Written with
        ``out=``: on a batch touching 100k features, temporaries cost as much as the arithmetic."""
        x, m, v = R
        G += wd * x
        clip = self.hp["clip_gradient"]
        if clip is not None:
            np.clip(G, -clip, clip, out=G)
        m *= BETA_1
        m += (1 - BETA_1) * G
        np.multiply(G, G, out=G)
        v *= BETA_2
        G *= 1 - BETA_2
        v += G
        denominator = np.sqrt(v, out=G)
        denominator += np.float32(self.hp["eps"])
        np.divide(m, denominator, out=denominator)
        denominator *= np.float32(math.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)) * lr
        x -= denominator
