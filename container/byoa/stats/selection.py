"""Cost-aware choice of a binary classifier's decision threshold, on validation data only.

The test figures stay honest because the test data never influences the
threshold. Criteria are the built-in linear learner's.
"""

from __future__ import annotations

import logging

import numpy as np

from ..hyperparameters import Options, Param, Real
from . import metrics as M

log = logging.getLogger("byoa.train")

CRITERIA = ("accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision", "loss_function")

PARAMS = [
    Param("binary_classifier_model_selection_criteria", Options(CRITERIA), "accuracy",
          "how the decision threshold is chosen on validation data (binary classifiers)"),
    Param("target_recall", Real(0, 1), 0.8, "for precision_at_target_recall"),
    Param("target_precision", Real(0, 1), 0.8, "for recall_at_target_precision"),
    Param("f_beta", Real(0, low_open=True), 1.0, "beta of the F-beta metric and criterion"),
]
# A model's stored choice (its manifest's meta): what ``BinaryThreshold`` models read back.
SELECTION_META = {"criterion": Options(CRITERIA), "target_recall": Real(0, 1), "target_precision": Real(0, 1),
                  "f_beta": Real(0, low_open=True), "threshold": Real(0, 1)}


def choose_threshold(acc: M.BinaryAccumulator, criterion: str, targets: dict, beta: float, warn: bool = True) -> tuple[float, dict]:
    """The threshold that best meets ``criterion`` on ``acc``'s data, and what it achieves there."""
    if criterion == "loss_function":
        return 0.5, {"criterion": criterion, "threshold": 0.5, "note": "loss_function keeps the probability threshold 0.5"}
    c = acc.curve()
    m = M.binary_from_confusion(c["tp"], c["fp"], c["fn"], c["tn"], beta)  # at every candidate threshold
    precision, recall, accuracy = m["precision"], m["recall"], m["accuracy"]
    note = ""
    if criterion == "accuracy":
        value = accuracy
    elif criterion == "f_beta":
        value = m["f_beta"]
    elif criterion == "precision_at_target_recall":
        value = np.where(recall >= targets["target_recall"], precision, -1.0)  # recall is 1 at threshold 0: never empty
    else:  # recall_at_target_precision
        target = targets["target_precision"]
        ok = precision >= target
        value = np.where(ok, recall + 1e-9 * precision, -1.0) if ok.any() else precision
        if not ok.any():
            note = f"target precision {target} is not reachable on validation data; best achievable precision {precision.max():.4f}"
            if warn:
                log.warning("recall_at_target_precision: %s", note)
    if criterion in ("accuracy", "f_beta"):
        i, error = _nearest_half_within_one_error(value, c["thresholds"], acc.count)
    else:
        i, error = _middle_of_best(value), None
    info = {
        "criterion": criterion,
        "threshold": float(c["thresholds"][i]),
        "validation_precision": float(precision[i]),
        "validation_recall": float(recall[i]),
        "validation_accuracy": float(accuracy[i]),
        "validation_f_beta": float(m["f_beta"][i]),
    }
    if error is not None:
        info["standard_error"] = error
    if criterion in ("precision_at_target_recall", "recall_at_target_precision"):
        key = criterion.split("_at_")[1]
        info[key] = targets[key]
        info["target_reached"] = not note
    if note:
        info["note"] = note
    return info["threshold"], info


def criterion_score(acc: M.BinaryAccumulator, criterion: str, targets: dict, beta: float) -> tuple:
    """How well a model meets ``criterion`` on ``acc``'s data at its best threshold: larger is better (compare as tuples).
    A target that cannot be reached ranks below every model that reaches it."""
    _, info = choose_threshold(acc, criterion, targets, beta, warn=False)
    if criterion == "accuracy":
        return (info["validation_accuracy"],)
    if criterion == "f_beta":
        return (info["validation_f_beta"],)
    if criterion == "precision_at_target_recall":
        return (float(info["target_reached"]), info["validation_precision"])
    return (float(info["target_reached"]), info["validation_recall"] if info["target_reached"] else info["validation_precision"])


def _nearest_half_within_one_error(value: np.ndarray, thresholds: np.ndarray, n: int) -> tuple[int, float]:
    """The threshold nearest 0.5 (a calibrated model's own) among those whose figure is within one standard error
    of the best: a few hundred validation records cannot tell closer thresholds apart, and the best of them
    by chance would fit their noise. Returns the index and the error."""
    best = float(value.max())
    error = float(np.sqrt(max(best * (1 - best), 0.0) / max(n, 1)))
    candidates = np.flatnonzero(value >= best - error)
    return int(candidates[np.argmin(np.abs(thresholds[candidates] - 0.5))]), error


def _middle_of_best(value: np.ndarray) -> int:
    """The middle of the first run of thresholds that all reach the best value.

    Between two neighbouring validation scores every threshold scores the same; the
    middle of that run leaves the most margin on both sides for unseen data.
    """
    first = int(np.argmax(value))
    run = np.flatnonzero(value[first:] != value[first])
    last = first + (int(run[0]) - 1 if len(run) else len(value) - 1 - first)
    return (first + last) // 2


class BinaryThreshold:
    """Mixin for models with a positive-class probability: ``finalize`` picks the threshold."""

    threshold: float = 0.5
    selection: dict

    def finalize(self, evaluators) -> None:
        if not self.is_binary:
            return
        acc = getattr(evaluators.get("validation"), "acc", None)
        if acc is None or not acc.count:
            self.selection = {"criterion": self.criterion, "threshold": self.threshold, "note": "no validation data: threshold left at 0.5"}
            log.info("no validation records: the decision threshold stays at %.2f", self.threshold)
            return
        self.threshold, self.selection = choose_threshold(acc, self.criterion, self.targets, self.beta)
        log.info("decision threshold %.4f chosen on validation data by %s%s", self.threshold, self.criterion,
                 f" ({self.selection['note']})" if self.selection.get("note") else "")
