"""k-NN across hosts: each host draws a uniform sample of its records; the leader asks each
for its share of one ``sample_size`` sample of everything (a multivariate hypergeometric draw
from the hosts' record counts), so only ``sample_size`` records cross the network in all."""

from __future__ import annotations

import numpy as np

from ..algorithms.knn import KNNAlgorithm, KNNModel
from ..stats.metrics import host_shares
from .hosts import epoch_done


def _draw(session) -> int:
    algo = KNNAlgorithm(session.hp, session.ctx)
    session.start_pass(session.hp["mini_batch_size"])
    train = session.part
    session.scratch["sample"] = algo.draw(_Batches(session, train.name), [session.hp["seed"], session.index])
    return session.scratch["sample"].seen


def _take(session, count: int) -> list[np.ndarray]:
    return session.scratch.pop("sample").subsample(count, np.random.default_rng([session.hp["seed"], session.index, 1]))


class _Batches:
    """The open pass of a host session, channel-shaped for ``KNNAlgorithm.draw``."""

    def __init__(self, session, name: str):
        self.session, self.name = session, name

    def next_pass(self):
        while (batch := self.session.next_batch()) is not None:
            yield batch


def fit(hosts, algo: KNNAlgorithm) -> KNNModel:
    seen = hosts.call(_draw, what="drawing its sample")
    epoch_done(hosts, algo.ctx, 0, 1)
    counts = host_shares(seen, algo.hp["sample_size"], np.random.default_rng(algo.hp["seed"]))
    parts = [p for p in hosts.call(_take, each=[(int(c),) for c in counts], what="sending its sample") if p]
    X, y = (np.concatenate(c) for c in zip(*parts)) if parts else (None, None)
    return algo.model_from(X, y, int(sum(seen)), "train")
