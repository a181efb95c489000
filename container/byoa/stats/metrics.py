"""Metrics: names and regexes for hyperparameter tuning, streaming accumulators, log lines.

Accumulators keep memory bounded by their own size, never by the data size:
sums, confusion matrices and score histograms. Their
formulas take counts, so the same functions serve fixed arrays in tests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

CHANNELS = ("train", "validation", "test")
SCORE_BINS = 10000  # binary scores are histogrammed on [0, 1] in this many bins
EPS = 1e-15


@dataclass(frozen=True)
class MetricDef:
    """One metric as hyperparameter tuning sees it. ``pattern`` matches the name in a log line."""

    name: str
    kind: str  # "score" (higher is better) or "loss" (lower is better)
    pattern: str | None = None
    alias_of: str | None = None  # the same value under a built-in algorithm's name, printed too (``aliased``)
    channels: tuple = CHANNELS  # the channels it is printed for
    per_round: bool = False  # printed by xgboost after each round ("[3]\ttrain-auc:0.9\tvalidation-auc:0.8"), not by us

    def regex(self, channel: str) -> str:
        if self.per_round:  # a tab, which CloudWatch shows as #011, as the built-in XGBoost's definitions expect
            return rf".*\[[0-9]+\].*(?:\t|#011){channel}-{re.escape(self.name)}:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*"
        return rf"#quality_metric: host=\S+, {channel} {self.pattern or self.name} <{self.kind}>=(\S+)"


ACCURACY = ("binary_classification_accuracy", "multiclass_accuracy", "accuracy")  # a classifier result holds one of these


def scalars(result: dict) -> dict:
    """The numeric metrics of a result (what goes into metric lines), without its details (matrices, curves)."""
    return {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def aliased(result: dict, defs: list[MetricDef]) -> dict:
    """A result with each alias in ``defs`` added: users' tuning jobs written for a built-in algorithm find its names."""
    return {**result, **{d.name: result[d.alias_of] for d in defs if d.alias_of and d.alias_of in result}}


def line(host: str, channel: str, name: str, kind: str, value: float) -> str:
    return f"#quality_metric: host={host}, {channel} {name} <{kind}>={value:.6g}"


def beta_name(prefix: str, beta: float) -> str:
    return f"{prefix}_{beta:.3f}"


BINARY = [
    MetricDef("binary_classification_accuracy", "score"),
    MetricDef("precision", "score"),
    MetricDef("recall", "score"),
    MetricDef("binary_f_beta", "score", r"binary_f_\S+"),
    MetricDef("specificity", "score"),
    MetricDef("roc_auc_score", "score"),
    MetricDef("binary_classification_cross_entropy_objective", "loss"),
]
MULTICLASS = [
    MetricDef("multiclass_accuracy", "score"),
    MetricDef("macro_precision", "score"),
    MetricDef("macro_recall", "score"),
    MetricDef("macro_f_beta", "score", r"macro_f_\S+"),
    MetricDef("multiclass_top_k_accuracy", "score", r"multiclass_top_k_accuracy_\S+"),
    MetricDef("multiclass_cross_entropy_objective", "loss"),
]
REGRESSION = [MetricDef("r2", "score"), MetricDef("mse", "loss"), MetricDef("rmse", "loss"), MetricDef("absolute_loss", "loss")]
KMEANS = [MetricDef("msd", "loss"), MetricDef("ssd", "loss"), MetricDef("silhouette", "score")]
KNN_CLASSIFIER = [MetricDef("accuracy", "score")]
KNN_REGRESSOR = [MetricDef("r2", "score"), MetricDef("mse", "loss")]
PCA = [MetricDef("explained_variance_ratio", "score"), MetricDef("reconstruction_error", "loss")]
# Factorization machines: ours, plus the built-in's name for the cross-entropy (its other names are ours already:
# binary_classification_accuracy, binary_f_beta, rmse).
FM_BINARY = [*BINARY, MetricDef("binary_classification_cross_entropy", "loss", alias_of="binary_classification_cross_entropy_objective")]
FM_REGRESSION = REGRESSION
# XGBoost: the evaluation metrics xgboost itself prints each round, under the built-in XGBoost's names (its users'
# tuning jobs use them: validation:auc, validation:rmse, ...), then ours for the final model. Where a name is both,
# ours keeps the test channel only.
XGBOOST_ROUND = [MetricDef(name, kind, channels=("train", "validation"), per_round=True) for name, kind in (
    ("rmse", "loss"), ("mae", "loss"), ("logloss", "loss"), ("error", "loss"), ("auc", "score"), ("aucpr", "score"),
    ("merror", "loss"), ("mlogloss", "loss"), ("poisson-nloglik", "loss"))]
