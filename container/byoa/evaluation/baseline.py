"""The simplest heuristic for each task, scored on the same data as the model.

Majority class (and the class prior as a probability) for classifiers, the
training mean for regressors, one cluster at the training mean for k-means and
PCA (no components). Only counts and sums are kept, so a baseline costs no
extra pass: the statistics ride along the evaluation pass.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..stats.metrics import ACCURACY, EPS, ratio

CLASSIFICATION = ("binary", "multiclass")


class BaselineStats:
    """Per-role sums: label counts (classifiers), label moments (regressors), feature moments (unsupervised)."""

    def __init__(self, task: str):
        self.task = task
        self.n = 0
        self.classes: dict[float, int] = {}
        self.sy = self.syy = 0.0
        self.sx: np.ndarray | None = None
        self.sxx = 0.0

    def add(self, block) -> None:
        self.n += len(block)
        y = block.y
        if self.task in CLASSIFICATION and y is not None:
            values, counts = np.unique(y[~np.isnan(y)], return_counts=True)
            for v, c in zip(values.tolist(), counts.tolist()):
                self.classes[v] = self.classes.get(v, 0) + c
        elif self.task == "regression" and y is not None:
            y = y.astype(np.float64)
            self.sy += float(y.sum())
            self.syy += float(y @ y)
        elif self.task in ("clustering", "projection"):
            X = block.X
            sx = np.asarray(X.sum(axis=0), dtype=np.float64).ravel()
            self.sx = sx if self.sx is None else self.sx + sx
            self.sxx += float(X.multiply(X).sum()) if sp.issparse(X) else float(np.einsum("ij,ij->", X, X, dtype=np.float64))

    def merge(self, other: "BaselineStats") -> None:
        """Add another host's sums (multi-host evaluation)."""
        self.n += other.n
        for value, count in other.classes.items():
            self.classes[value] = self.classes.get(value, 0) + count
        self.sy += other.sy
        self.syy += other.syy
        if other.sx is not None:
            self.sx = other.sx.copy() if self.sx is None else self.sx + other.sx
        self.sxx += other.sxx

    def msd_to(self, centre: np.ndarray) -> float:
        """Mean squared distance of these rows to ``centre``."""
        if not self.n or self.sx is None:
            return 0.0
        return max(self.sxx - 2.0 * float(centre @ self.sx) + self.n * float(centre @ centre), 0.0) / self.n


def baseline(train: BaselineStats, other: BaselineStats, positive_class: float | None = None) -> dict:
    """The baseline's figures on ``other``, using what it learned from ``train``."""
    task = train.task
    if task in CLASSIFICATION:
        if not train.classes or not other.n:
            return {}
        majority = max(sorted(train.classes), key=lambda c: train.classes[c])
        out = {"heuristic": f"always predict the majority class {_label(majority)}", "accuracy": other.classes.get(majority, 0) / other.n}
        if task == "binary" and positive_class is not None:
            prior = min(max(train.classes.get(positive_class, 0) / train.n, EPS), 1 - EPS)
            pos = other.classes.get(positive_class, 0)
            out["log_loss"] = -(pos * math.log(prior) + (other.n - pos) * math.log(1 - prior)) / other.n
            out["heuristic"] += f"; probability {prior:.4g} (the class prior) for the positive class"
        return out
    if task == "regression":
        if not train.n or not other.n:
            return {}
        mean = train.sy / train.n
        mse = max(other.syy / other.n - 2 * mean * other.sy / other.n + mean * mean, 0.0)
        var = other.syy / other.n - (other.sy / other.n) ** 2
        return {"heuristic": f"always predict the training mean {mean:.6g}", "mse": mse, "r2": 1 - mse / var if var > 0 else 0.0}
    if train.sx is None or not other.n:
        return {}
    msd = other.msd_to(train.sx / train.n)
    if task == "clustering":
        return {"heuristic": "one cluster at the training mean", "msd": msd}
    return {"heuristic": "no components (every record reconstructed as the training mean)", "reconstruction_error": msd,
            "explained_variance_ratio": 0.0}


def _label(value: float) -> str:
    return f"{value:g}"


# How each task's model is compared with its baseline: (candidate metric names in the model's result, baseline key, kind).
COMPARISON = {
    "binary": (ACCURACY, "accuracy", "score"),
    "multiclass": (ACCURACY, "accuracy", "score"),
    "regression": (("mse",), "mse", "loss"),
    "clustering": (("msd",), "msd", "loss"),
    "projection": (("reconstruction_error",), "reconstruction_error", "loss"),
}


def lift(task: str, result: dict, base: dict) -> dict:
    """Model vs baseline on one channel: the figures, the lift, and one sentence."""
    names, key, kind = COMPARISON[task]
    name = next((n for n in names if n in result), None)
    if name is None or key not in base:
        return {}
    model, ref = float(result[name]), float(base[key])
    if kind == "score":
        gain = model - ref
        beats = gain > 0
        sentence = f"{name} {model:.4g} vs baseline {ref:.4g} ({gain:+.4g})"
    else:
        gain = float(1.0 - ratio(model, ref)) if ref > 0 else 0.0
        beats = model < ref
        sentence = f"{name} {model:.4g} vs baseline {ref:.4g} ({100 * gain:.1f} % lower)"
    return {"metric": name, "model": model, "baseline": ref, "lift": gain, "kind": kind, "beats_baseline": bool(beats),
            "heuristic": base["heuristic"], "summary": sentence}
