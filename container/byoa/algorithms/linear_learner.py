"""Linear learner as the built-in does it: ``num_models`` linear models trained in parallel by
streaming mini-batch SGD/Adam/RMSProp, one with the given settings and the others with nearby
ones, and the best on validation data kept (by ``binary_classifier_model_selection_criteria``,
or the objective loss). The models are columns of one weight matrix, so a mini-batch costs
two matrix products for all of them.

As a reduction: every partition trains the models on its own mini-batches from the leader's
parameters, and the leader averages the partitions' parameters (weighted by records) after
1, 2, 4, ... up to ``SYNC_STEPS`` local updates each epoch; the first round, which also reads
the scaler's records, is trained the same way once the scaler is set up (phase ``warm``). On
one host the average of one is the host's own parameters, so single-host training is plain
mini-batch training.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..data.blocks import Block, concat
from ..data.inputs import ChannelRule
from ..errors import ConfigError, DataError
from ..hyperparameters import AnyOf, Boolean, Integer, Mapping, Options, Param, Real, Tune
from ..model_io import ArraySpec, ModelFormatError
from ..stats import metrics as M
from ..stats import selection
from ..stats.links import sigmoid, softmax
from ..stats.selection import BinaryThreshold, criterion_score
from .base import COMMON, QUIET, WHOLE_PASS, Algorithm, LocalSteps, Model, ScoreEvaluator, require_labels, test_channel

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
OBJECTIVE_NAMES = {"logistic": "binary_classification_cross_entropy_objective", "softmax_loss": "multiclass_cross_entropy_objective"}

AUTO = Options(("auto",))
ANY_LOSS = tuple(sorted({loss for losses in LOSSES.values() for loss in losses}))
OPTIMIZERS = ("adam", "sgd", "rmsprop")

AUTO_MODELS = 32  # num_models=auto, as the built-in's default
AUTO_BATCH = 1000  # mini_batch_size=auto, as the built-in's default ...
MIN_UPDATES = 32  # ... or smaller for small data, so that an epoch makes at least this many updates
MAX_MODEL_WEIGHTS = 2**21  # auto: fewer models when feature_dim x outputs x models would pass this
# The grid's nearby settings, nearest first; a value the user gives pins its axis.
LR_FACTORS = (1.0, 10.0, 0.1, 3.0, 0.3, 30.0, 0.03)
WD_VALUES = (0.0, 1e-4, 1e-2, 1e-3)
L1_VALUES = (0.0, 1e-4)
BASE_LR = {"adam": 0.01, "rmsprop": 0.01, "sgd": 0.1}


def loss_and_gradient(loss: str, S: np.ndarray, y: np.ndarray, hp: dict, value: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Per-record, per-model loss (n, m) and d loss / d score (n, m, c). ``S`` is (n, m, c): n records,
    m models, c outputs (c = 1 but for softmax); ``y`` holds the labels (class index for softmax).
    ``value=False`` skips the logistic loss's logarithms (its gradient does not need them): the loss is None."""
    if loss == "softmax_loss":
        P = softmax(S)
        rows = np.arange(len(y))
        cls = y.astype(np.int64)
        value = -np.log(np.clip(P[rows, :, cls], 1e-15, 1))
        P[rows, :, cls] -= 1.0
        return value, P
    s, y = S[:, :, 0], y[:, None]
    if loss == "logistic":
        return np.logaddexp(0.0, s) - y * s if value else None, (sigmoid(s) - y)[:, :, None]
    if loss == "hinge_loss":
        sign = 2.0 * y - 1.0
        margin = hp["margin"] - sign * s
        return np.maximum(margin, 0.0), np.where(margin > 0, -sign, 0.0)[:, :, None]
    r = s - y
    if loss == "squared_loss":
        return 0.5 * r * r, r[:, :, None]
    if loss == "absolute_loss":
        return np.abs(r), np.sign(r)[:, :, None]
    if loss == "huber_loss":
        d = hp["huber_delta"]
        a = np.abs(r)
        return np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)), np.clip(r, -d, d)[:, :, None]
    if loss == "quantile_loss":
        q = hp["quantile"]
        return np.where(r < 0, -q * r, (1 - q) * r), np.where(r < 0, -q, 1 - q)[:, :, None]
    eps = hp["loss_insensitivity"]
    excess = np.maximum(np.abs(r) - eps, 0.0)
    if loss == "eps_insensitive_squared_loss":
        return 0.5 * excess**2, (np.sign(r) * excess)[:, :, None]
    return excess, (np.sign(r) * (excess > 0))[:, :, None]  # eps_insensitive_absolute_loss


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
    complete: bool = False  # these are all the records of the training data

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

    def merge(self, other: "ScalerStats") -> "ScalerStats":
        width = max(len(self.label_counts), len(other.label_counts))
        counts = np.pad(self.label_counts, (0, width - len(self.label_counts))) + np.pad(other.label_counts, (0, width - len(other.label_counts)))
        return ScalerStats(self.n + other.n, self.sparse or other.sparse, self.sum_x + other.sum_x, self.sum_x2 + other.sum_x2,
                           self.sum_y + other.sum_y, self.sum_y2 + other.sum_y2, counts, self.complete and other.complete)


