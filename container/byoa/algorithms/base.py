"""What every algorithm provides: a Model, and its training written as a reduction over partitions.

A partition is one host's share of the training data; a one-host job is a cluster of one
partition. The executor (``engine``) runs every algorithm the same way, in epochs of rounds:

* ``round()`` names the phase a round starts with and how many local mini-batches each
  partition takes for it (None: the rest of its pass);
* each partition computes ``partial(phase, shared, batches)`` from its own records, where
  ``shared`` is the leader's ``broadcast(phase)``; partials fold with ``merge`` (associative:
  any grouping gives the same result, so hosts may be merged in any tree);
* the leader's ``update(phase, merged)`` changes its state and names the next phase on the
  same records, or None to end the round; a round where no partition had records ends the epoch;
* ``end_epoch(epoch, validate)`` may score the validation records and stop early;
  ``finish(validate)`` builds the model.

``validate(phase, shared)`` runs ``partial`` over every partition's validation records and
returns the merged result (None if there are none). The leader and each partition hold
separate instances: partition-side attributes are that partition's memory between calls,
and ``partial`` must not change ``shared`` (on one host it is the leader's own object).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

import numpy as np

from ..data import limits
from ..data.blocks import Block
from ..data.channels import FeatureCheck
from ..data.inputs import ChannelRule
from ..data.limits import MAX_FEATURES
from ..errors import DataError
from ..hyperparameters import Integer, Param
from ..model_io import ArraySpec, check_arrays, check_meta
from ..stats import split
from ..stats import metrics as M
from ..stats.metrics import MetricDef

log = logging.getLogger("byoa.train")

SEED = Param("seed", Integer(0, 2**32 - 1), 0, "drives every random choice (and the data split): the same job gives the same model")
COMMON = [*split.PARAMS, SEED]  # every algorithm's evaluation settings
SYNC_STEPS = 64  # several hosts, local steps (``LocalSteps``): most local mini-batches between averages
WHOLE_PASS = None  # ``round()``'s batch count: the rest of the pass


def test_channel(records: str = "labelled records") -> ChannelRule:
    """The test role, the same for every algorithm: given, or held out of train by the split."""
    return ChannelRule("test", f"{records} for the final metrics; without it, a held-out share of train (test_fraction)")


@dataclass
class Context:
    """What an algorithm may use from the job: the host name and where its lines go."""

    host: str = "algo-1"
    emit: Callable[[str], None] = print
    address: str | None = None  # several hosts: this (the first) host's address, as the others reach it

    def progress(self, done: int, total: int) -> None:
        self.emit(f"#progress_metric: host={self.host}, completed {100.0 * done / total:.0f} % of epochs")

    def throughput(self, channel: str, records: int, seconds: float, host: str | None = None) -> None:
        rate = records / seconds if seconds > 0 else float("inf")
        self.emit(f"#throughput_metric: host={host or self.host}, {channel} throughput={rate:.2f} records/second")


QUIET = Context(emit=lambda line: None)  # partitions and k-fold folds: the job's metric lines come from the leader


class Model:
    """A trained model: predicts, evaluates, and round-trips through plain arrays."""

    name: ClassVar[str]
    metric_defs: ClassVar[list[MetricDef]]
    task: str  # binary, multiclass, regression, clustering or projection: how it is evaluated
    positive_class: float | None = None  # binary classifiers: the label counted as positive
    integer_outputs: tuple = ()  # outputs written as integers in JSON (as the built-in algorithm does)
    csv_outputs: tuple | None = None  # the outputs a CSV answer carries (None: all), where the built-in's CSV is bare
    verbose_outputs: tuple = ()  # outputs sent only when the client asks with verbose=true
    n_features: int  # the width of the records it predicts on

    def predict(self, X) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def warm_up(self) -> None:
        """Prepare, in a serving worker's background thread, what the first big request would otherwise wait for."""

    def evaluator(self, role: str = "test") -> "Evaluator":
        """A fresh evaluator for the records of ``role`` (train, validation or test)."""
        raise NotImplementedError

    def finalize(self, evaluators: dict[str, "Evaluator"]) -> None:
        """Choices made on evaluation data after fitting (e.g. a decision threshold)."""

    def to_artifacts(self) -> tuple[dict[str, np.ndarray], dict]:
        raise NotImplementedError

    @classmethod
    def from_artifacts(cls, arrays: dict, meta: dict) -> "Model":
        raise NotImplementedError

    # The artifacts' structure, declared (``model_io.check_arrays`` / ``check_meta``) and checked before a model is
    # built from them: the checksum only proves the arrays match the manifest, whoever wrote them.
    artifact_arrays: ClassVar[dict[str, ArraySpec]]
    artifact_meta: ClassVar[dict] = {}  # meta key -> hyperparameter constraint; the parsed value replaces the stored one

    @classmethod
    def checked(cls, arrays: dict, meta: dict, owner: str) -> "Model":
        """``from_artifacts`` once the arrays and meta are as declared and ``check`` passes; else ModelFormatError."""
        dims = check_arrays(cls.artifact_arrays, arrays, owner)
        meta = {**meta, **check_meta(cls.artifact_meta, meta, owner)}
        cls.check(arrays, meta, dims, owner)
        return cls.from_artifacts(arrays, meta)

    @classmethod
    def check(cls, arrays: dict, meta: dict, dims: dict, owner: str) -> None:
        """Structure beyond names, dtypes and shapes (a tree is a tree, scales are positive)."""

    def kind_of(self, metric: str) -> str:
        for d in self.metric_defs:
            if re.fullmatch(d.pattern or re.escape(d.name), metric):
                return d.kind
        raise KeyError(metric)


