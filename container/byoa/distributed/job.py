"""The first host's side of a multi-host job: start the cluster, let every host open its data,
fit with the algorithm's reduction, and evaluate on every host's share.

Everything after that (metric lines, report, model artifacts) is the single-host code,
run on the first host only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..evaluation.evaluate import Scores
from . import kmeans, knn, linear, pca, trees
from .cluster import Cluster, ClusterSpec
from .host import evaluate_share
from .hosts import Hosts, merged

log = logging.getLogger("byoa.train")

REDUCTIONS = {
    "kmeans": kmeans.fit,
    "pca": pca.fit,
    "knn": knn.fit,
    "linear-learner": linear.fit,
    "random-forest": trees.fit_forest,
    "decision-tree": trees.fit_tree,
}


@dataclass
class ClusterPlan:
    """What the report says about the data plan: the first host's plan, plus every host's channels."""

    info: dict
    warnings: list = field(default_factory=list)


class LeaderJob:
    def __init__(self, spec: ClusterSpec):
        self.spec = spec
        self.cluster = Cluster(spec)
        self.hosts: Hosts | None = None
        self.timings: dict = {}

    def __enter__(self) -> "LeaderJob":
        started = time.monotonic()
        try:
            self.cluster.start_leader()
            self.hosts = Hosts(self.cluster)
        except BaseException:
            self.cluster.shutdown()
            raise
        self.timings["join"] = round(time.monotonic() - started, 3)
        return self

    def __exit__(self, *exc) -> None:
        self.cluster.shutdown()

    def open(self, algorithm: str, hp: dict) -> ClusterPlan:
        described = self.hosts.open(algorithm, hp)
        for name, d in zip(self.hosts.names, described):
            for channel in d["channels"]:
                log.info("host %s: channel %s", name, channel)
        first = described[0]
        info = {**first["info"], "hosts": {n: self.spec.addresses[n] for n in self.hosts.names},
                "per_host": "each host holds out its own records by the same rule; the roles of all hosts together are the split"}
        warnings = [f"host {n}: {w}" for n, d in zip(self.hosts.names, described) for w in d["warnings"]]
        return ClusterPlan(info, warnings)

    def fit(self, algo):
        started, waited = time.monotonic(), self.hosts.waited
        model = REDUCTIONS[algo.name](self.hosts, algo)
        on_hosts = self.hosts.waited - waited
        log.info("fit: %.2f s waiting for the hosts (reading and computing on their data, sending results), "
                 "%.2f s on %s between calls (reductions: merging, updating, joining)",
                 on_hosts, time.monotonic() - started - on_hosts, self.spec.leader)
        return model

    def evaluate(self, model) -> Scores:
        parts = self.hosts.call(evaluate_share, model.to_artifacts(), what="evaluating its records")
        for (scores, seconds), name in zip(parts, self.hosts.names):
            log.info("host %s: evaluated %s in %.2f s", name, scores.sizes(), seconds)
        hosts = [scores for scores, _ in parts]
        out = Scores()
        for role in dict.fromkeys(r for s in hosts for r in s.stats):  # roles in the order the hosts met them
            out.stats[role] = merged([s.stats.get(role) for s in hosts])
            ev = merged([s.evaluators.get(role) for s in hosts])
            if ev is not None:
                ev.model = model
                out.evaluators[role] = ev
        return out
