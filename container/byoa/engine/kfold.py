"""k-fold cross-validation on the non-test part of the plan (File mode, one host), each fold fitted by the executor."""

from __future__ import annotations

import logging
import time

from ..algorithms.base import QUIET
from ..errors import TrainingStopped
from ..evaluation.evaluate import headline, verdict
from ..evaluation.plan import Plan
from .executor import Executor
from .partition import Partition

log = logging.getLogger("byoa.train")


def cross_validate(algo_cls, hp: dict, plan: Plan, channels: dict) -> dict:
    """k folds; a fold that cannot be fitted is reported, not fatal."""
    k, tolerance = hp["k_fold"], hp["k_fold_tolerance"]
    forward = plan.strategy == "sequential"
    folds = []
    for i in range(k):
        started = time.monotonic()
        entry: dict = {"fold": i + 1}
        try:
            executor = Executor(Partition(algo_cls.name, hp, plan.fold(i, k), channels), ctx=QUIET)
            model = executor.fit(algo_cls(hp, QUIET))
            scores = executor.evaluate(model, scored=("validation", "test"))
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
    scheme = "forward chaining (time series)" if forward else "shuffled folds" if plan.strategy == "random" else "stratified folds"
    return {"k": k, "scheme": scheme, "tolerance": tolerance, "folds": folds, **verdict(folds, tolerance)}
