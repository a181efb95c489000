"""Linear learner: streaming mini-batch SGD/Adam/RMSProp over a linear model,
with the built-in algorithm's losses, scaling, class weighting and
threshold selection for binary classifiers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..data.blocks import Block, concat
from ..errors import ConfigError, DataError
from ..stats import metrics as M
from ..stats import selection
from ..stats.selection import BinaryThreshold
from ..evaluation.views import HeldOutStream
from ..hyperparameters import AnyOf, Boolean, Integer, Options, Param, Real
from .base import COMMON, Algorithm, Evaluator, Model, batches, require_labels, stream_epochs

log = logging.getLogger("byoa.train")

LOSSES = {
    "binary_classifier": ("logistic", "hinge_loss"),
    "multiclass_classifier": ("softmax_loss",),
    "regressor": (
        "squared_loss",
        "absolute_loss",
        "huber_loss",
        "quantile_loss",
        "eps_insensitive_squared_loss",
        "eps_insensitive_absolute_loss",
    ),
}
AUTO_LOSS = {"binary_classifier": "logistic", "multiclass_classifier": "softmax_loss", "regressor": "squared_loss"}

AUTO = Options(("auto",))
ANY_LOSS = tuple(sorted({loss for losses in LOSSES.values() for loss in losses}))


def _sigmoid(s):
    return 0.5 * (1.0 + np.tanh(0.5 * s))


def _softmax(S):
    S = S - S.max(axis=1, keepdims=True)
    E = np.exp(S)
    return E / E.sum(axis=1, keepdims=True)


def loss_and_gradient(loss: str, S: np.ndarray, y: np.ndarray, hp: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-record loss and d loss / d score. S is (n, c); y holds labels (class index for softmax)."""
    if loss == "softmax_loss":
        P = _softmax(S)
        rows = np.arange(len(y))
        cls = y.astype(np.int64)
        value = -np.log(np.clip(P[rows, cls], 1e-15, 1))
        P[rows, cls] -= 1.0
        return value, P
    s = S[:, 0]
    if loss == "logistic":
        p = _sigmoid(s)
        value = np.logaddexp(0.0, s) - y * s
        return value, (p - y)[:, None]
    if loss == "hinge_loss":
        sign = 2.0 * y - 1.0
        margin = hp["margin"] - sign * s
        return np.maximum(margin, 0.0), np.where(margin > 0, -sign, 0.0)[:, None]
    r = s - y
    if loss == "squared_loss":
        return 0.5 * r * r, r[:, None]
    if loss == "absolute_loss":
        return np.abs(r), np.sign(r)[:, None]
    if loss == "huber_loss":
        d = hp["huber_delta"]
        a = np.abs(r)
        return np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)), np.clip(r, -d, d)[:, None]
    if loss == "quantile_loss":
        q = hp["quantile"]
        return np.where(r < 0, -q * r, (1 - q) * r), np.where(r < 0, -q, 1 - q)[:, None]
    eps = hp["loss_insensitivity"]
    excess = np.maximum(np.abs(r) - eps, 0.0)
    if loss == "eps_insensitive_squared_loss":
        return 0.5 * excess**2, (np.sign(r) * excess)[:, None]
    return excess, (np.sign(r) * (excess > 0))[:, None]  # eps_insensitive_absolute_loss


@dataclass
class ScalerStats:
    """Sums over the first ``num_point_for_scaler`` records: the scaler, label scaling and class weights
    come from these, so hosts can add theirs up."""

    n: int
    sparse: bool
    sum_x: np.ndarray
    sum_x2: np.ndarray
    sum_y: float
    sum_y2: float
    label_counts: np.ndarray

    @classmethod
    def of(cls, sample: Block, n_classes: int) -> "ScalerStats":
        """``n_classes``: 0 for a regressor (no label counts)."""
        X, y = sample.X, sample.y.astype(np.float64)
        if sp.issparse(X):
            sum_x, sum_x2 = np.asarray(X.sum(axis=0), np.float64).ravel(), np.asarray(X.multiply(X).sum(axis=0), np.float64).ravel()
        else:
            X = X.astype(np.float64)
            sum_x, sum_x2 = X.sum(axis=0), np.einsum("ij,ij->j", X, X)
        counts = np.bincount(y.astype(np.int64), minlength=max(n_classes, 2)) if n_classes else np.zeros(2, np.int64)
        return cls(len(y), sp.issparse(sample.X), sum_x, sum_x2, float(y.sum()), float(y @ y), counts)

    def merge(self, other: "ScalerStats") -> None:
        self.n += other.n
        self.sparse = self.sparse or other.sparse
        self.sum_x = self.sum_x + other.sum_x
        self.sum_x2 = self.sum_x2 + other.sum_x2
        self.sum_y += other.sum_y
        self.sum_y2 += other.sum_y2
        width = max(len(self.label_counts), len(other.label_counts))
        self.label_counts = np.pad(self.label_counts, (0, width - len(self.label_counts))) + np.pad(other.label_counts, (0, width - len(other.label_counts)))


