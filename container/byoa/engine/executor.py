"""The one executor: runs an algorithm's reduction (``algorithms.base``) over the job's partitions.

One host: a single partition, called in this process. Several hosts: the leader's own
partition runs in this process while each follower's runs in an actor on that host's Dask
worker (``distributed.hosts``); every call goes to all partitions at once, and their partials
fold with the algorithm's ``merge`` in host order. The leader's state never leaves this
process: partitions only see what ``broadcast`` sends them.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

from ..algorithms.base import Algorithm, Context, Model
from ..errors import DataError
from ..evaluation.evaluate import Scores
from ..stats.metrics import CHANNELS
from .checkpoints import Checkpoints
from .partition import Partition, PartitionActor

log = logging.getLogger("byoa.train")


class Executor:
    def __init__(self, local: Partition, hosts=None, ctx: Context | None = None, checkpoints: Checkpoints | None = None):
        self.local, self.hosts, self.checkpoints = local, hosts, checkpoints
        self.ctx = ctx or Context()
        self.names = [local.host, *(hosts.names if hosts else [])]

    def call(self, method: str, *args, what: str = "training") -> list:
        """``partition.method(*args)`` on every partition; results in host order."""
        if self.hosts is None:
            return [getattr(self.local, method)(*args)]
        mine, theirs = self.hosts.call("call", method, *args, local=lambda: getattr(self.local, method)(*args), what=what)
        return [mine, *theirs]

    def describe(self) -> list[dict]:
        return self.call("describe", what="opening its data")

    # --- fitting
    def fit(self, algo: Algorithm) -> Model:
        started, waited = time.monotonic(), self.hosts.waited if self.hosts else 0.0
        start = self._resume(algo)
        for epoch in range(start, algo.epochs):
            self.call("start_epoch", algo.batch_size, what="opening an epoch")
            while self._round(algo):
                pass
            self._epoch_done(epoch, algo.epochs, self.call("end_pass", what="reporting its pass"))
            stop = algo.end_epoch(epoch, self._validator(algo))
            if self.checkpoints is not None:
                self.checkpoints.save(algo, epoch)
            if stop:
                log.info("stopping early after epoch %d", epoch + 1)
                break
        model = algo.finish(self._validator(algo))
        if self.hosts is not None:
            on_hosts = self.hosts.waited - waited
            log.info("fit: %.2f s waiting for the other hosts after this host's part of each call, %.2f s on %s in all",
                     on_hosts, time.monotonic() - started, self.names[0])
        return model

    def _round(self, algo: Algorithm) -> bool:
        """One round: its first phase on new records, then the phases ``update`` asks for. False: no records were left."""
        phase, take = algo.round()
        merged = self._reduce(algo, phase, self.call("step", phase, algo.broadcast(phase), take))
        if merged is None:
            return False
        while (phase := algo.update(phase, merged)) is not None:
            merged = self._reduce(algo, phase, self.call("step", phase, algo.broadcast(phase), 0))
            if merged is None:  # no partition had anything for this phase
                break
        return True

    @staticmethod
    def _reduce(algo: Algorithm, phase: str, parts: list):
        present = [p for p in parts if p is not None]
        merged = present[0] if present else None
        for other in present[1:]:
            merged = algo.merge(phase, merged, other)
        return merged

    def _validator(self, algo: Algorithm):
        def validate(phase: str, shared):
            return self._reduce(algo, phase, self.call("validate", phase, shared, what="scoring its validation records"))

        return validate

    def _resume(self, algo: Algorithm) -> int:
        if self.checkpoints is None:
            return 0
        restored = self.checkpoints.restore(algo)
        if restored is None:
            return 0
        log.info("resumed from the checkpoint of epoch %d in %s", restored, self.checkpoints.folder)
        return restored + 1

    def _epoch_done(self, epoch: int, epochs: int, reports: list) -> None:
        """Log each partition's pass (records, MB, throughput) and the job's progress; no records at all is an error."""
        if sum(r.records for r in reports) == 0:
            raise DataError(f"channel '{self.local.plan.source.name}' has no records (epoch {epoch})")
        if len(reports) == 1:
            r = reports[0]
            log.info("epoch %d/%d: %d records, %s in %.2f s", epoch + 1, epochs, r.records, r.source, r.seconds)
        else:
            log.info("epoch %d/%d: %s", epoch + 1, epochs, "; ".join(r.describe() for r in reports))
        for r in reports:
            self.ctx.throughput("train", r.records, r.seconds, r.host)
        self.ctx.progress(epoch + 1, epochs)

    # --- evaluation
    def evaluate(self, model: Model, scored=CHANNELS) -> Scores:
        """Every partition scores its records; the scores merge into those of the whole job."""
        if self.hosts is None:
            return self.local.evaluate(model, scored)
        mine, theirs = self.hosts.call("call", "evaluate_artifacts", model.to_artifacts(), local=lambda: self.local.evaluate(model),
                                       what="evaluating its records")
        for name, scores in zip(self.names, [mine, *theirs]):
            log.info("host %s: evaluated %s", name, scores.sizes())
        for scores in theirs:
            for ev in scores.evaluators.values():
                ev.model = model
            mine.merge(scores)
        return mine


@contextmanager
def job_executor(algorithm: str, hp: dict, host: str, spec=None, ctx: Context | None = None,
                 checkpoints: Checkpoints | None = None) -> Iterator[Executor]:
    """The executor of this job: one partition on this host, plus (with several hosts) one on each
    follower, which opens its own data while this host opens its own."""
    if spec is None:
        yield Executor(Partition.from_job(algorithm, hp, 0, 1, host), None, ctx, checkpoints)
        return
    from ..distributed.cluster import Leader
    from ..distributed.hosts import Hosts

    count = len(spec.hosts)
    with Leader(spec) as leader:
        hosts = Hosts(leader)
        local = hosts.start(PartitionActor, lambda i, name: (algorithm, hp, i, count, name),
                            local=lambda: Partition.from_job(algorithm, hp, 0, count, host), what="opening its data")
        yield Executor(local, hosts, ctx)