_ROUND_NAMES = {d.name for d in XGBOOST_ROUND}
XGBOOST = [*XGBOOST_ROUND, *(replace(d, channels=("test",)) if d.name in _ROUND_NAMES else d for d in BINARY + MULTICLASS + REGRESSION)]


# ----------------------------------------------------------------------------- formulas


def ratio(num, den):
    """num / den, 0 where den is 0; scalars or arrays alike."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def f_beta(precision, recall, beta: float):
    b2 = beta * beta
    return ratio((1 + b2) * precision * recall, b2 * precision + recall)


def binary_from_confusion(tp, fp, fn, tn, beta: float = 1.0) -> dict:
    """Counts may be scalars or arrays (one entry per threshold): the result has the same shape."""
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    m = {
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
        "precision": precision,
        "recall": recall,
        "f_beta": f_beta(precision, recall, beta),
        "specificity": ratio(tn, tn + fp),
    }
    return {k: float(v) if v.ndim == 0 else v for k, v in m.items()}


def multiclass_from_confusion(cm: np.ndarray, beta: float = 1.0) -> dict:
    """``cm[i, j]``: records of true class i predicted as j. Macro averages over classes present."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision, recall = ratio(tp, predicted), ratio(tp, actual)
    f = f_beta(precision, recall, beta)
    present = (actual > 0) | (predicted > 0)
    return {
        "accuracy": float(ratio(tp.sum(), cm.sum())),
        "precision": precision,
        "recall": recall,
        "f_beta": f,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f_beta": float(f[present].mean()) if present.any() else 0.0,
    }


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC from per-class score histograms (ties within a bin count half)."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if not n_pos or not n_neg:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (n_pos * n_neg))


# ----------------------------------------------------------------------------- accumulators


class BinaryAccumulator:
    """Labels 0/1 and positive-class probabilities; any threshold on a bin edge is exact."""

    def __init__(self):
        self.hist = np.zeros((2, SCORE_BINS), np.int64)
        self.log_loss = 0.0

    def add(self, y: np.ndarray, prob: np.ndarray) -> None:
        y = (y > 0.5).astype(np.int64)
        bins = np.clip((prob * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1)
        self.hist += np.bincount(y * SCORE_BINS + bins, minlength=2 * SCORE_BINS).reshape(2, SCORE_BINS)
        p = np.clip(prob.astype(np.float64), EPS, 1 - EPS)
        self.log_loss -= float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))

    @property
    def count(self) -> int:
        return int(self.hist.sum())

    def merge(self, other: "BinaryAccumulator") -> None:
        """Add another host's counts (multi-host evaluation)."""
        self.hist += other.hist
        self.log_loss += other.log_loss

    def confusion(self, threshold: float) -> tuple[int, int, int, int]:
        edge = int(round(threshold * SCORE_BINS))
        pos, neg = self.hist[1], self.hist[0]
        tp, fp = int(pos[edge:].sum()), int(neg[edge:].sum())
        return tp, fp, int(pos.sum()) - tp, int(neg.sum()) - fp

    def curve(self) -> dict:
        """Confusion counts at every bin edge: thresholds[i] = i / SCORE_BINS."""
        pos, neg = self.hist[1], self.hist[0]
        tp = np.cumsum(pos[::-1])[::-1]
        fp = np.cumsum(neg[::-1])[::-1]
        return {"thresholds": np.arange(SCORE_BINS) / SCORE_BINS, "tp": tp, "fp": fp, "fn": pos.sum() - tp, "tn": neg.sum() - fp}

    def curve_points(self, step: int = 100) -> dict:
        """Precision, recall and false-positive rate every ``step`` bins, for reports: from threshold 0
        (everything positive) to the last bin, then the end point where nothing is positive."""
        c = self.curve()
        pick = np.unique(np.append(np.arange(0, SCORE_BINS, step), SCORE_BINS - 1))
        m = binary_from_confusion(c["tp"][pick], c["fp"][pick], c["fn"][pick], c["tn"][pick])
        return {
            "threshold": [*c["thresholds"][pick].round(6).tolist(), 1.0],
            "precision": [*m["precision"].round(6).tolist(), 1.0],
            "recall": [*m["recall"].round(6).tolist(), 0.0],
            "false_positive_rate": [*(1.0 - m["specificity"]).round(6).tolist(), 0.0],
        }

    def result(self, threshold: float, beta: float, positive_class: float = 1.0, negative_class: float = 0.0) -> dict:
        tp, fp, fn, tn = self.confusion(threshold)
        m = binary_from_confusion(tp, fp, fn, tn, beta)
        return {
            "binary_classification_accuracy": m["accuracy"],
            "precision": m["precision"],
            "recall": m["recall"],
            beta_name("binary_f", beta): m["f_beta"],
            "specificity": m["specificity"],
            "roc_auc_score": auc_from_histograms(self.hist[1], self.hist[0]),
            "binary_classification_cross_entropy_objective": self.log_loss / max(self.count, 1),
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "threshold": threshold,
                          "positive_class": positive_class, "negative_class": negative_class},
            "curve": self.curve_points(),
        }