@dataclass
class Scaling:
    """How records and labels are scaled before the linear map, and how classes are weighted: the same on every host."""

    mean: np.ndarray
    scale: np.ndarray
    label_mean: float
    label_scale: float
    class_weights: np.ndarray
    normalize_label: bool

    def features(self, X):
        """Sparse data is scaled without centring, so it stays sparse (as the built-in does)."""
        return X.multiply(1.0 / self.scale).tocsr() if sp.issparse(X) else (X - self.mean) / self.scale

    def target(self, y: np.ndarray) -> np.ndarray:
        return (y - self.label_mean) / self.label_scale if self.normalize_label else y


@dataclass
class Grid:
    """The settings of each of the models, in model order (models of one optimizer are contiguous)."""

    lr: np.ndarray
    wd: np.ndarray
    l1: np.ndarray
    optimizer: list

    def __len__(self) -> int:
        return len(self.lr)

    def describe(self, m: int) -> dict:
        return {"learning_rate": float(self.lr[m]), "wd": float(self.wd[m]), "l1": float(self.l1[m]), "optimizer": self.optimizer[m]}

    def groups(self) -> list[tuple[str, slice]]:
        """(optimizer, models) runs."""
        out, start = [], 0
        for name, run in itertools.groupby(self.optimizer):
            n = len(list(run))
            out.append((name, slice(start, start + n)))
            start += n
        return out


def make_grid(hp: dict, count: int) -> Grid:
    """``count`` models: the given settings first, then the nearest combinations of the free axes
    (learning_rate, wd, l1, optimizer); pinned axes keep the given value. With fewer combinations
    than models, settings repeat (the models still differ by their random start)."""
    optimizers = ["adam", "sgd"] if hp["optimizer"] == "auto" else [hp["optimizer"]]
    lr_factors = LR_FACTORS if hp["learning_rate"] == "auto" else (1.0,)
    wds = WD_VALUES if hp["wd"] == "auto" else (hp["wd"],)
    l1s = L1_VALUES if hp["l1"] == "auto" else (hp["l1"],)
    combos = []
    for (oi, opt), (fi, factor), (wi, wd), (li, l1) in itertools.product(enumerate(optimizers), enumerate(lr_factors), enumerate(wds), enumerate(l1s)):
        lr = BASE_LR[opt] * factor if hp["learning_rate"] == "auto" else hp["learning_rate"]
        distance = (oi > 0) + (fi > 0) + (wi > 0) + (li > 0), oi + fi + wi + li
        combos.append((distance, opt, lr, wd, l1))
    combos.sort(key=lambda c: c[0])
    chosen = [combos[i % len(combos)] for i in range(count)]
    chosen.sort(key=lambda c: optimizers.index(c[1]))  # contiguous per optimizer; stable: nearest first within
    return Grid(np.array([c[2] for c in chosen]), np.array([c[3] for c in chosen]), np.array([c[4] for c in chosen]),
                [c[1] for c in chosen])


@dataclass
class Params:
    """All models' parameters and optimizer state: W is (features, models x outputs)."""

    W: np.ndarray
    b: np.ndarray
    mW: np.ndarray
    vW: np.ndarray
    mb: np.ndarray
    vb: np.ndarray
    t: int = 0

    ARRAYS = ("W", "b", "mW", "vW", "mb", "vb")

    def copy(self) -> "Params":
        return Params(*(getattr(self, k).copy() for k in self.ARRAYS), self.t)


@dataclass
class Progress:
    """A partition's part of a training round: its records' weighted parameter sums and its training loss."""

    records: int
    sums: dict
    t: int
    loss: float
    weight: float
    left: int = 0  # updates this partition still has to make on the round's records

    def merge(self, other: "Progress") -> "Progress":
        return Progress(self.records + other.records, {k: v + other.sums[k] for k, v in self.sums.items()},
                        max(self.t, other.t), self.loss + other.loss, self.weight + other.weight, max(self.left, other.left))


@dataclass
class Losses:
    """Per-model sums of the objective (and of its square) over validation records."""

    total: np.ndarray
    squares: np.ndarray
    n: int

    def merge(self, other: "Losses") -> "Losses":
        return Losses(self.total + other.total, self.squares + other.squares, self.n + other.n)

    def standard_errors(self) -> np.ndarray:
        mean = self.total / self.n
        return np.sqrt(np.maximum(self.squares / self.n - mean**2, 0.0) / self.n)


def one_standard_error(values: np.ndarray, errors: np.ndarray, larger_is_better: bool) -> tuple[int, float]:
    """The model nearest the given settings (lowest index) among those within one standard error of the best, and
    that error: a validation set of a few dozen records cannot tell closer models apart, and picking the best of
    many by chance would fit its noise. The error is the best model's or the given settings' (model 0), whichever is
    larger: a model that fits a tiny validation set perfectly has no spread to measure."""
    sign = 1.0 if larger_is_better else -1.0
    best = int(np.argmax(sign * values))
    error = float(max(errors[best], errors[0]))
    return int(np.flatnonzero(sign * values >= sign * values[best] - error)[0]), error