class Evaluator:
    channel = "train"  # named in error messages; set to the channel being evaluated

    def add(self, block: Block) -> None:
        raise NotImplementedError

    def result(self) -> dict:
        """Scalar metrics by name (the names of CONTRACT.md), plus non-scalar details."""
        raise NotImplementedError

    def merge(self, other: "Evaluator") -> None:
        """Add another host's evaluator of the same role."""
        self.acc.merge(other.acc)


class ScoreEvaluator(Evaluator):
    """Scores a model whose ``predict`` answers ``score`` (the positive class's probability, the class probabilities,
    or the value) with its task's accumulator, after the model's own ``check_labels(y, channel)``."""

    def __init__(self, model: Model, n_classes: int = 0, top_k: int = 3, beta: float = 1.0):
        self.model, self.beta = model, beta
        if model.task == "binary":
            self.acc = M.BinaryAccumulator()
        elif model.task == "multiclass":
            self.acc = M.MulticlassAccumulator(n_classes, top_k)
        else:
            self.acc = M.RegressionAccumulator()

    def add(self, block: Block) -> None:
        y = require_labels(block, self.channel)
        self.model.check_labels(y, self.channel)
        self.acc.add(y, self.model.predict(block.X)["score"])

    def result(self) -> dict:
        if self.model.task == "binary":
            return self.acc.result(self.model.threshold, self.beta)
        if self.model.task == "multiclass":
            return self.acc.result(self.beta)
        return self.acc.result()