def class_index(classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each label in the sorted ``classes``; ``len(classes)`` ("other") for labels not in it."""
    pos = np.clip(np.searchsorted(classes, labels), 0, len(classes) - 1)
    return np.where(classes[pos] == labels, pos, len(classes))


class MulticlassAccumulator:
    def __init__(self, n_classes: int, top_k: int):
        self.cm = np.zeros((n_classes, n_classes), np.int64)
        self.top_k = min(top_k, n_classes)
        self.top_hits = 0
        self.log_loss = 0.0

    def add(self, y: np.ndarray, probs: np.ndarray) -> None:
        y = y.astype(np.int64)
        np.add.at(self.cm, (y, probs.argmax(axis=1)), 1)
        top = np.argpartition(-probs, self.top_k - 1, axis=1)[:, : self.top_k] if self.top_k < probs.shape[1] else None
        self.top_hits += len(y) if top is None else int((top == y[:, None]).any(axis=1).sum())
        self.log_loss -= float(np.log(np.clip(probs[np.arange(len(y)), y].astype(np.float64), EPS, 1)).sum())

    def merge(self, other: "MulticlassAccumulator") -> None:
        self.cm += other.cm
        self.top_hits += other.top_hits
        self.log_loss += other.log_loss

    def result(self, beta: float, classes: list | None = None) -> dict:
        """``classes``: the label of each row of the confusion matrix (default 0..n-1)."""
        m = multiclass_from_confusion(self.cm, beta)
        n = max(int(self.cm.sum()), 1)
        names = list(range(len(self.cm))) if classes is None else list(classes)
        return {
            "multiclass_accuracy": m["accuracy"],
            "macro_precision": m["macro_precision"],
            "macro_recall": m["macro_recall"],
            beta_name("macro_f", beta): m["macro_f_beta"],
            f"multiclass_top_k_accuracy_{self.top_k}": self.top_hits / n,
            "multiclass_cross_entropy_objective": self.log_loss / n,
            "confusion_matrix": self.cm.tolist(),
            "classes": names,
            "per_class": {
                "precision": m["precision"].round(6).tolist(),
                "recall": m["recall"].round(6).tolist(),
                "f_beta": m["f_beta"].round(6).tolist(),
                "support": self.cm.sum(axis=1).tolist(),
            },
        }


class RegressionAccumulator:
    def __init__(self):
        self.n = 0
        self.sq = self.abs = self.sy = self.syy = 0.0

    def add(self, y: np.ndarray, pred: np.ndarray) -> None:
        y = y.astype(np.float64)
        err = pred.astype(np.float64) - y
        self.n += len(y)
        self.sq += float(err @ err)
        self.abs += float(np.abs(err).sum())
        self.sy += float(y.sum())
        self.syy += float(y @ y)

    def merge(self, other: "RegressionAccumulator") -> None:
        self.n += other.n
        self.sq += other.sq
        self.abs += other.abs
        self.sy += other.sy
        self.syy += other.syy

    def result(self) -> dict:
        n = max(self.n, 1)
        mse = self.sq / n
        var = self.syy / n - (self.sy / n) ** 2
        return {"mse": mse, "rmse": math.sqrt(mse), "absolute_loss": self.abs / n, "r2": 1 - mse / var if var > 0 else 0.0}
