"""k-means as SageMaker's built-in does it: streaming mini-batch k-means over
``k * extra_center_factor`` centres, then a local weighted Lloyd's run that
reduces them to ``k``. Memory is bounded by ``mini_batch_size``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..data.blocks import Block, dense
from ..errors import DataError
from ..stats import metrics as M
from ..stats.split import HashPositions
from ..hyperparameters import AnyOf, Integer, ListOf, Options, Param, Real
from .base import COMMON, Algorithm, Evaluator, Model, stream_epochs

log = logging.getLogger("byoa.train")

SILHOUETTE_SAMPLE = 2000
INIT_POOL_FACTOR = 20  # kmeans++ seeds from a pool of 20x the streaming centres
INIT_HASH_SALT = 2**32  # initial centres hash with another key than the data split


def squared_distances(X, centers: np.ndarray) -> np.ndarray:
    """||x - c||^2 for every row and centre, dense or sparse X, never negative."""
    if sp.issparse(X):
        x2 = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    else:
        x2 = np.einsum("ij,ij->i", X, X)
    d = x2[:, None] - 2.0 * (X @ centers.T) + np.einsum("ij,ij->i", centers, centers)[None, :]
    return np.maximum(np.asarray(d), 0.0)


def init_candidates(X, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` records of a batch with the smallest seeded hash of their values (dense), and those hashes.

    A hash, not the batch order, picks the initial centres, so the pick does not depend on
    how the records are split into files, hosts or batches: gathered from every host and cut
    to the ``m`` smallest again, the same data gives the same initial centres.
    """
    h = HashPositions(seed + INIT_HASH_SALT).hash(X, None)
    pick = np.argsort(h, kind="stable")[:m]
    return dense(X[pick]).astype(np.float64), h[pick]


def smallest_hashes(candidates: list[tuple[np.ndarray, np.ndarray]], m: int) -> np.ndarray:
    X = np.concatenate([c[0] for c in candidates])
    h = np.concatenate([c[1] for c in candidates])
    return X[np.lexsort((np.arange(len(h)), h))[:m]]


@dataclass
class RoundReport:
    """What one host sends the leader for one mini-batch: statistics, plus a few far records for reseeding."""

    n: int
    d_sum: float
    far_X: np.ndarray
    far_d: np.ndarray
    sums: np.ndarray
    counts: np.ndarray


def round_report(X, centers: np.ndarray, far_cap: int) -> RoundReport:
    d = squared_distances(X, centers)
    closest = d.min(axis=1)
    far = np.argsort(-closest, kind="stable")[:far_cap]
    sums, counts = batch_statistics(X, centers, d)
    return RoundReport(len(closest), float(closest.sum()), dense(X[far]).astype(np.float64), closest[far], sums, counts)