class LinearModel(BinaryThreshold, Model):
    name = "linear-learner"

    def __init__(self, predictor_type, W, b, mean, scale, label_mean=0.0, label_scale=1.0, threshold=0.5, beta=1.0,
                 top_k=3, criterion="accuracy", targets=None):
        self.targets = targets or {"target_recall": 0.8, "target_precision": 0.8}
        self.predictor_type = predictor_type
        self.W, self.b = W.astype(np.float64), b.astype(np.float64)
        self.mean, self.scale = mean.astype(np.float64), scale.astype(np.float64)
        self.label_mean, self.label_scale = float(label_mean), float(label_scale)
        self.threshold = float(threshold)
        self.beta, self.top_k, self.criterion = beta, top_k, criterion
        self.selection: dict = {}

    @property
    def n_features(self) -> int:
        return self.W.shape[0]

    @property
    def integer_outputs(self) -> tuple:
        return () if self.predictor_type == "regressor" else ("predicted_label",)

    @property
    def is_binary(self) -> bool:
        return self.predictor_type == "binary_classifier"

    @property
    def task(self) -> str:
        return {"binary_classifier": "binary", "multiclass_classifier": "multiclass", "regressor": "regression"}[self.predictor_type]

    @property
    def positive_class(self) -> float:
        return 1.0

    @property
    def metric_defs(self):
        return {"binary_classifier": M.BINARY, "multiclass_classifier": M.MULTICLASS, "regressor": M.REGRESSION}[
            self.predictor_type
        ]

    def raw_scores(self, X) -> np.ndarray:
        if sp.issparse(X):  # the same affine map, with the centring folded into the bias: sparse stays sparse
            W = self.W / self.scale[:, None]
            return np.asarray(X @ W) + (self.b - self.mean @ W)
        return ((X - self.mean) / self.scale) @ self.W + self.b

    def predict(self, X) -> dict:
        S = self.raw_scores(X)
        if self.predictor_type == "binary_classifier":
            score = _sigmoid(S[:, 0])
            return {"score": score.astype(np.float32), "predicted_label": (score >= self.threshold).astype(np.float32)}
        if self.predictor_type == "multiclass_classifier":
            P = _softmax(S)
            return {"score": P.astype(np.float32), "predicted_label": P.argmax(axis=1).astype(np.float32)}
        return {"score": (S[:, 0] * self.label_scale + self.label_mean).astype(np.float32)}

    def evaluator(self):
        return _LinearEvaluator(self)

    def to_artifacts(self):
        arrays = {"W": self.W, "b": self.b, "mean": self.mean, "scale": self.scale}
        meta = {
            "predictor_type": self.predictor_type,
            "label_mean": self.label_mean,
            "label_scale": self.label_scale,
            "threshold": self.threshold,
            "beta": self.beta,
            "top_k": self.top_k,
            "criterion": self.criterion,
            "targets": self.targets,
            "selection": self.selection,
        }
        return arrays, meta

    @classmethod
    def from_artifacts(cls, arrays, meta):
        model = cls(
            meta["predictor_type"], arrays["W"], arrays["b"], arrays["mean"], arrays["scale"], meta["label_mean"],
            meta["label_scale"], meta["threshold"], meta["beta"], meta["top_k"], meta["criterion"], meta["targets"],
        )
        model.selection = meta.get("selection", {})
        return model


