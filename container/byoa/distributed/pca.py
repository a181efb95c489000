"""PCA across hosts: each host sums its records' moments in one pass; the leader adds the sums.

The sums (count, sum, sum of squares, X^T X or the sketch X^T X Omega) are exactly what
one host accumulates, so the merged model equals the single-host model up to rounding.
"""

from __future__ import annotations

import math

from ..algorithms.pca import PCAAlgorithm, PCAModel
from .hosts import epoch_done


def _moments(session, batch_size: int) -> PCAAlgorithm:
    algo = PCAAlgorithm(session.hp, session.ctx)
    session.start_pass(batch_size)
    while (batch := session.next_batch()) is not None:
        algo.step(batch)
    algo.ctx = None  # the sums travel, not the host's context
    return algo


def fit(hosts, algo: PCAAlgorithm) -> PCAModel:
    parts = hosts.call(_moments, math.ceil(algo.hp["mini_batch_size"] / len(hosts)))
    epoch_done(hosts, algo.ctx, 0, 1)
    for part in parts:
        algo.merge(part)
    return algo.finish("train")