def batch_statistics(X, centers: np.ndarray, d: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-centre sums and counts of the batch."""
    closest = (squared_distances(X, centers) if d is None else d).argmin(axis=1)
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
        d = squared_distances(X, self.centers)
        closest = d.argmin(axis=1)
        return {
            "closest_cluster": closest.astype(np.float32),
            "distance_to_cluster": np.sqrt(d[np.arange(len(closest)), closest]).astype(np.float32),
        }

    def evaluator(self):
        return _KMeansEvaluator(self)

    def to_artifacts(self):
        return {"centers": self.centers}, {"eval_metrics": self.eval_metrics, "seed": self.seed}

    @classmethod
    def from_artifacts(cls, arrays, meta):
        return cls(arrays["centers"], meta["eval_metrics"], meta.get("seed", 0))


class _KMeansEvaluator(Evaluator):
    def __init__(self, model: KMeansModel):
        self.model = model
        self.n = 0
        self.ssd = 0.0
        self.sample = M.Reservoir(SILHOUETTE_SAMPLE, model.seed)

    def add(self, block: Block) -> None:
        out = self.model.predict(block.X)
        self.n += len(block)
        self.ssd += float(np.square(out["distance_to_cluster"].astype(np.float64)).sum())
        self.sample.add(dense(block.X), out["closest_cluster"])

    def merge(self, other: "_KMeansEvaluator") -> None:
        self.n += other.n
        self.ssd += other.ssd
        self.sample.merge(other.sample)

    def result(self) -> dict:
        result = {"msd": self.ssd / max(self.n, 1), "ssd": self.ssd}
        X, labels = self.sample.sample() or (None, None)
        if X is not None and 1 < len(np.unique(labels)) < len(labels):
            from sklearn.metrics import silhouette_score  # scikit-learn is imported only where it is used

            result["silhouette"] = float(silhouette_score(X, labels))
        wanted = set(self.model.eval_metrics) | {"silhouette"}
        return {k: v for k, v in result.items() if k in wanted}


class KMeansAlgorithm(Algorithm):
    name = "kmeans"
    streaming = True
    metric_defs = M.KMEANS
    model_class = KMeansModel
    params = [
        Param("k", Integer(2), help="number of clusters"),
        Param("feature_dim", Integer(1), help="number of features; each record must have exactly this many"),
        Param("mini_batch_size", Integer(1), 5000, "records per streaming update"),
        Param("epochs", Integer(1), 1, "passes over the training data"),
        Param("init_method", Options(("random", "kmeans++")), "random", "how the streaming centres are seeded (first mini-batch)"),
        Param(
            "extra_center_factor",
            AnyOf((Options(("auto",)), Integer(1))),
            "auto",
            "streaming keeps k * this many centres, reduced to k at the end; auto = 4",
        ),
        Param("local_lloyd_max_iter", Integer(1), 300, "iterations of the final weighted Lloyd's reduction"),
        Param("local_lloyd_tol", Real(0), 0.0001, "tolerance of the final reduction"),
        Param("local_lloyd_init_method", Options(("kmeans++", "random")), "kmeans++", "seeding of the final reduction"),
        Param("local_lloyd_num_trials", AnyOf((Options(("auto",)), Integer(1))), "auto", "reduction restarts; auto = 10"),
        Param("half_life_time_size", Integer(0), 0, "records after which a centre's past weight halves; 0 = no decay"),
        Param("eval_metrics", ListOf(Options(("msd", "ssd"))), ["msd"], "metrics reported: msd, ssd (silhouette always)"),
        *COMMON,
    ]

    def __init__(self, hp, ctx):
        super().__init__(hp, ctx)
        factor = hp["extra_center_factor"]
        self.n_centers = hp["k"] * (4 if factor == "auto" else factor)
        self.centers: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.msd: float | None = None  # running mean squared distance to the closest centre

    # --- streaming state (also what a checkpoint holds)
    def state(self):
        return {"centers": self.centers, "counts": self.counts}, {"msd": self.msd}

    def load_state(self, arrays, meta):
        self.centers, self.counts = arrays["centers"].astype(np.float64), arrays["counts"].astype(np.float64)
        self.msd = meta["msd"]

    @property
    def init_sample_size(self) -> int:
        """Records the initial centres are drawn from: the centres themselves (random), or a pool (kmeans++)."""
        return self.n_centers * (INIT_POOL_FACTOR if self.hp["init_method"] == "kmeans++" else 1)

    def _init_centers(self, pool: np.ndarray) -> None:
        """``pool``: the sample of ``init_candidates``, in hash order."""
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

    def step(self, batch: Block) -> None:
        if self.centers is None:
            self._init_centers(smallest_hashes([init_candidates(batch.X, self.init_sample_size, self.hp["seed"])], self.init_sample_size))
        self.absorb([round_report(batch.X, self.centers, self.far_cap)], lambda: [batch_statistics(batch.X, self.centers)])

    @property
    def far_cap(self) -> int:
        """Far records a batch offers for reseeding: 4x the most centres one round may move."""
        return 4 * max(1, len(self.centers) // 4)

    def absorb(self, reports: list["RoundReport"], restat) -> None:
        """One round: reseed far, then move the centres by the batch's per-centre sums and counts.

        ``reports``: one per host (one in a single-host job). ``restat()`` recomputes the
        (sums, counts) of each host's batch when reseeding moved centres.
        """
        stats = restat() if self.reseed_far(reports) else [(r.sums, r.counts) for r in reports]
        self.update(sum(s for s, _ in stats), sum(c for _, c in stats))

    def reseed_far(self, reports: list["RoundReport"]) -> bool:
        """Move the least-used centres to records far from every centre (greedy farthest-first).

        "Far" is 4x the running mean squared distance to the closest centre. Without this,
        data sorted by cluster (common in files) leaves every centre seeded from the first
        batch in the first cluster, and the later clusters get only what they can drag.
        Candidates are each batch's ``far_cap`` farthest records. Returns whether a centre moved.
        """
        batch_msd = sum(r.d_sum for r in reports) / max(sum(r.n for r in reports), 1)
        typical = self.msd if self.msd is not None else batch_msd
        self.msd = batch_msd if self.msd is None else 0.9 * self.msd + 0.1 * batch_msd
        far_d = np.concatenate([r.far_d for r in reports])
        far = np.flatnonzero(far_d > 4.0 * typical) if typical > 0 else np.zeros(0, np.int64)
        budget = min(len(far), max(1, len(self.centers) // 4))
        if budget == 0 or self.counts.sum() == 0:
            return False
        victims = np.argsort(self.counts, kind="stable")[:budget]
        points = np.concatenate([r.far_X for r in reports])[far]
        dist = far_d[far].copy()
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

    def update(self, sums: np.ndarray, counts: np.ndarray) -> None:
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

    def fit(self, train, validation):
        stream_epochs(self, train, self.hp["epochs"], self.hp["mini_batch_size"], self.step)
        if len(self.centers) < self.hp["k"]:
            raise DataError(f"k={self.hp['k']} but the training data has only {len(self.centers)} records")
        return KMeansModel(self.reduce(), self.hp["eval_metrics"], self.hp["seed"])
