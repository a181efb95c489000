"""One host's part of a training job: its share of the channels, its data plan, the records it keeps
for evaluation, and the algorithm's partition-side steps.

The training channel is read once per epoch and never again for metrics: during the first
pass, the records held out of it (validation and test roles) and a sample of the training
role are kept in memory, within a budget (``TRAIN_EVAL_BUFFER_MB``); past it, each keeps a
uniform sample (``stats.samples``), and the report says how many records were scored.
The 'validation' channel is read once into that memory; the 'test' channel is streamed once.
In File mode, where every pass reads the same files, the first pass's training records are
also kept (up to ``TRAIN_CACHE_MB``) and later epochs read them from memory instead of
decoding the files again. Pipe mode opens a FIFO per epoch, as SageMaker may reshuffle it.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass
from typing import Iterator

from ..algorithms import ALGORITHMS, model_from_artifacts
from ..data.blocks import Block, rebatch
from ..data.inputs import read_inputs
from ..distributed.placement import Dealer
from ..evaluation.evaluate import EVAL_BATCH, Scores, evaluate
from ..evaluation.plan import Plan, make_plan
from ..paths import Paths
from ..stats.metrics import CHANNELS
from ..stats.samples import HashSample, from_split_hashes, nbytes
from ..stats.split import ROLE_NAMES, TRAIN

DEFAULT_BUDGET_MB = 256
DEFAULT_CACHE_MB = 1024
SHARES = {"test": 0.5, "validation": 0.25, "train": 0.25}  # of the budget, per role


def budget_bytes() -> int:
    return int(float(os.environ.get("TRAIN_EVAL_BUFFER_MB", DEFAULT_BUDGET_MB)) * 1e6)


def cache_bytes() -> int:
    return int(float(os.environ.get("TRAIN_CACHE_MB", DEFAULT_CACHE_MB)) * 1e6)


@dataclass
class PassReport:
    """One partition's pass over its training part: what the leader logs per host."""

    host: str
    records: int
    nbytes: int
    seconds: float
    busy: float  # of which working (the rest: waiting for the leader and the network)
    from_memory: bool = False  # File mode: the first pass's records, kept

    @property
    def source(self) -> str:
        return "from memory" if self.from_memory else f"{self.nbytes / 1e6:.1f} MB"

    def describe(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else float("inf")
        return f"{self.host} {self.records} records, {self.source} in {self.seconds:.2f} s ({rate:,.0f} records/s; busy {self.busy:.2f} s)"


class Partition:
    def __init__(self, algorithm: str, hp: dict, plan: Plan, channels: dict, index: int = 0, count: int = 1,
                 host: str = "algo-1", budget: int | None = None):
        algo_cls = ALGORITHMS[algorithm]
        self.algo = algo_cls(hp, count=count, index=index)
        self.algo.validation_records = self._validation_blocks
        self.deals_training = algo_cls.deals_training
        self.plan, self.channels = plan, channels
        self.index, self.count, self.host = index, count, host
        budget = budget_bytes() if budget is None else budget
        limits = {"train": algo_cls.train_sample_limit, "validation": algo_cls.validation_limit(hp), "test": None}
        self.kept = {role: HashSample(hp["seed"], capacity=limits[role] and math.ceil(limits[role] / count),
                                      budget=int(budget * share)) for role, share in SHARES.items()}
        self.filled = False  # the first pass has kept its held-out records and training sample
        self.cache: list[Block] | None = None  # File mode: the training records of the first pass, when they fit
        self.caching = plan.source.spec is not None and plan.source.spec.mode == "File" and cache_bytes() > 0
        self.validation_read = plan.validation is None
        self.batches: Iterator[Block] = iter(())
        self.round: list | Iterator = []
        self.busy = 0.0
        self.pass_started, self.pass_records, self.pass_busy, self.pass_from_memory = time.monotonic(), 0, 0.0, False

    @classmethod
    def from_job(cls, algorithm: str, hp: dict, index: int = 0, count: int = 1, host: str = "algo-1") -> "Partition":
        """This host's partition: its own inputdataconfig.json and channel files or FIFOs (SAGEMAKER_BASE_DIR)."""
        channels, roles, _ = read_inputs(Paths.from_env(), ALGORITHMS[algorithm].feature_check(hp), ALGORITHMS[algorithm].channels)
        started = time.monotonic()
        plan = make_plan(hp, ALGORITHMS[algorithm], roles["train"], roles["validation"], roles["test"])
        plan.info["plan_seconds"] = round(time.monotonic() - started, 3)
        return cls(algorithm, hp, plan, channels, index, count, host)

    def describe(self) -> dict:
        channels = [c.describe() + Dealer(self.index, self.count, c.spec.distribution).describe() for c in self.channels.values()]
        return {"channels": channels, "info": self.plan.info, "warnings": self.plan.warnings}

    def _timed(self, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            self.busy += time.monotonic() - started

    # --- training passes
    def start_epoch(self, batch_size: int) -> None:
        self.batches = rebatch(self._train_blocks(), math.ceil(batch_size / self.count))
        self.pass_started, self.pass_records, self.pass_busy = time.monotonic(), 0, self.busy
        self.pass_from_memory = self.cache is not None

    def _train_blocks(self) -> Iterator[Block]:
        """This partition's training records of one pass; the first pass also keeps the records for evaluation."""
        if self.cache is not None:
            for block in self.cache:
                self.pass_records += len(block)
                yield block
            return
        cache, cached = ([] if self.caching else None), 0
        dealer = Dealer(self.index, self.count, self.plan.source.spec.distribution)
        keep = not self.filled
        for role, block, h in self.plan.role_blocks() if keep else self.plan.role_blocks((TRAIN,)):
            mine = dealer.mask(len(block), role)
            dealt = block if mine is None else block.take(mine)  # this host's share: what it evaluates
            if keep and len(dealt):
                self.kept[ROLE_NAMES[role]].add(dealt, None if h is None else from_split_hashes(h if mine is None else h[mine]))
            if role == TRAIN:
                if self.deals_training:
                    block = dealt
                if not len(block):
                    continue
                self.pass_records += len(block)
                if cache is not None:
                    cached += nbytes(block)
                    if cached <= cache_bytes():
                        cache.append(block)
                    else:  # too big to keep: later epochs read the files again
                        cache, self.caching = None, False
                yield block
        self.filled = True
        if cache is not None:
            self.cache, self.caching = cache, False

    def step(self, phase: str, shared, take: int | None):
        """The algorithm's partial for this round: ``take`` new local mini-batches (None: the rest of the pass;
        0: the round's records again, for a later phase). None when this partition has no records left."""
        return self._timed(self._step, phase, shared, take)

    def _step(self, phase, shared, take):
        if take is None:
            first = next(self.batches, None)
            self.round = [] if first is None else itertools.chain([first], self.batches)
        elif take:
            self.round = list(itertools.islice(self.batches, take))
        if isinstance(self.round, list) and not self.round and not (take == 0 and self.algo.collective):
            return None
        return self.algo.partial(phase, shared, self.round)

    def end_pass(self) -> PassReport:
        """Read what is left of the pass (so every record is kept or counted), then report it."""
        self._timed(lambda: [None for _ in self.batches])
        return PassReport(self.host, self.pass_records, self.plan.source.bytes_last_pass, time.monotonic() - self.pass_started,
                          self.busy - self.pass_busy, self.pass_from_memory)

    def _ensure_filled(self) -> None:
        """A job resumed after its last epoch made no pass: make one, for the records evaluation needs."""
        if not self.filled:
            for _ in self._train_blocks():
                pass

    # --- validation and evaluation
    def _validation_blocks(self) -> list[Block]:
        self._ensure_filled()
        if not self.validation_read:
            self.validation_read = True
            dealer = Dealer(self.index, self.count, self.plan.validation.spec.distribution)
            for block in self.plan.validation.next_pass():
                mine = dealer.share(block)
                if mine is not None:
                    self.kept["validation"].add(mine)
        return list(self.kept["validation"].blocks_of(EVAL_BATCH))

    def validate(self, phase: str, shared):
        """The algorithm's partial over this partition's validation records; None if it has none."""
        return self._timed(self._validate, phase, shared)

    def _validate(self, phase, shared):
        blocks = self._validation_blocks()
        return self.algo.partial(phase, shared, blocks) if blocks else None

    def evaluate(self, model, scored=CHANNELS) -> Scores:
        """Every role's records scored by ``model``: the kept samples, and one streamed pass of the 'test' channel.
        Roles not in ``scored`` get baseline statistics only."""
        return self._timed(self._evaluate, model, scored)

    def _evaluate(self, model, scored) -> Scores:
        self._validation_blocks()
        source = self.plan.source.name
        records = {role: (self.plan.validation.name if role == "validation" and self.plan.validation else source,
                          sample.blocks_of(EVAL_BATCH), sample.seen)
                   for role, sample in self.kept.items() if sample.seen}
        if self.plan.test is not None:
            dealer = Dealer(self.index, self.count, self.plan.test.spec.distribution)
            stream = (mine for block in self.plan.test.next_pass() if (mine := dealer.share(block)) is not None)
            records["test"] = (self.plan.test.name, stream, None)
        return evaluate(model, records, scored)

    def evaluate_artifacts(self, artifacts: tuple[dict, dict]) -> Scores:
        """On a follower: the model arrives as its artifacts (plain arrays), rebuilt as ``serve`` would; the
        evaluators travel back without it."""
        scores = self.evaluate(model_from_artifacts(self.algo.name, *artifacts))
        for ev in scores.evaluators.values():
            ev.model = None
        return scores


class PartitionActor:
    """A follower's partition, hosted in its Dask worker and called by the leader's executor."""

    def __init__(self, algorithm: str, hp: dict, index: int, count: int, host: str):
        self.partition = Partition.from_job(algorithm, hp, index, count, host)

    def call(self, method: str, *args):
        return getattr(self.partition, method)(*args)
