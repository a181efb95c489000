"""k-means as SageMaker's built-in does it: streaming mini-batch k-means over
``k * extra_center_factor`` centres, then a local weighted Lloyd's run that
reduces them to ``k``. Memory is bounded by ``mini_batch_size``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..data.blocks import Block, dense
from ..data.inputs import ChannelRule
from ..errors import DataError
from ..hyperparameters import AnyOf, Integer, ListOf, Options, Param, Real, Tune
from ..model_io import ArraySpec
from ..stats import metrics as M
from ..stats.samples import HashSample, record_hashes
from .base import COMMON, QUIET, Algorithm, Evaluator, Model, test_channel

log = logging.getLogger("byoa.train")

SILHOUETTE_SAMPLE = 2000
INIT_POOL_FACTOR = 20  # kmeans++ seeds from a pool of 20x the streaming centres


NEAREST_ROWS = 512  # rows whose distances to every centre are computed at once: the matrix stays in cache


def nearest(X, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(squared distance to the nearest centre, its index) for every row, a cache-sized chunk of rows at a time:
    the full distance matrix (rows x centres, 80 MB for 25,000 x 400) is never written to memory."""
    n = X.shape[0]
    d_min, index = np.empty(n), np.empty(n, np.int64)
    for lo in range(0, n, NEAREST_ROWS):
        d = squared_distances(X[lo : lo + NEAREST_ROWS], centers)
        index[lo : lo + NEAREST_ROWS] = j = d.argmin(axis=1)
        d_min[lo : lo + NEAREST_ROWS] = d[np.arange(len(j)), j]
    return d_min, index


def squared_distances(X, centers: np.ndarray) -> np.ndarray:
    """||x - c||^2 for every row and centre, dense or sparse X, never negative."""
    if sp.issparse(X):
        x2 = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    else:
        x2 = np.einsum("ij,ij->i", X, X)
    d = x2[:, None] - 2.0 * (X @ centers.T) + np.einsum("ij,ij->i", centers, centers)[None, :]
    return np.maximum(np.asarray(d), 0.0)


@dataclass
class RoundReport:
    """One partition's part of a round: per-centre sums and counts of its mini-batch, plus its
    farthest records (for reseeding) with their hashes, which break ties independently of batch order."""

    n: int
    d_sum: float
    far_X: np.ndarray
    far_d: np.ndarray
    far_h: np.ndarray
    sums: np.ndarray
    counts: np.ndarray

    def merge(self, other: "RoundReport", far_cap: int) -> "RoundReport":
        """Sums add up; the far records are the ``far_cap`` farthest of both, so any grouping of hosts
        keeps the records one host with all of them would keep."""
        far_d = np.concatenate([self.far_d, other.far_d])
        far_h = np.concatenate([self.far_h, other.far_h])
        keep = np.lexsort((far_h, -far_d))[:far_cap]
        return RoundReport(self.n + other.n, self.d_sum + other.d_sum, np.concatenate([self.far_X, other.far_X])[keep],
                           far_d[keep], far_h[keep], self.sums + other.sums, self.counts + other.counts)


def round_report(block: Block, centers: np.ndarray, far_cap: int, seed: int) -> RoundReport:
    closest, index = nearest(block.X, centers)
    far = np.argpartition(-closest, far_cap - 1)[:far_cap] if far_cap < len(closest) else np.arange(len(closest))
    far_block = block.take(far)
    h = record_hashes(far_block, seed)
    order = np.lexsort((h, -closest[far]))
    sums, counts = batch_statistics(block.X, centers, index)
    return RoundReport(len(closest), float(closest.sum()), dense(far_block.X[order]).astype(np.float64), closest[far][order],
                       h[order], sums, counts)