class Algorithm:
    """One algorithm: its hyperparameters (``params``, the single declaration), its metrics, its model,
    and its training as a reduction (see the module docstring)."""

    name: ClassVar[str]
    params: ClassVar[list[Param]]
    metric_defs: ClassVar[list[MetricDef]]
    model_class: ClassVar[type]
    channels: ClassVar[list[ChannelRule]]  # what it reads, by role
    # the metric tuning optimizes by default, per task ("binary", "multiclass", ...): "<channel>:<metric>". "validation:"
    # where every job has validation records (a threshold or model is chosen on them), else "test:" as the built-ins
    objectives: ClassVar[dict[str, str]] = {}
    example: ClassVar[dict]  # hyperparameters for the embedded iris data (local_test/): a listing's validation job
    in_memory: ClassVar[bool] = False  # reads all training records into memory in one pass
    checkpoints: ClassVar[bool] = False  # its leader state survives a restart (``state``/``load_state``)
    # its later phases run on every partition, records or not: a collective of its own (xgboost's) needs every rank
    collective: ClassVar[bool] = False
    train_sample_limit: ClassVar[int | None] = None  # most training records scored for train-role metrics
    deals_training: ClassVar[bool] = True  # FullyReplicated: each host trains on its dealt share (False: on all it holds)

    @classmethod
    def supervision(cls, hp: dict) -> str:
        """classifier, regressor or unsupervised: what a split may be stratified on."""
        kind = hp.get("predictor_type", "")
        return "unsupervised" if not kind else ("regressor" if kind == "regressor" else "classifier")

    @classmethod
    def configure(cls, hp: dict, platform: dict) -> dict:
        """The hyperparameters to train with, given the ones the platform added (``_tuning_objective_metric``, ...)."""
        return hp

    # what grows with the records' width, for the message when it is too wide
    width_costs: ClassVar[str] = "the model and its work arrays"

    @classmethod
    def working_bytes(cls, hp: dict, n_features: int) -> int:
        """About how much memory training needs because records are this wide (model state, per-feature work
        arrays, dense batches): a guard against absurd widths (a sparse shape may claim 2**31 - 1), not an account."""
        return 64 * n_features

    @classmethod
    def feature_check(cls, hp: dict) -> FeatureCheck:
        """The width rule for this job's channels: ``feature_dim`` if declared, and at most the widest records whose
        ``working_bytes`` fit in ``limits.model_bytes``."""
        lo, hi, budget = 1, MAX_FEATURES, limits.model_bytes()
        while lo < hi:  # working_bytes grows with the width
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cls.working_bytes(hp, mid) <= budget else (lo, mid - 1)
        feature_dim = hp.get("feature_dim")
        return FeatureCheck(feature_dim if isinstance(feature_dim, int) else None, lo, f"{cls.name}: {cls.width_costs}",
                            needs_width=not cls.in_memory)

    @classmethod
    def validation_limit(cls, hp: dict) -> int | None:
        """Most validation records the job keeps (None: as many as the evaluation budget holds)."""
        return None

    @classmethod
    def uses_validation(cls, hp: dict, labels=None) -> bool:
        """Whether something (a threshold, early stopping, model selection) is chosen on validation data.
        ``labels``: the training labels, when they are already in memory."""
        return False

    def __init__(self, hp: dict, ctx: Context = QUIET, count: int = 1, index: int = 0):
        """``count`` partitions in the job; ``index``: which one this instance serves (partition side)."""
        self.hp, self.ctx, self.count, self.index = hp, ctx, count, index
        self.rng = np.random.default_rng(hp["seed"])
        # Partition side: this partition's validation records, for an algorithm whose own training loop scores them
        # each round inside one partial (xgboost's, synchronised by xgboost's collective, not by the reduction).
        self.validation_records: Callable[[], list[Block]] = lambda: []

    @property
    def feature_dim(self) -> int | None:
        value = self.hp.get("feature_dim")
        return value if isinstance(value, int) else None

    # --- the schedule (leader)
    @property
    def epochs(self) -> int:
        return 1

    @property
    def batch_size(self) -> int:
        """The global mini-batch; each of n partitions takes ceil(batch_size / n) records."""
        return self.hp.get("mini_batch_size", 2**62)

    def round(self) -> tuple[str, int | None]:
        raise NotImplementedError

    def broadcast(self, phase: str):
        return None

    # --- the reduction
    def partial(self, phase: str, shared, batches: Iterable[Block]):
        """Partition side: what this partition's records give. None when it has none."""
        raise NotImplementedError

    def merge(self, phase: str, a, b):
        raise NotImplementedError

    def update(self, phase: str, merged) -> str | None:
        raise NotImplementedError

    def end_epoch(self, epoch: int, validate) -> bool:
        """Whether to stop after this epoch."""
        return False

    def finish(self, validate) -> Model:
        raise NotImplementedError

    # --- checkpoints (algorithms with ``checkpoints = True``)
    def state(self) -> tuple[dict, dict]:
        raise NotImplementedError

    def load_state(self, arrays: dict, meta: dict) -> None:
        raise NotImplementedError


def require_labels(block: Block, channel: str) -> np.ndarray:
    if block.y is None or np.isnan(block.y).any():
        raise DataError(
            f"channel '{channel}' has records without a label; supervised algorithms need one "
            "(CSV: label in the first column; RecordIO-protobuf: label['values'])"
        )
    return block.y


class LocalSteps:
    """Several hosts train by local steps with averaged parameters (the linear learner, factorization machines):
    1, 2, 4, ... up to ``SYNC_STEPS`` local mini-batches between averages, from the start of each epoch."""

    sync_round = 0

    def _sync_steps(self) -> int:
        steps = min(2**self.sync_round, SYNC_STEPS)
        self.sync_round += 1
        return steps
