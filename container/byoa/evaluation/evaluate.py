"""Scoring a fitted model on every role, and the k-fold headline and verdict.

Each host scores what it kept of its records (bounded samples of the training channel's
roles, the 'validation' channel) and streams its share of the 'test' channel once.
``Scores`` of several hosts merge into the scores of all their records. Baseline
statistics ride along the same records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..data.blocks import Block, fit_width, rebatch
from ..errors import DataError
from ..stats.metrics import ACCURACY, CHANNELS
from .baseline import BaselineStats, baseline

EVAL_BATCH = 10000


@dataclass
class Scores:
    evaluators: dict = field(default_factory=dict)  # role -> Evaluator
    stats: dict = field(default_factory=dict)  # role -> BaselineStats of the records scored
    seen: dict = field(default_factory=dict)  # role -> records in the role (the scored ones may be a sample of them)

    def baseline(self, role: str, positive_class=None) -> dict:
        if "train" not in self.stats or role not in self.stats:
            return {}
        return baseline(self.stats["train"], self.stats[role], positive_class)

    def sizes(self) -> dict:
        return {role: self.seen.get(role, s.n) for role, s in self.stats.items()}

    def scored(self) -> dict:
        return {role: s.n for role, s in self.stats.items()}

    def merge(self, other: "Scores") -> None:
        """Add another host's scores: evaluators, baseline sums and counts, role by role."""
        for role in other.stats:
            if role in self.stats:
                self.stats[role].merge(other.stats[role])
                if role in self.evaluators:
                    self.evaluators[role].merge(other.evaluators[role])
            else:
                self.stats[role] = other.stats[role]
                if role in other.evaluators:
                    self.evaluators[role] = other.evaluators[role]
            self.seen[role] = self.seen.get(role, 0) + other.seen.get(role, 0)
        order = [r for r in CHANNELS if r in self.stats]
        self.stats = {r: self.stats[r] for r in order}
        self.evaluators = {r: self.evaluators[r] for r in order if r in self.evaluators}


def evaluate(model, records: dict[str, tuple[str, Iterable[Block], int | None]], scored=CHANNELS) -> Scores:
    """``records``: role -> (channel name, blocks, records in the role or None to count them).
    Roles not in ``scored`` get baseline statistics only."""
    out = Scores()
    for role in CHANNELS:
        if role not in records:
            continue
        channel, blocks, seen = records[role]
        stats = BaselineStats(model.task)
        ev = None
        if role in scored:
            ev = model.evaluator(role)
            ev.channel = channel
        first = 0
        for block in rebatch(blocks, EVAL_BATCH):
            block = _fitted(block, model.n_features, channel, first)
            first += len(block)
            stats.add(block)
            if ev is not None:
                ev.add(block)
        if stats.n == 0 and not seen:
            continue
        out.stats[role] = stats
        out.seen[role] = stats.n if seen is None else seen
        if ev is not None:
            out.evaluators[role] = ev
    return out


def _fitted(block: Block, width: int, channel: str, first: int) -> Block:
    """The records as wide as the model (text/libsvm records carry no width); else one line naming the record."""
    try:
        return Block(fit_width(block.X, width, first), block.y)
    except DataError as exc:
        raise DataError(f"channel '{channel}': {exc}") from None


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