def check_labels(kind: str, n_out: int, y: np.ndarray, channel: str) -> None:
    """Labels the predictor type can learn or be scored on: 0 or 1, class indices, or any number."""
    if kind == "binary_classifier":
        bad = y[(y != 0) & (y != 1)]
        if len(bad):
            raise DataError(f"channel '{channel}': predictor_type=binary_classifier needs labels 0 or 1; found {bad[0]:g}")
    elif kind == "multiclass_classifier":
        bad = y[(y != np.round(y)) | (y < 0) | (y >= n_out)]
        if len(bad):
            raise DataError(f"channel '{channel}': predictor_type=multiclass_classifier with num_classes={n_out} needs labels "
                            f"0..{n_out - 1}; found {bad[0]:g}")


class LinearModel(BinaryThreshold, Model):
    name = "linear-learner"

    def __init__(self, predictor_type, W, b, mean, scale, label_mean=0.0, label_scale=1.0, threshold=0.5, beta=1.0,
                 top_k=3, criterion="accuracy", targets=None, model_selection=None):
        self.targets = targets or {"target_recall": 0.8, "target_precision": 0.8}
        self.predictor_type = predictor_type
        self.W, self.b = W.astype(np.float64), b.astype(np.float64)
        self.mean, self.scale = mean.astype(np.float64), scale.astype(np.float64)
        self.label_mean, self.label_scale = float(label_mean), float(label_scale)
        self.threshold = float(threshold)
        self.beta, self.top_k, self.criterion = beta, top_k, criterion
        self.selection: dict = {}
        self.model_selection = model_selection or {}  # which of the parallel models was kept, with which settings

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
            score = sigmoid(S[:, 0])
            return {"score": score.astype(np.float32), "predicted_label": (score >= self.threshold).astype(np.float32)}
        if self.predictor_type == "multiclass_classifier":
            P = softmax(S)
            return {"score": P.astype(np.float32), "predicted_label": P.argmax(axis=1).astype(np.float32)}
        return {"score": (S[:, 0] * self.label_scale + self.label_mean).astype(np.float32)}

    def evaluator(self, role="test"):
        return ScoreEvaluator(self, self.W.shape[1], self.top_k, self.beta)

    def check_labels(self, y: np.ndarray, channel: str) -> None:
        check_labels(self.predictor_type, self.W.shape[1], y, channel)

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
            "model_selection": self.model_selection,
        }
        return arrays, meta

    artifact_arrays = {
        "W": ArraySpec("f", [("features", "outputs")]),
        "b": ArraySpec("f", [("outputs",)]),
        "mean": ArraySpec("f", [("features",)]),
        "scale": ArraySpec("f", [("features",)]),
    }
    artifact_meta = {
        "predictor_type": Options(tuple(LOSSES)), "label_mean": Real(), "label_scale": Real(0, low_open=True), "threshold": Real(0, 1),
        "beta": Real(0, low_open=True), "top_k": Integer(1), "criterion": Options(selection.CRITERIA),
        "targets": Mapping({k: selection.SELECTION_META[k] for k in ("target_recall", "target_precision")}),
    }

    @classmethod
    def check(cls, arrays, meta, dims, owner):
        multiclass = meta["predictor_type"] == "multiclass_classifier"
        if (dims["outputs"] < 3) if multiclass else (dims["outputs"] != 1):
            raise ModelFormatError(f"the {owner} model has {dims['outputs']} outputs, which predictor_type={meta['predictor_type']} "
                                   "cannot have (1, or one per class for 3 classes or more)")
        if not (arrays["scale"] > 0).all():
            raise ModelFormatError(f"the {owner} model has a feature scale that is not positive")

    @classmethod
    def from_artifacts(cls, arrays, meta):
        model = cls(
            meta["predictor_type"], arrays["W"], arrays["b"], arrays["mean"], arrays["scale"], meta["label_mean"],
            meta["label_scale"], meta["threshold"], meta["beta"], meta["top_k"], meta["criterion"], meta["targets"],
            meta.get("model_selection"),
        )
        model.selection = meta.get("selection", {})
        return model



