"""k-means across hosts: the single-host rounds, with each host's part of every mini-batch.

Each round, every host cuts ``ceil(mini_batch_size / hosts)`` records from its own stream
and sends back per-centre sums and counts (plus its few farthest records for reseeding);
the leader moves the centres with the same ``absorb``/``update`` code as one host.
Initial centres come from the records with the smallest seeded hashes, gathered from
every host: the same records a single host would pick from the same data.
"""

from __future__ import annotations

import math

from ..algorithms.kmeans import KMeansAlgorithm, KMeansModel, batch_statistics, init_candidates, round_report, smallest_hashes
from ..errors import DataError
from .hosts import epoch_done


def _start(session, batch_size: int, sample_size: int | None):
    """Open this host's next epoch; on the first, also offer initial-centre candidates from its first batch."""
    session.start_pass(batch_size)
    if sample_size is None:
        return None
    first = session.next_batch()
    session.scratch["pending"] = first
    return None if first is None else init_candidates(first.X, sample_size, session.hp["seed"])


def _round(session, centers, far_cap: int):
    batch = session.scratch.pop("pending", None) or session.next_batch()
    session.scratch["batch"] = batch
    return None if batch is None else round_report(batch.X, centers, far_cap)


def _restat(session, centers):
    batch = session.scratch["batch"]
    return (0.0, 0.0) if batch is None else batch_statistics(batch.X, centers)


def fit(hosts, algo: KMeansAlgorithm) -> KMeansModel:
    hp = algo.hp
    per_host = math.ceil(hp["mini_batch_size"] / len(hosts))
    for epoch in range(hp["epochs"]):
        offered = hosts.call(_start, per_host, algo.init_sample_size if algo.centers is None else None, what="opening an epoch")
        if algo.centers is None:
            candidates = [c for c in offered if c is not None]
            if not candidates:
                raise DataError("channel 'train' has no records on any host")
            algo._init_centers(smallest_hashes(candidates, algo.init_sample_size))
        while True:
            reports = hosts.call(_round, algo.centers, algo.far_cap)
            live = [r for r in reports if r is not None]
            if not live:
                break
            algo.absorb(live, lambda: hosts.call(_restat, algo.centers))
        epoch_done(hosts, algo.ctx, epoch, hp["epochs"])
    if len(algo.centers) < hp["k"]:
        raise DataError(f"k={hp['k']} but the training data has only {len(algo.centers)} records")
    return KMeansModel(algo.reduce(), hp["eval_metrics"], hp["seed"])
