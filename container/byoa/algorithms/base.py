"""What every algorithm provides, and the epoch loop the streaming ones share."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator

import numpy as np

from ..data.blocks import Block, rebatch
from ..data.channels import Channel
from ..errors import DataError
from ..stats import split
from ..stats.metrics import MetricDef
from ..hyperparameters import Integer, Param
from ..model_io import ArtifactWriter, ModelFormatError, load

log = logging.getLogger("byoa.train")

SEED = Param("seed", Integer(0, 2**32 - 1), 0, "drives every random choice (and the data split): the same job gives the same model")
COMMON = [*split.PARAMS, SEED]  # every algorithm's evaluation settings
EVAL_BATCH = 10000


@dataclass
class Context:
    """What an algorithm may use from the job: host name, seed, checkpoints, log lines."""

    host: str = "algo-1"
    checkpoints: "Checkpoints | None" = None
    emit: Callable[[str], None] = print

    def progress(self, done: int, total: int) -> None:
        self.emit(f"#progress_metric: host={self.host}, completed {100.0 * done / total:.0f} % of epochs")

    def throughput(self, channel: str, records: int, seconds: float) -> None:
        rate = records / seconds if seconds > 0 else float("inf")
        self.emit(f"#throughput_metric: host={self.host}, {channel} throughput={rate:.2f} records/second")


class Model:
    """A trained model: predicts, evaluates, and round-trips through plain arrays."""

    name: ClassVar[str]
    metric_defs: ClassVar[list[MetricDef]]
    task: str  # binary, multiclass, regression, clustering or projection: how it is evaluated
    positive_class: float | None = None  # binary classifiers: the label counted as positive
    integer_outputs: tuple = ()  # outputs written as integers in JSON (as the built-in algorithm does)
    verbose_outputs: tuple = ()  # outputs sent only when the client asks with verbose=true
    n_features: int  # the width of the records it predicts on

    def predict(self, X) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def warm_up(self) -> None:
        """Prepare, in a serving worker's background thread, what the first big request would otherwise wait for."""

    def evaluator(self) -> "Evaluator":
        raise NotImplementedError

    def finalize(self, evaluators: dict[str, "Evaluator"]) -> None:
        """Choices made on evaluation data after fitting (e.g. a decision threshold)."""

    def to_artifacts(self) -> tuple[dict[str, np.ndarray], dict]:
        raise NotImplementedError

    @classmethod
    def from_artifacts(cls, arrays: dict, meta: dict) -> "Model":
        raise NotImplementedError

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
        """Add another host's evaluator of the same role (multi-host evaluation)."""
        self.acc.merge(other.acc)


class Algorithm:
    """Fits a Model from channels. ``params`` is the single declaration of its hyperparameters."""

    name: ClassVar[str]
    params: ClassVar[list[Param]]
    metric_defs: ClassVar[list[MetricDef]]
    streaming: ClassVar[bool]  # resumable epochs over a stream (checkpoints)
    in_memory: ClassVar[bool] = False  # reads all training records into memory
    model_class: ClassVar[type]

    @classmethod
    def supervision(cls, hp: dict) -> str:
        """classifier, regressor or unsupervised: what a split may be stratified on."""
        kind = hp.get("predictor_type", "")
        return "unsupervised" if not kind else ("regressor" if kind == "regressor" else "classifier")

    @classmethod
    def uses_validation(cls, hp: dict, labels=None) -> bool:
        """Whether something (a threshold, early stopping) is chosen on validation data.
        ``labels``: the training labels, when they are already in memory."""
        return False

    def __init__(self, hp: dict, ctx: Context):
        self.hp = hp
        self.ctx = ctx
        self.rng = np.random.default_rng(hp["seed"])

    @property
    def feature_dim(self) -> int | None:
        value = self.hp.get("feature_dim")
        return value if isinstance(value, int) else None

    def fit(self, train: Channel, validation) -> Model:
        """``train``: the training part (a channel or a view of one). ``validation``: a channel,
        a ``HeldOutStream`` whose rows arrive during each training pass, or None."""
        raise NotImplementedError


def require_labels(block: Block, channel: str) -> np.ndarray:
    if block.y is None or np.isnan(block.y).any():
        raise DataError(
            f"channel '{channel}' has records without a label; supervised algorithms need one "
            "(CSV: label in the first column; RecordIO-protobuf: label['values'])"
        )
    return block.y


def batches(channel: Channel, size: int) -> Iterator[Block]:
    return rebatch(channel.next_pass(), size)


def stream_epochs(
    algo: Algorithm,
    channel: Channel,
    epochs: int,
    batch_size: int,
    step: Callable[[Block], None],
    end_epoch: Callable[[int], bool] = lambda epoch: False,
) -> int:
    """The shared epoch loop: resume from a checkpoint, one pass per epoch, metrics, checkpoint at each end.

    ``end_epoch`` returns True to stop early. Returns the number of epochs run in this job.
    """
    ctx, start = algo.ctx, 0
    if ctx.checkpoints is not None:
        restored = ctx.checkpoints.restore(algo)
        if restored is not None:
            start = restored + 1
            log.info("resumed from the checkpoint of epoch %d in %s", restored, ctx.checkpoints.folder)
    for epoch in range(start, epochs):
        started = time.monotonic()
        seen = 0
        for batch in rebatch(channel.next_pass(), batch_size):
            step(batch)
            seen += len(batch)
        if seen == 0:
            raise DataError(f"channel '{channel.name}' has no records (epoch {epoch})")
        elapsed = time.monotonic() - started
        log.info(
            "epoch %d/%d: %d records, %.1f MB in %.2f s", epoch + 1, epochs, seen, channel.bytes_last_pass / 1e6, elapsed
        )
        ctx.throughput(channel.name, seen, elapsed)
        ctx.progress(epoch + 1, epochs)
        stop = end_epoch(epoch)
        if ctx.checkpoints is not None:
            ctx.checkpoints.save(algo, epoch)
        if stop:
            log.info("stopping early after epoch %d", epoch + 1)
            break
    return max(epochs - start, 0)


@dataclass
class Checkpoints:
    """Per-epoch state of a streaming algorithm, resumed when the job starts again (spot, StopTrainingJob)."""

    folder: Path
    fingerprint: str

    def save(self, algo, epoch: int) -> None:
        arrays, meta = algo.state()
        ArtifactWriter(self.folder).save(algo.name, arrays, {"epoch": epoch, "fingerprint": self.fingerprint, **meta})

    def restore(self, algo) -> int | None:
        try:
            manifest, arrays = load(self.folder)
        except ModelFormatError:
            return None
        meta = manifest["meta"]
        if manifest["algorithm"] != algo.name or meta.get("fingerprint") != self.fingerprint:
            log.warning("ignoring the checkpoint in %s: it is from a job with other hyperparameters", self.folder)
            return None
        algo.load_state(arrays, meta)
        return int(meta["epoch"])