class LinearLearnerAlgorithm(LocalSteps, Algorithm):
    name = "linear-learner"
    checkpoints = True
    width_costs = "weights, optimiser moments and the best weights: six arrays of features x outputs"

    @classmethod
    def working_bytes(cls, hp, n_features):
        classes = hp["num_classes"] if isinstance(hp["num_classes"], int) else 3
        outputs = classes if hp["predictor_type"] == "multiclass_classifier" else 1
        return 6 * 8 * n_features * outputs
    metric_defs = M.BINARY + M.MULTICLASS + M.REGRESSION
    model_class = LinearModel
    channels = [
        ChannelRule("train", "labelled records (label first in CSV, the label field in RecordIO)", required=True),
        ChannelRule("validation", "early stopping, model selection and the decision threshold; without it, a held-out share of "
                    "train (threshold_fraction)"),
        test_channel(),
    ]
    objectives = {"binary": "validation:roc_auc_score", "multiclass": "validation:multiclass_accuracy", "regression": "validation:rmse"}
    example = {"predictor_type": "multiclass_classifier", "num_classes": "3"}
    params = [
        Param("predictor_type", Options(tuple(LOSSES))),
        Param("num_classes", AnyOf((AUTO, Integer(3, 1_000_000))), "auto", "required for multiclass_classifier"),
        Param("feature_dim", AnyOf((AUTO, Integer(1))), "auto", "auto: taken from the data"),
        Param("epochs", Integer(1), 15),
        Param("mini_batch_size", AnyOf((AUTO, Integer(1))), "auto",
              f"auto: {AUTO_BATCH}, or, when the training data holds fewer than num_point_for_scaler records, the size that "
              f"gives {MIN_UPDATES} updates an epoch", tune=Tune(100, 5000)),
        Param("loss", Options(("auto", *ANY_LOSS)), "auto", "auto: logistic, softmax_loss or squared_loss by predictor_type"),
        Param("optimizer", Options(("auto", *OPTIMIZERS)), "auto", "auto: adam for the first model, sgd for some of the others"),
        Param("learning_rate", AnyOf((AUTO, Real(0, low_open=True))), "auto", "auto: 0.01 (adam, rmsprop), 0.1 (sgd) for the first model, a grid around it for the others",
              tune=Tune(1e-5, 1.0, "Logarithmic")),
        Param("beta_1", Real(0, 1), 0.9, tune=Tune(1e-6, 0.999)),
        Param("beta_2", Real(0, 1), 0.999, tune=Tune(1e-6, 0.999)),
        Param("momentum", AnyOf((AUTO, Real(0, 1))), "auto", "sgd momentum; auto = 0.9", tune=Tune(0.0, 0.999)),
        Param("wd", AnyOf((AUTO, Real(0))), "auto", "L2 regularization; auto: 0 for the first model, a grid for the others",
              tune=Tune(1e-7, 1.0, "Logarithmic")),
        Param("l1", AnyOf((AUTO, Real(0))), "auto", "L1 regularization; auto: 0 for the first model, a grid for the others",
              tune=Tune(1e-7, 1.0, "Logarithmic")),
        Param("use_bias", Boolean(), True, tune=Tune(values=(True, False))),
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
        Param("lr_scheduler_step", AnyOf((AUTO, Integer(1))), "auto", "auto = 100 updates", tune=Tune(1, 1000)),
        Param("lr_scheduler_factor", AnyOf((AUTO, Real(0, 1, low_open=True))), "auto", "auto = 0.99", tune=Tune(1e-6, 0.999)),
        Param("lr_scheduler_minimum_lr", AnyOf((AUTO, Real(0))), "auto", "auto = 1e-5", tune=Tune(1e-6, 1e-3, "Logarithmic")),
        Param("early_stopping_patience", Integer(1), 3,
              "epochs in which no model that could be kept (within one standard error of the best) improves before stopping"),
        Param("early_stopping_tolerance", Real(0), 0.001, "relative improvement that counts"),
        *selection.PARAMS,
        Param("positive_example_weight_mult", AnyOf((Options(("auto", "balanced")), Real(0, low_open=True))), 1.0, "auto = balanced",
              tune=Tune(1e-5, 1e5, "Logarithmic")),
        Param("balance_multiclass_weights", Boolean(), False),
        Param("accuracy_top_k", Integer(1), 3),
        Param("margin", Real(0), 1.0, "hinge_loss margin"),
        Param("huber_delta", Real(0, low_open=True), 1.0),
        Param("quantile", Real(0, 1, low_open=True), 0.5),
        Param("loss_insensitivity", Real(0), 0.01),
        Param("num_models", AnyOf((AUTO, Integer(1, 1024))), "auto",
              f"models trained in parallel, the best on validation kept; auto = {AUTO_MODELS} (fewer for very wide data; 1 under hyperparameter tuning)"),
        Param("num_calibration_samples", Integer(1), 10000000, "most validation records used to choose the model and its threshold"),
        Param("unbias_data", AnyOf((AUTO, Boolean())), "auto", "normalize_data centres dense data", ignored=True),
        Param("unbias_label", AnyOf((AUTO, Boolean())), "auto", "normalize_label centres labels", ignored=True),
        *COMMON,
    ]

    @classmethod
    def configure(cls, hp: dict, platform: dict) -> dict:
        """Under automatic model tuning the built-in trains one model (tuning searches the settings itself)."""
        if "_tuning_objective_metric" in platform and hp["num_models"] == "auto":
            log.info("num_models=auto -> 1 under hyperparameter tuning (_tuning_objective_metric is set)")
            return {**hp, "num_models": 1}
        return hp

    @classmethod
    def uses_validation(cls, hp: dict, labels=None) -> bool:
        return True

    @classmethod
    def validation_limit(cls, hp: dict) -> int | None:
        return hp["num_calibration_samples"]

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        kind = hp["predictor_type"]
        if kind == "multiclass_classifier" and hp["num_classes"] == "auto":
            raise ConfigError("num_classes is required when predictor_type=multiclass_classifier")
        self.loss = AUTO_LOSS[kind] if hp["loss"] == "auto" else hp["loss"]
        if self.loss not in LOSSES[kind]:
            raise ConfigError(f"loss={self.loss} does not fit predictor_type={kind}; use one of: {', '.join(LOSSES[kind])}")
        self.n_out = hp["num_classes"] if kind == "multiclass_classifier" else 1
        auto = lambda name, default: default if hp[name] == "auto" else hp[name]  # noqa: E731
        self.momentum = auto("momentum", 0.9)
        self.bias_lr, self.bias_wd = auto("bias_lr_mult", 1.0), auto("bias_wd_mult", 0.0)
        self.sched_step, self.sched_factor = auto("lr_scheduler_step", 100), auto("lr_scheduler_factor", 0.99)
        self.sched_min = auto("lr_scheduler_minimum_lr", 1e-5)
        self.normalize_label = kind == "regressor" if hp["normalize_label"] == "auto" else hp["normalize_label"]
        self.scaling: Scaling | None = None
        self.params: Params | None = None
        self.grid: Grid | None = None
        self.best_obj = self.best_W = self.best_b = None  # per model: the kept parameters and their objective
        self.lowest = None  # per model: the lowest objective of any epoch
        self.bad = None  # per model: epochs since its objective last improved by the tolerance
        self.update_batch = None if hp["mini_batch_size"] == "auto" else hp["mini_batch_size"]
        self.training_loss_needed = True  # epochs are judged on the training loss only when there are no validation records
        self.epoch_loss: np.ndarray | float = 0.0
        self.epoch_weight = 0.0
        self._cols: dict | None = None  # partition side: the grid's per-column settings
        self.pieces: list | None = None  # partition side: the scaler round's records, cut into updates (phase warm)
        self.cursor = 0

    @property
    def epochs(self) -> int:
        return self.hp["epochs"]

    @property
    def batch_size(self) -> int:
        """Records read per mini-batch: one update's, once ``auto`` has chosen it (the epochs after the first)."""
        return self.update_batch or AUTO_BATCH

    @property
    def n_classes(self) -> int:
        return 0 if self.hp["predictor_type"] == "regressor" else max(self.n_out, 2)

    def num_models(self, d: int) -> int:
        given = self.hp["num_models"]
        return given if given != "auto" else max(1, min(AUTO_MODELS, MAX_MODEL_WEIGHTS // (d * self.n_out)))

    # --- the reduction: a scaler round, then rounds of local mini-batch steps whose parameters are averaged
    def _scaler_batches(self) -> int:
        """Local mini-batches each partition reads for the scaler."""
        return max(1, math.ceil(self.hp["num_point_for_scaler"] / (self.count * math.ceil(self.batch_size / self.count))))

    def round(self):
        if self.params is None:
            return "scale", self._scaler_batches()
        return "train", WHOLE_PASS if self.count == 1 else self._sync_steps()

    def broadcast(self, phase):
        if phase == "scale":  # records asked of each partition: fewer come back when its data ends
            return self._scaler_batches() * math.ceil(self.batch_size / self.count)
        if phase in ("train", "warm"):
            steps = None if self.count == 1 or phase == "train" else self._sync_steps()
            return self.scaling, self.params, self.update_batch, self.training_loss_needed, steps
        return self.scaling, self.params

    def partial(self, phase, shared, batches):
        if phase == "scale":
            blocks = [b for b in batches]
            for b in blocks:
                self._check_labels(require_labels(b, "train"))
            stats = ScalerStats.of(concat(blocks), self.n_classes)
            stats.complete = stats.n < shared
            self.pieces = None  # the warm phases cut these records into updates
            return stats
        if phase in ("train", "warm"):
            return self._train(phase, *shared, batches)
        if phase == "objective":
            return self._objective(*shared, batches)
        return self._score_histograms(*shared, batches)  # "scores"

    def merge(self, phase, a, b):
        if phase == "scores":
            for x, y in zip(a, b):
                x.merge(y)
            return a
        return a.merge(b)

    def update(self, phase, merged):
        if phase == "scale":
            self._setup(merged)
            return "warm"
        self.params = Params(*(merged.sums[k] / merged.records for k in Params.ARRAYS), merged.t)
        self.epoch_loss = self.epoch_loss + merged.loss
        self.epoch_weight += merged.weight
        return "warm" if merged.left else None

    def end_epoch(self, epoch, validate) -> bool:
        """Judge every epoch on one yardstick: the objective on the validation records (the training loss
        of the epoch when there are none), in the units the models train in."""
        self.sync_round = 0
        losses = validate("objective", (self.scaling, self.params))
        if losses is not None and losses.n:
            objective, errors, source = losses.total / losses.n, losses.standard_errors(), "validation"
            self.training_loss_needed = False
        else:
            objective, source = np.asarray(self.epoch_loss) / max(self.epoch_weight, 1e-12), "train"
            errors = np.zeros_like(objective)
        self.epoch_loss, self.epoch_weight = 0.0, 0.0
        improved = ~np.isfinite(self.lowest) | (objective < self.lowest * (1 - self.hp["early_stopping_tolerance"]))
        self.lowest = np.minimum(self.lowest, objective)
        # Each model keeps its latest parameters unless an earlier epoch was better by more than one standard error:
        # a few dozen validation records cannot tell epochs apart, and the later parameters are the better trained.
        keep = objective <= self.lowest + errors
        columns = np.repeat(keep, self.n_out)
        self.best_obj = np.where(keep, objective, self.best_obj)
        self.best_W[:, columns] = self.params.W[:, columns]
        self.best_b[columns] = self.params.b[columns]
        self.bad = np.where(improved, 0, self.bad + 1)
        name = OBJECTIVE_NAMES.get(self.loss, f"{self.loss}_objective")
        self.ctx.emit(f"#quality_metric: host={self.ctx.host}, epoch={epoch}, {source} {name} <loss>={float(np.min(objective)):.6g}")
        # Only models that could be kept (within one standard error of the best, see _select) keep training going.
        best = int(np.argmin(objective))
        contenders = objective <= objective[best] + max(errors[best], errors[0])
        return bool((self.bad[contenders] >= self.hp["early_stopping_patience"]).all())

    def finish(self, validate) -> LinearModel:
        if self.params is None:
            raise DataError("channel 'train' has no records")
        chosen, how = self._select(validate)
        c = self.n_out
        columns = slice(chosen * c, (chosen + 1) * c)
        settings = self.grid.describe(chosen)
        choice = {"num_models": len(self.grid), "chosen": chosen, "settings": settings, "judged_by": how}
        if len(self.grid) > 1:
            log.info("model %d of %d kept (%s), judged by %s", chosen + 1, len(self.grid),
                     ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items()), how)
        s = self.scaling
        return LinearModel(
            self.hp["predictor_type"], self.best_W[:, columns], self.best_b[columns], s.mean, s.scale, s.label_mean,
            s.label_scale, 0.5, self.hp["f_beta"], self.hp["accuracy_top_k"], self.hp["binary_classifier_model_selection_criteria"],
            {"target_recall": self.hp["target_recall"], "target_precision": self.hp["target_precision"]}, choice,
        )

    def _select(self, validate) -> tuple[int, str]:
        """The model to keep, judged on validation data by the selection criterion (binary classifiers) or the
        objective, with each model's best parameters; by the one-standard-error rule (``one_standard_error``)."""
        criterion = self.hp["binary_classifier_model_selection_criteria"]
        if len(self.grid) == 1:
            return 0, "the only model"
        best = Params(self.best_W, self.best_b, *(None,) * 4)
        if self.hp["predictor_type"] == "binary_classifier" and criterion != "loss_function":
            accs = validate("scores", (self.scaling, best))
            if accs is not None and accs[0].count:
                targets = {"target_recall": self.hp["target_recall"], "target_precision": self.hp["target_precision"]}
                scores = [criterion_score(acc, criterion, targets, self.hp["f_beta"]) for acc in accs]
                reached = max(s[0] for s in scores) if len(scores[0]) > 1 else None  # models that reach a target come first
                values = np.array([s[-1] if reached is None or s[0] == reached else -np.inf for s in scores])
                errors = np.sqrt(np.clip(values * (1 - values), 0, None) / accs[0].count)
                chosen, error = one_standard_error(values, errors, larger_is_better=True)
                top = int(np.argmax(values))
                return chosen, (f"{criterion} on validation data: {values[chosen]:.4f}, within one standard error ({error:.4f}) "
                                f"of the best model's {values[top]:.4f}; worst model {np.min(values[np.isfinite(values)]):.4f}")
        losses = validate("objective", (self.scaling, best))
        if losses is not None and losses.n:
            values, errors, where = losses.total / losses.n, losses.standard_errors(), "validation"
        else:
            values, errors, where = self.best_obj, np.zeros_like(self.best_obj), "training"
        chosen, error = one_standard_error(values, errors, larger_is_better=False)
        top = int(np.argmin(values))
        return chosen, (f"the objective on {where} data: {values[chosen]:.4g}, within one standard error ({error:.2g}) of the "
                        f"best model's {values[top]:.4g}; worst model {np.max(values):.4g}")

    # --- checkpoints
    def state(self):
        s, p = self.scaling, self.params
        arrays = {**{k: getattr(p, k) for k in Params.ARRAYS}, "mean": s.mean, "scale": s.scale, "class_weights": s.class_weights,
                  "best_obj": self.best_obj, "best_W": self.best_W, "best_b": self.best_b, "lowest": self.lowest, "bad": self.bad}
        return arrays, {"t": p.t, "label_mean": s.label_mean, "label_scale": s.label_scale, "update_batch": self.update_batch}

    def load_state(self, arrays, meta):
        self.scaling = Scaling(arrays["mean"], arrays["scale"], meta["label_mean"], meta["label_scale"], arrays["class_weights"],
                               self.normalize_label)
        self.params = Params(*(arrays[k] for k in Params.ARRAYS), meta["t"])
        self.best_obj, self.best_W, self.best_b = arrays["best_obj"], arrays["best_W"], arrays["best_b"]
        self.lowest, self.bad = arrays["lowest"], arrays["bad"]
        self.update_batch = meta["update_batch"]
        self.grid = make_grid(self.hp, len(self.best_obj))

    # --- the leader's set-up from the first num_point_for_scaler records
    def _check_labels(self, y: np.ndarray) -> None:
        check_labels(self.hp["predictor_type"], self.n_out, y, "train")

    def _setup(self, stats: ScalerStats) -> None:
        d = len(stats.sum_x)
        if self.hp["normalize_data"]:
            n = max(stats.n, 1)
            if stats.sparse:
                mean, scale = np.zeros(d), np.sqrt(stats.sum_x2 / n)
            else:
                mean = stats.sum_x / n
                scale = np.sqrt(np.maximum(stats.sum_x2 / n - mean**2, 0.0))
            scale[scale < 1e-8] = 1.0
        else:
            mean, scale = np.zeros(d), np.ones(d)
        label_mean, label_scale = 0.0, 1.0
        if self.normalize_label:
            label_mean = stats.sum_y / stats.n
            label_scale = float(np.sqrt(max(stats.sum_y2 / stats.n - label_mean**2, 0.0))) or 1.0
        self.scaling = Scaling(mean, scale, float(label_mean), float(label_scale), self._class_weights(stats), self.normalize_label)
        models = self.num_models(d)
        self.grid = make_grid(self.hp, models)
        width = models * self.n_out
        if self.hp["init_method"] == "uniform":
            W = self.rng.uniform(-self.hp["init_scale"], self.hp["init_scale"], (d, width))
        else:
            W = self.rng.normal(0, self.hp["init_sigma"], (d, width))
        b = np.full(width, self.hp["init_bias"] if self.hp["use_bias"] else 0.0)
        self.params = Params(W, b, np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b))
        self.best_obj, self.best_W, self.best_b = np.full(models, np.inf), W.copy(), b.copy()
        self.lowest, self.bad = np.full(models, np.inf), np.zeros(models, np.int64)
        if self.update_batch is None:
            self.update_batch = min(AUTO_BATCH, max(1, math.ceil(stats.n / MIN_UPDATES))) if stats.complete else AUTO_BATCH
            if stats.complete and self.update_batch < AUTO_BATCH:
                log.info("mini_batch_size=auto -> %d: the training data holds %d records, so an epoch makes %d updates",
                         self.update_batch, stats.n, math.ceil(stats.n / self.update_batch))
        log.info("linear-learner: %d model%s in parallel (%s)", models, "s" * (models > 1),
                 "; ".join(f"{opt}: {sl.stop - sl.start}" for opt, sl in self.grid.groups()))

    def _class_weights(self, stats: ScalerStats) -> np.ndarray:
        kind, counts = self.hp["predictor_type"], stats.label_counts
        if kind == "binary_classifier":
            mult = self.hp["positive_example_weight_mult"]
            pos = float(counts[1])
            if mult in ("auto", "balanced"):
                mult = (stats.n - pos) / pos if pos else 1.0
                log.info("positive_example_weight_mult=%s -> %.4f (negatives/positives in the first %d records)",
                         self.hp["positive_example_weight_mult"], mult, stats.n)
            return np.array([1.0, mult])
        if kind == "multiclass_classifier" and self.hp["balance_multiclass_weights"]:
            counts = counts[: self.n_out].astype(np.float64)
            return np.where(counts > 0, stats.n / (self.n_out * np.maximum(counts, 1)), 1.0)
        return np.ones(max(self.n_out, 2))

    # --- partition side
    def _columns(self, params: Params) -> dict:
        """Per-column (model x output) settings of the grid, made once per partition."""
        width = params.W.shape[1]
        if self._cols is None or len(self._cols["lr"]) != width:
            grid = make_grid(self.hp, width // self.n_out)
            c = self.n_out
            self._cols = {"lr": np.repeat(grid.lr, c), "wd": np.repeat(grid.wd, c), "l1": np.repeat(grid.l1, c),
                          "groups": [(opt, slice(sl.start * c, sl.stop * c)) for opt, sl in grid.groups()]}
        return self._cols

    def _scores(self, scaling: Scaling, W, b, X) -> np.ndarray:
        """(records, models, outputs) raw scores."""
        S = np.asarray(scaling.features(X) @ W) + b
        return S.reshape(len(S), -1, self.n_out)

    def _train(self, phase: str, scaling: Scaling, shared: Params, update_batch: int, with_loss: bool, steps: int | None,
               batches) -> Progress | None:
        """Updates from the leader's parameters: every update of the round's records (``train``), or the next
        ``steps`` of the updates the scaler's round holds (``warm``; all of them when ``steps`` is None)."""
        size = math.ceil(update_batch / self.count)  # this partition's part of an update
        if phase == "train":
            pieces = self._pieces(batches, size)  # streamed: a round may be the whole pass
        else:
            if self.pieces is None:  # the scaler's round: about num_point_for_scaler records, held for its updates
                self.pieces, self.cursor = list(self._pieces(batches, size)), 0
            start = self.cursor
            self.cursor = len(self.pieces) if steps is None else min(start + steps, len(self.pieces))
            pieces = self.pieces[start : self.cursor]
        p = shared.copy()
        cols = self._columns(p)
        records, loss, weight = 0, 0.0, 0.0
        for X, y in pieces:
            piece_loss, piece_weight = self._step(p, scaling, cols, X, y, with_loss)
            loss, weight, records = loss + piece_loss, weight + piece_weight, records + len(y)
        if records == 0:
            return None
        left = len(self.pieces) - self.cursor if phase == "warm" else 0
        return Progress(records, {k: getattr(p, k) * records for k in Params.ARRAYS}, p.t, loss, weight, left)

    def _pieces(self, batches, size: int):
        """(features, labels) of each update: the batches cut into ``size`` records."""
        for batch in batches:
            y = self._labels(batch)
            for lo in range(0, len(y), size):
                yield batch.X[lo : lo + size], y[lo : lo + size]

    def _labels(self, block: Block) -> np.ndarray:
        y = require_labels(block, "train")
        self._check_labels(y)
        return y

    def _step(self, p: Params, scaling: Scaling, cols: dict, X, y, with_loss: bool) -> tuple[np.ndarray | float, float]:
        """One mini-batch step of every model; returns the models' weighted loss sums (0 when not asked for) and the weight."""
        Xn = scaling.features(X)
        S = np.asarray(Xn @ p.W) + p.b
        n = len(y)
        value, G = loss_and_gradient(self.loss, S.reshape(n, -1, self.n_out), scaling.target(y), self.hp, with_loss)
        w = scaling.class_weights[y.astype(np.int64)] if self.hp["predictor_type"] != "regressor" else np.ones(n)
        total = w.sum()
        G = G.reshape(n, -1) * (w / total)[:, None]
        gW = np.asarray(Xn.T @ G) + cols["wd"] * p.W + cols["l1"] * np.sign(p.W)
        gb = G.sum(axis=0) * self.bias_lr + self.bias_wd * cols["wd"] * p.b if self.hp["use_bias"] else np.zeros_like(p.b)
        p.t += 1
        lr = cols["lr"]
        if self.hp["use_lr_scheduler"]:
            lr = np.maximum(lr * self.sched_factor ** (p.t // self.sched_step), self.sched_min)
        b1, b2 = self.hp["beta_1"], self.hp["beta_2"]
        for optimizer, sl in cols["groups"]:
            for param, g, m, v in ((p.W, gW, p.mW, p.vW), (p.b, gb, p.mb, p.vb)):
                param, g, m, v, rate = param[..., sl], g[..., sl], m[..., sl], v[..., sl], lr[sl]
                if optimizer == "adam":
                    m *= b1
                    m += (1 - b1) * g
                    v *= b2
                    v += (1 - b2) * g * g
                    param -= rate * (m / (1 - b1**p.t)) / (np.sqrt(v / (1 - b2**p.t)) + 1e-8)
                elif optimizer == "rmsprop":
                    v *= 0.9
                    v += 0.1 * g * g
                    param -= rate * g / (np.sqrt(v) + 1e-8)
                else:
                    m *= self.momentum
                    m -= rate * g
                    param += m
        return (w @ value if value is not None else 0.0), float(total)

    def _objective(self, scaling: Scaling, params: Params, batches) -> Losses | None:
        total, squares, n = 0.0, 0.0, 0
        for batch in batches:
            y = require_labels(batch, "validation")
            value, _ = loss_and_gradient(self.loss, self._scores(scaling, params.W, params.b, batch.X), scaling.target(y), self.hp)
            total, squares, n = total + value.sum(axis=0), squares + (value * value).sum(axis=0), n + len(y)
        return Losses(np.asarray(total), np.asarray(squares), n) if n else None

    def _score_histograms(self, scaling: Scaling, params: Params, batches) -> list | None:
        accs = None
        for batch in batches:
            y = require_labels(batch, "validation")
            prob = sigmoid(self._scores(scaling, params.W, params.b, batch.X)[:, :, 0])
            accs = accs or [M.BinaryAccumulator() for _ in range(prob.shape[1])]
            for m, acc in enumerate(accs):
                acc.add(y, prob[:, m])
        return accs