def batch_statistics(X, centers: np.ndarray, closest: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-centre sums and counts of the batch (``closest``: each row's nearest centre, when known)."""
    closest = nearest(X, centers)[1] if closest is None else closest
    k = len(centers)
    onehot = sp.csr_matrix((np.ones(len(closest)), (closest, np.arange(len(closest)))), shape=(k, len(closest)))
    sums = np.asarray(dense(onehot @ X), dtype=np.float64)
    return sums, np.bincount(closest, minlength=k).astype(np.float64)


class KMeansModel(Model):
    name = "kmeans"
    task = "clustering"
    metric_defs = M.KMEANS

    def __init__(self, centers: np.ndarray, eval_metrics: list[str], seed: int = 0):
        self.centers = centers.astype(np.float32)
        self.eval_metrics = eval_metrics
        self.seed = seed

    @property
    def n_features(self) -> int:
        return self.centers.shape[1]

    def predict(self, X) -> dict:
        d, closest = nearest(X, self.centers)
        return {"closest_cluster": closest.astype(np.float32), "distance_to_cluster": np.sqrt(d).astype(np.float32)}

    def evaluator(self, role="test"):
        return _KMeansEvaluator(self)

    def to_artifacts(self):
        return {"centers": self.centers}, {"eval_metrics": self.eval_metrics, "seed": self.seed}

    artifact_arrays = {"centers": ArraySpec("f", [("k", "features")])}
    artifact_meta = {"eval_metrics": ListOf(Options(("msd", "ssd"))), "seed": Integer(0)}

    @classmethod
    def from_artifacts(cls, arrays, meta):
        return cls(arrays["centers"], meta["eval_metrics"], meta["seed"])


class _KMeansEvaluator(Evaluator):
    def __init__(self, model: KMeansModel):
        self.model = model
        self.n = 0
        self.ssd = 0.0
        self.sample = HashSample(model.seed, capacity=SILHOUETTE_SAMPLE)

    def add(self, block: Block) -> None:
        out = self.model.predict(block.X)
        self.n += len(block)
        self.ssd += float(np.square(out["distance_to_cluster"].astype(np.float64)).sum())
        self.sample.add(Block(block.X, out["closest_cluster"]))

    def merge(self, other: "_KMeansEvaluator") -> None:
        self.n += other.n
        self.ssd += other.ssd
        self.sample.merge(other.sample)

    def result(self) -> dict:
        result = {"msd": self.ssd / max(self.n, 1), "ssd": self.ssd}
        sample, _ = self.sample.result()
        if sample is not None and 1 < len(np.unique(sample.y)) < len(sample):
            from sklearn.metrics import silhouette_score  # scikit-learn is imported only where it is used

            result["silhouette"] = float(silhouette_score(dense(sample.X), sample.y))
        wanted = set(self.model.eval_metrics) | {"silhouette"}
        return {k: v for k, v in result.items() if k in wanted}


class KMeansAlgorithm(Algorithm):
    name = "kmeans"
    checkpoints = True
    metric_defs = M.KMEANS
    model_class = KMeansModel
    channels = [
        ChannelRule("train", "records to cluster (labels, if any, are ignored)", required=True),
        ChannelRule("validation", "records scored with the same metrics, never trained on"),
        test_channel("records"),
    ]
    objectives = {"clustering": "test:msd"}
    example = {"k": "3", "feature_dim": "4"}
    params = [
        Param("k", Integer(2), help="number of clusters"),
        Param("feature_dim", Integer(1), help="number of features; each record must have exactly this many"),
        Param("mini_batch_size", Integer(1), 5000, "records per streaming update", tune=Tune(3000, 15000)),
        Param("epochs", Integer(1), 1, "passes over the training data", tune=Tune(1, 10)),
        Param("init_method", Options(("random", "kmeans++")), "random", "how the streaming centres are seeded (first mini-batch)",
              tune=Tune(values=("kmeans++", "random"))),
        Param(
            "extra_center_factor",
            AnyOf((Options(("auto",)), Integer(1))),
            "auto",
            "streaming keeps k * this many centres, reduced to k at the end; auto = 4",
            tune=Tune(4, 10),
        ),
        Param("local_lloyd_max_iter", Integer(1), 300, "iterations of the final weighted Lloyd's reduction"),
        Param("local_lloyd_tol", Real(0), 0.0001, "tolerance of the final reduction"),
        Param("local_lloyd_init_method", Options(("kmeans++", "random")), "kmeans++", "seeding of the final reduction"),
        Param("local_lloyd_num_trials", AnyOf((Options(("auto",)), Integer(1))), "auto", "reduction restarts; auto = 10"),
        Param("half_life_time_size", Integer(0), 0, "records after which a centre's past weight halves; 0 = no decay"),
        Param("eval_metrics", ListOf(Options(("msd", "ssd"))), ["msd"], "metrics reported: msd, ssd (silhouette always)"),
        *COMMON,
    ]

    width_costs = "dense centres, the kmeans++ pool and the silhouette sample"

    @staticmethod
    def streaming_centers(hp) -> int:
        """How many centres the mini-batch phase keeps: k x extra_center_factor (auto: 4)."""
        factor = hp["extra_center_factor"]
        return hp["k"] * (4 if factor == "auto" else factor)

    @classmethod
    def working_bytes(cls, hp, n_features):
        return 8 * n_features * (cls.streaming_centers(hp) * (INIT_POOL_FACTOR + 3) + SILHOUETTE_SAMPLE)

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        self.n_centers = self.streaming_centers(hp)
        self.centers: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.msd: float | None = None  # running mean squared distance to the closest centre

    @property
    def epochs(self) -> int:
        return self.hp["epochs"]

    # --- the reduction: one round per mini-batch
    def round(self):
        return ("init" if self.centers is None else "step"), 1

    def broadcast(self, phase):
        return None if phase == "init" else self.centers

    def partial(self, phase, centers, batches):
        if not batches:
            return None
        batch = batches[0]
        if phase == "init":  # the first mini-batch's records with the smallest hashes seed the centres
            sample = HashSample(self.hp["seed"], capacity=self.init_sample_size)
            sample.add(batch)
            return sample
        if phase == "step":
            return round_report(batch, centers, self.far_cap_for(len(centers)), self.hp["seed"])
        return batch_statistics(batch.X, centers)  # "restat": after reseeding moved centres

    def merge(self, phase, a, b):
        if phase == "init":
            a.merge(b)
            return a
        if phase == "step":
            return a.merge(b, self.far_cap_for(len(a.sums)))
        return a[0] + b[0], a[1] + b[1]

    def update(self, phase, merged):
        if phase == "init":
            pool, _ = merged.result()
            self._init_centers(dense(pool.X).astype(np.float64))
            return "step"
        if phase == "step":
            if self.reseed_far(merged):
                return "restat"
            merged = (merged.sums, merged.counts)
        self.move(*merged)
        return None

    def finish(self, validate):
        if self.centers is None or len(self.centers) < self.hp["k"]:
            raise DataError(f"k={self.hp['k']} but the training data has only {0 if self.centers is None else len(self.centers)} records")
        return KMeansModel(self.reduce(), self.hp["eval_metrics"], self.hp["seed"])

    # --- checkpoints
    def state(self):
        return {"centers": self.centers, "counts": self.counts}, {"msd": self.msd}

    def load_state(self, arrays, meta):
        self.centers, self.counts = arrays["centers"].astype(np.float64), arrays["counts"].astype(np.float64)
        self.msd = meta["msd"]

    # --- the leader's steps
    @property
    def init_sample_size(self) -> int:
        """Records the initial centres are drawn from: the centres themselves (random), or a pool (kmeans++)."""
        return self.n_centers * (INIT_POOL_FACTOR if self.hp["init_method"] == "kmeans++" else 1)

    def _init_centers(self, pool: np.ndarray) -> None:
        """``pool``: the records with the smallest hashes, in hash order."""
        n = min(self.n_centers, len(pool))
        if self.hp["init_method"] == "kmeans++":
            from sklearn.cluster import kmeans_plusplus

            centers, _ = kmeans_plusplus(pool, n, random_state=self.hp["seed"])
        else:
            centers = pool[:n].copy()
        if n < self.n_centers:
            log.warning("first mini-batch has %d records; using %d streaming centres instead of %d", len(pool), n, self.n_centers)
        self.centers = centers
        self.counts = np.zeros(n)

    @staticmethod
    def far_cap_for(n_centers: int) -> int:
        """Far records a round offers for reseeding: 4x the most centres one round may move."""
        return 4 * max(1, n_centers // 4)

    def reseed_far(self, report: RoundReport) -> bool:
        """Move the least-used centres to records far from every centre (greedy farthest-first).

        "Far" is 4x the running mean squared distance to the closest centre. Without this,
        data sorted by cluster (common in files) leaves every centre seeded from the first
        batch in the first cluster, and the later clusters get only what they can drag.
        Candidates are the round's ``far_cap`` farthest records. Returns whether a centre moved.
        """
        batch_msd = report.d_sum / max(report.n, 1)
        typical = self.msd if self.msd is not None else batch_msd
        self.msd = batch_msd if self.msd is None else 0.9 * self.msd + 0.1 * batch_msd
        far = np.flatnonzero(report.far_d > 4.0 * typical) if typical > 0 else np.zeros(0, np.int64)
        budget = min(len(far), max(1, len(self.centers) // 4))
        if budget == 0 or self.counts.sum() == 0:
            return False
        victims = np.argsort(self.counts, kind="stable")[:budget]
        points = report.far_X[far]
        dist = report.far_d[far].copy()
        moved = False
        for victim in victims:
            i = int(np.argmax(dist))
            if dist[i] <= 4.0 * typical:
                break
            self.centers[victim] = points[i]
            self.counts[victim] = 0.0
            moved = True
            dist = np.minimum(dist, np.square(points - points[i]).sum(axis=1))
        return moved

    def move(self, sums: np.ndarray, counts: np.ndarray) -> None:
        """Each centre moves to the running mean of its points (per-centre rate 1/count)."""
        half_life = self.hp["half_life_time_size"]
        if half_life:
            self.counts *= 0.5 ** (counts.sum() / half_life)
        total = self.counts + counts
        hit = counts > 0
        self.centers[hit] += (sums[hit] - counts[hit, None] * self.centers[hit]) / total[hit, None]
        self.counts = total

    def reduce(self) -> np.ndarray:
        """Weighted Lloyd's over the streaming centres -> k centres."""
        k = self.hp["k"]
        if len(self.centers) <= k:
            return self.centers
        from sklearn.cluster import KMeans

        trials = self.hp["local_lloyd_num_trials"]
        weights = np.maximum(self.counts, 1e-12)
        km = KMeans(
            n_clusters=k,
            init="k-means++" if self.hp["local_lloyd_init_method"] == "kmeans++" else "random",
            n_init=10 if trials == "auto" else trials,
            max_iter=self.hp["local_lloyd_max_iter"],
            tol=self.hp["local_lloyd_tol"],
            random_state=self.hp["seed"],
        )
        km.fit(self.centers, sample_weight=weights)
        return km.cluster_centers_
