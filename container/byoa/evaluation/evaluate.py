"""Scoring a fitted model on every role in one pass, and k-fold cross-validation.

One pass over the training channel serves all of its roles (each block is cut
by role), plus one pass over each of the 'validation' and 'test' channels.
Baseline statistics ride along the same pass.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..algorithms.base import EVAL_BATCH, Context
from ..data.blocks import rebatch
from ..errors import TrainingStopped
from .baseline import BaselineStats, baseline
from ..stats.metrics import ACCURACY
from .plan import Plan
from ..stats.split import IGNORE, ROLE_NAMES, TEST, TRAIN, VALIDATION

log = logging.getLogger("byoa.train")


@dataclass
class Scores:
    evaluators: dict = field(default_factory=dict)  # role -> Evaluator
    stats: dict = field(default_factory=dict)  # role -> BaselineStats

    def baseline(self, role: str, positive_class=None) -> dict:
        if "train" not in self.stats or role not in self.stats:
            return {}
        return baseline(self.stats["train"], self.stats[role], positive_class)

    def sizes(self) -> dict:
        return {role: s.n for role, s in self.stats.items()}


def evaluate(model, plan: Plan, scored=(TRAIN, VALIDATION, TEST)) -> Scores:
    """Feed every record to its role's evaluator (roles not in ``scored`` get baseline statistics only)."""
    out = Scores()

    def sink(role: int, channel: str, block) -> None:
        name = ROLE_NAMES[role]
        if name not in out.stats:
            out.stats[name] = BaselineStats(model.task)
            if role in scored:
                out.evaluators[name] = model.evaluator()
                out.evaluators[name].channel = channel
        out.stats[name].add(block)
        if name in out.evaluators:
            out.evaluators[name].add(block)

    first = 0
    for block in rebatch(plan.source.next_pass(), EVAL_BATCH):
        if plan.split is None:
            sink(TRAIN, plan.source.name, block)
        else:
            roles = plan.split.roles(block, first)
            for role in np.unique(roles):
                if role != IGNORE:
                    mask = roles == role
                    sink(int(role), plan.source.name, block if mask.all() else block.take(mask))
        first += len(block)
    for role, channel in ((VALIDATION, plan.validation), (TEST, plan.test)):
        if channel is not None:
            for block in rebatch(channel.next_pass(), EVAL_BATCH):
                sink(role, channel.name, block)
    return out


def headline(task: str, result: dict, base: dict) -> tuple[str, float]:
    """The one number per task that k-fold compares across folds (scale-free where the task allows)."""
    if task in ("binary", "multiclass"):
        accuracy = next(result[k] for k in ACCURACY if k in result)
        return "error", 1.0 - accuracy
    if task == "regression":
        return "r2", result["r2"]
    if task == "clustering":
        return "msd / one-cluster msd", result["msd"] / base["msd"] if base.get("msd") else float("nan")
    return "explained variance ratio", result["explained_variance_ratio"]


def cross_validate(algo_cls, hp: dict, plan: Plan, host: str) -> dict:
    """k-fold on the non-test part of the plan; a fold that cannot be fitted is reported, not fatal."""
    k, tolerance = hp["k_fold"], hp["k_fold_tolerance"]
    forward = plan.strategy == "sequential"
    quiet = Context(host=host, checkpoints=None, emit=lambda line: log.debug("k-fold: %s", line))
    folds = []
    for i in range(k):
        started = time.monotonic()
        fold_plan = plan.fold(i, k)
        entry: dict = {"fold": i + 1}
        try:
            model = algo_cls(hp, quiet).fit(*fold_plan.fit_inputs())
            scores = evaluate(model, fold_plan, scored=(VALIDATION, TEST))
            model.finalize(scores.evaluators)
            if "test" not in scores.evaluators:
                raise ValueError("its held-out block has no records")
            result = scores.evaluators["test"].result()
            entry["metric"], entry["value"] = headline(model.task, result, scores.baseline("test"))
            entry["sizes"] = scores.sizes()
        except TrainingStopped:
            raise
        except Exception as exc:  # a fold that cannot be fitted (one class, too few records) is a result, not a crash
            entry["failed"] = f"{type(exc).__name__}: {exc}"
        entry["seconds"] = round(time.monotonic() - started, 3)
        folds.append(entry)
        log.info("k-fold %d/%d: %s", i + 1, k, f"{entry['metric']} {entry['value']:.4f}" if "value" in entry else f"failed ({entry['failed']})")
    return {"k": k, "scheme": "forward chaining (time series)" if forward else "shuffled folds" if plan.strategy == "random" else "stratified folds",
            "tolerance": tolerance, "folds": folds, **verdict(folds, tolerance)}


def verdict(folds: list[dict], tolerance: float) -> dict:
    values = [f["value"] for f in folds if "value" in f and math.isfinite(f["value"])]
    failed = [f for f in folds if "failed" in f]
    if len(values) < 2:
        return {"verdict": f"not available: only {len(values)} of {len(folds)} folds could be scored"}
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    metric = next(f["metric"] for f in folds if "value" in f)
    out = {"metric": metric, "mean": mean, "std": std}
    if failed:
        f = failed[0]
        out["verdict"] = f"inconsistent: fold {f['fold']} could not be fitted ({f['failed']}); the data may be ordered or too small"
        return out
    worst = max((f for f in folds if "value" in f), key=lambda f: abs(f["value"] - mean))
    if abs(worst["value"] - mean) <= tolerance:
        out["verdict"] = "consistent"
    else:
        out["verdict"] = (f"inconsistent: fold {worst['fold']} {metric} {worst['value']:.2f} vs mean {mean:.2f}; "
                          "the data may be ordered or too small")
    return out