class _LinearEvaluator(Evaluator):
    def __init__(self, model: LinearModel):
        self.model = model
        kind = model.predictor_type
        if kind == "binary_classifier":
            self.acc = M.BinaryAccumulator()
        elif kind == "multiclass_classifier":
            self.acc = M.MulticlassAccumulator(model.W.shape[1], model.top_k)
        else:
            self.acc = M.RegressionAccumulator()

    def add(self, block: Block) -> None:
        y = require_labels(block, self.channel)
        out = self.model.predict(block.X)
        self.acc.add(y, out["score"])

    def result(self) -> dict:
        kind = self.model.predictor_type
        if kind == "binary_classifier":
            return self.acc.result(self.model.threshold, self.model.beta)
        if kind == "multiclass_classifier":
            return self.acc.result(self.model.beta)
        return self.acc.result()


class LinearLearnerAlgorithm(Algorithm):
    name = "linear-learner"
    streaming = True
    metric_defs = M.BINARY + M.MULTICLASS + M.REGRESSION
    model_class = LinearModel
    params = [
        Param("predictor_type", Options(tuple(LOSSES))),
        Param("num_classes", AnyOf((AUTO, Integer(3, 1_000_000))), "auto", "required for multiclass_classifier"),
        Param("feature_dim", AnyOf((AUTO, Integer(1))), "auto", "auto: taken from the data"),
        Param("epochs", Integer(1), 15),
        Param("mini_batch_size", Integer(1), 1000),
        Param("loss", Options(("auto", *ANY_LOSS)), "auto", "auto: logistic, softmax_loss or squared_loss by predictor_type"),
        Param("optimizer", Options(("auto", "adam", "sgd", "rmsprop")), "auto", "auto = adam"),
        Param("learning_rate", AnyOf((AUTO, Real(0, low_open=True))), "auto", "auto: 0.01 (adam, rmsprop), 0.1 (sgd)"),
        Param("beta_1", Real(0, 1), 0.9),
        Param("beta_2", Real(0, 1), 0.999),
        Param("momentum", AnyOf((AUTO, Real(0, 1))), "auto", "sgd momentum; auto = 0.9"),
        Param("wd", AnyOf((AUTO, Real(0))), "auto", "L2 regularization; auto = 0"),
        Param("l1", AnyOf((AUTO, Real(0))), "auto", "L1 regularization; auto = 0"),
        Param("use_bias", Boolean(), True),
        Param("bias_lr_mult", AnyOf((AUTO, Real(0, low_open=True))), "auto", "auto = 1"),
        Param("bias_wd_mult", AnyOf((AUTO, Real(0))), "auto", "auto = 0"),
        Param("init_method", Options(("uniform", "normal")), "uniform"),
        Param("init_scale", Real(0, low_open=True), 0.07),
        Param("init_sigma", Real(0, low_open=True), 0.01),
        Param("init_bias", Real(), 0.0),
        Param("normalize_data", Boolean(), True, "standardize features (sparse: scale only)"),
        Param("normalize_label", AnyOf((AUTO, Boolean())), "auto", "auto: true for regressor"),
        Param("num_point_for_scaler", Integer(1), 10000, "records used to compute scaling and class weights"),
        Param("use_lr_scheduler", Boolean(), True),
        Param("lr_scheduler_step", AnyOf((AUTO, Integer(1))), "auto", "auto = 100 updates"),
        Param("lr_scheduler_factor", AnyOf((AUTO, Real(0, 1, low_open=True))), "auto", "auto = 0.99"),
        Param("lr_scheduler_minimum_lr", AnyOf((AUTO, Real(0))), "auto", "auto = 1e-5"),
        Param("early_stopping_patience", Integer(1), 3, "epochs without improvement before stopping"),
        Param("early_stopping_tolerance", Real(0), 0.001, "relative improvement that counts"),
        *selection.PARAMS,
        Param("positive_example_weight_mult", AnyOf((Options(("auto", "balanced")), Real(0, low_open=True))), 1.0, "auto = balanced"),
        Param("balance_multiclass_weights", Boolean(), False),
        Param("accuracy_top_k", Integer(1), 3),
        Param("margin", Real(0), 1.0, "hinge_loss margin"),
        Param("huber_delta", Real(0, low_open=True), 1.0),
        Param("quantile", Real(0, 1, low_open=True), 0.5),
        Param("loss_insensitivity", Real(0), 0.01),
        Param("num_models", AnyOf((AUTO, Integer(1))), "auto", "one model is trained", ignored=True),
        Param("num_calibration_samples", Integer(1), 10000000, "threshold chosen from a 10,000-bin score histogram", ignored=True),
        Param("unbias_data", AnyOf((AUTO, Boolean())), "auto", "normalize_data centres dense data", ignored=True),
        Param("unbias_label", AnyOf((AUTO, Boolean())), "auto", "normalize_label centres labels", ignored=True),
        *COMMON,
    ]

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        kind = hp["predictor_type"]
        if kind == "multiclass_classifier" and hp["num_classes"] == "auto":
            raise ConfigError("num_classes is required when predictor_type=multiclass_classifier")
        self.loss = AUTO_LOSS[kind] if hp["loss"] == "auto" else hp["loss"]
        if self.loss not in LOSSES[kind]:
            raise ConfigError(f"loss={self.loss} does not fit predictor_type={kind}; use one of: {', '.join(LOSSES[kind])}")
        self.n_out = hp["num_classes"] if kind == "multiclass_classifier" else 1
        self.optimizer = "adam" if hp["optimizer"] == "auto" else hp["optimizer"]
        lr = hp["learning_rate"]
        self.lr = (0.1 if self.optimizer == "sgd" else 0.01) if lr == "auto" else lr
        auto = lambda name, default: default if hp[name] == "auto" else hp[name]  # noqa: E731
        self.wd, self.l1 = auto("wd", 0.0), auto("l1", 0.0)
        self.momentum = auto("momentum", 0.9)
        self.bias_lr, self.bias_wd = auto("bias_lr_mult", 1.0), auto("bias_wd_mult", 0.0)
        self.sched_step, self.sched_factor = auto("lr_scheduler_step", 100), auto("lr_scheduler_factor", 0.99)
        self.sched_min = auto("lr_scheduler_minimum_lr", 1e-5)
        self.normalize_label = kind == "regressor" if hp["normalize_label"] == "auto" else hp["normalize_label"]
        self.W = self.b = None
        self.mean = self.scale = None
        self.label_mean, self.label_scale = 0.0, 1.0
        self.class_weights: np.ndarray | None = None
        self.t = 0
        self.best = (np.inf, None)
        self.bad_epochs = 0
        self.epoch_loss = self.epoch_weight = 0.0
        self._warmup: list[Block] = []
        self._warm_count = 0

    # --- checkpoint state
    def state(self):
        arrays = {k: getattr(self, k) for k in ("W", "b", "mean", "scale", "m_W", "v_W", "m_b", "v_b", "class_weights")}
        best_loss, best_params = self.best
        if best_params is not None:
            arrays["best_W"], arrays["best_b"] = best_params
        meta = {"t": self.t, "label_mean": self.label_mean, "label_scale": self.label_scale,
                "best_loss": best_loss if np.isfinite(best_loss) else None, "bad_epochs": self.bad_epochs, "lr": self.lr}
        return arrays, meta

    def load_state(self, arrays, meta):
        for k in ("W", "b", "mean", "scale", "m_W", "v_W", "m_b", "v_b", "class_weights"):
            setattr(self, k, arrays[k].astype(np.float64))
        self.t, self.bad_epochs, self.lr = meta["t"], meta["bad_epochs"], meta["lr"]
        self.label_mean, self.label_scale = meta["label_mean"], meta["label_scale"]
        best = meta["best_loss"]
        self.best = (np.inf if best is None else best, (arrays["best_W"], arrays["best_b"]) if "best_W" in arrays else None)

    # --- set-up from the first num_point_for_scaler records
    def _check_labels(self, y: np.ndarray) -> None:
        kind = self.hp["predictor_type"]
        if kind == "binary_classifier":
            bad = y[(y != 0) & (y != 1)]
            if len(bad):
                raise DataError(f"predictor_type=binary_classifier needs labels 0 or 1; found {bad[0]:g}")
        elif kind == "multiclass_classifier":
            bad = y[(y != np.round(y)) | (y < 0) | (y >= self.n_out)]
            if len(bad):
                raise DataError(f"predictor_type=multiclass_classifier with num_classes={self.n_out} needs labels 0..{self.n_out - 1}; found {bad[0]:g}")

    def _setup(self, stats: "ScalerStats") -> None:
        d = len(stats.sum_x)
        if self.hp["normalize_data"]:
            n = max(stats.n, 1)
            if stats.sparse:
                self.mean, self.scale = np.zeros(d), np.sqrt(stats.sum_x2 / n)
            else:
                self.mean = stats.sum_x / n
                self.scale = np.sqrt(np.maximum(stats.sum_x2 / n - self.mean**2, 0.0))
            self.scale[self.scale < 1e-8] = 1.0
        else:
            self.mean, self.scale = np.zeros(d), np.ones(d)
        if self.normalize_label:
            mean = stats.sum_y / stats.n
            self.label_mean, self.label_scale = float(mean), float(np.sqrt(max(stats.sum_y2 / stats.n - mean**2, 0.0))) or 1.0
        kind = self.hp["predictor_type"]
        counts = stats.label_counts
        if kind == "binary_classifier":
            mult = self.hp["positive_example_weight_mult"]
            pos = float(counts[1])
            if mult in ("auto", "balanced"):
                mult = (stats.n - pos) / pos if pos else 1.0
                log.info("positive_example_weight_mult=%s -> %.4f (negatives/positives in the first %d records)", self.hp["positive_example_weight_mult"], mult, stats.n)
            self.class_weights = np.array([1.0, mult])
        elif kind == "multiclass_classifier" and self.hp["balance_multiclass_weights"]:
            counts = counts[: self.n_out].astype(np.float64)
            self.class_weights = np.where(counts > 0, stats.n / (self.n_out * np.maximum(counts, 1)), 1.0)
        else:
            self.class_weights = np.ones(max(self.n_out, 2))
        if self.hp["init_method"] == "uniform":
            self.W = self.rng.uniform(-self.hp["init_scale"], self.hp["init_scale"], (d, self.n_out))
        else:
            self.W = self.rng.normal(0, self.hp["init_sigma"], (d, self.n_out))
        self.b = np.full(self.n_out, self.hp["init_bias"] if self.hp["use_bias"] else 0.0)
        self.m_W, self.v_W = np.zeros_like(self.W), np.zeros_like(self.W)
        self.m_b, self.v_b = np.zeros_like(self.b), np.zeros_like(self.b)

    @property
    def n_classes(self) -> int:
        return 0 if self.hp["predictor_type"] == "regressor" else max(self.n_out, 2)

    def _model(self, W=None, b=None) -> LinearModel:
        return LinearModel(
            self.hp["predictor_type"], self.W if W is None else W, self.b if b is None else b, self.mean, self.scale,
            self.label_mean, self.label_scale, 0.5, self.hp["f_beta"], self.hp["accuracy_top_k"],
            self.hp["binary_classifier_model_selection_criteria"],
            {"target_recall": self.hp["target_recall"], "target_precision": self.hp["target_precision"]},
        )

    # --- training
    def step(self, batch: Block) -> None:
        y = require_labels(batch, "train")
        self._check_labels(y)
        if self.W is None:
            self._warmup.append(batch)
            self._warm_count += len(batch)
            if self._warm_count < self.hp["num_point_for_scaler"]:
                return
            self._flush_warmup()
            return
        self._update(batch.X, y)

    def _flush_warmup(self) -> None:
        if not self._warmup:
            return
        blocks, self._warmup = self._warmup, []
        self._setup(ScalerStats.of(concat(blocks), self.n_classes))
        for block in blocks:
            self._update(block.X, block.y)

    def _update(self, X, y) -> None:
        Xn = X.multiply(1.0 / self.scale).tocsr() if sp.issparse(X) else (X - self.mean) / self.scale
        target = (y - self.label_mean) / self.label_scale if self.normalize_label else y
        S = np.asarray(Xn @ self.W) + self.b
        loss, G = loss_and_gradient(self.loss, S, target, self.hp)
        if self.hp["predictor_type"] != "regressor":
            w = self.class_weights[y.astype(np.int64)]
        else:
            w = np.ones(len(y))
        total = w.sum()
        self.epoch_loss += float(loss @ w)
        self.epoch_weight += total
        G = G * (w / total)[:, None]
        gW = np.asarray(Xn.T @ G) + self.wd * self.W + self.l1 * np.sign(self.W)
        gb = G.sum(axis=0) * self.bias_lr + self.bias_wd * self.wd * self.b if self.hp["use_bias"] else np.zeros_like(self.b)
        self.t += 1
        lr = self.lr
        if self.hp["use_lr_scheduler"]:
            lr = max(self.lr * self.sched_factor ** (self.t // self.sched_step), self.sched_min)
        if self.optimizer == "adam":
            b1, b2 = self.hp["beta_1"], self.hp["beta_2"]
            for p, g, m, v in ((self.W, gW, self.m_W, self.v_W), (self.b, gb, self.m_b, self.v_b)):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + 1e-8)
        elif self.optimizer == "rmsprop":
            for p, g, v in ((self.W, gW, self.v_W), (self.b, gb, self.v_b)):
                v *= 0.9
                v += 0.1 * g * g
                p -= lr * g / (np.sqrt(v) + 1e-8)
        else:
            for p, g, m in ((self.W, gW, self.m_W), (self.b, gb, self.m_b)):
                m *= self.momentum
                m -= lr * g
                p += m

    def _end_epoch(self, epoch: int, validation) -> bool:
        self._flush_warmup()
        if isinstance(validation, HeldOutStream):
            ev, self._progressive = self._progressive, None
        elif validation is not None:
            ev = self._model().evaluator()
            ev.channel = validation.name
            for batch in batches(validation, self.hp["mini_batch_size"]):
                ev.add(batch)
        else:
            ev = None
        return self._judge(epoch, ev)

    def _judge(self, epoch: int, ev) -> bool:
        """The epoch's objective (on validation when there is some), the best parameters so far, and whether to stop."""
        if ev is not None:
            objective = self._objective(ev.acc)
            source = "validation"
        else:
            objective = self.epoch_loss / max(self.epoch_weight, 1e-12)
            source = "train"
        self.epoch_loss = self.epoch_weight = 0.0
        name = {"binary_classifier": "binary_classification_cross_entropy_objective",
                "multiclass_classifier": "multiclass_cross_entropy_objective", "regressor": "mse"}[self.hp["predictor_type"]]
        if source == "train":
            name = "objective_loss"
        self.ctx.emit(f"#quality_metric: host={self.ctx.host}, epoch={epoch}, {source} {name} <loss>={objective:.6g}")
        best_loss = self.best[0]
        if objective < best_loss * (1 - self.hp["early_stopping_tolerance"]) or not np.isfinite(best_loss):
            self.best = (objective, (self.W.copy(), self.b.copy()))
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.hp["early_stopping_patience"]

    def _score_held_out(self, block: Block) -> None:
        """Progressive validation: each held-out row is scored by the model as it is when the row
        streams past (rows before the scaler is set up are skipped). The rows are never trained on."""
        if self.W is None:
            return
        if self._progressive is None:
            self._progressive = self._model().evaluator()
            self._progressive.channel = "validation"
        model = self._progressive.model
        model.W, model.b = self.W, self.b  # the current parameters, not a snapshot
        self._progressive.add(block)

    @staticmethod
    def _objective(acc) -> float:
        if isinstance(acc, M.RegressionAccumulator):
            return acc.result()["mse"]
        n = acc.count if isinstance(acc, M.BinaryAccumulator) else max(int(acc.cm.sum()), 1)
        return acc.log_loss / max(n, 1)

    @classmethod
    def uses_validation(cls, hp: dict, labels=None) -> bool:
        return True

    def fit(self, train, validation):
        self._progressive = None
        if isinstance(validation, HeldOutStream):
            validation.subscribe(self._score_held_out)
            log.info("early stopping on the validation slice held out of '%s', scored progressively", train.name)
        stream_epochs(
            self, train, self.hp["epochs"], self.hp["mini_batch_size"], self.step, lambda e: self._end_epoch(e, validation)
        )
        if self.W is None:
            raise DataError(f"channel '{train.name}' has no records")
        W, b = self.best[1] if self.best[1] is not None else (self.W, self.b)
        return self._model(W, b)
