"""Trees across hosts.

random-forest: each host grows its share of ``n_estimators`` on its own records (seeded
per host), and the leader joins the trees into one forest over the classes of all hosts.
decision-tree: one tree needs every record in one place, so the hosts send their training
part to the leader when it fits in the leader's memory, and the job fails otherwise,
recommending random-forest.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ..algorithms.trees import DecisionTreeAlgorithm, RandomForestAlgorithm, TreeEnsembleModel
from ..data.blocks import concat
from ..errors import DataError, UserError
from ..evaluation.views import MemoryChannel
from .hosts import epoch_done

log = logging.getLogger("byoa.train")

MEMORY_SHARE = 3  # a gathered decision tree may use a third of the leader's available memory


def _hold_training_part(session):
    """Read this host's training part (in memory: one block) once, and keep it for the next call."""
    session.start_pass(2**62)
    session.scratch["block"] = block = session.next_batch()
    return block


def _train_part(session):
    return session.scratch.pop("block")


def _classes(session) -> np.ndarray:
    block = _hold_training_part(session)
    return np.zeros(0) if block is None or block.y is None else np.unique(block.y)


def _grow(session, n_trees: int):
    block = session.scratch.pop("block")
    if block is None or n_trees == 0:
        return None
    hp = {**session.hp, "n_estimators": n_trees, "seed": (session.hp["seed"] + 7919 * session.index) % 2**32}
    model = RandomForestAlgorithm(hp, session.ctx).fit(MemoryChannel("train", block, 0), None)
    return model.to_artifacts()


def _nbytes(block) -> int:
    X = block.X
    return int(sum(a.nbytes for a in (X.data, X.indices, X.indptr))) if hasattr(X, "indptr") else int(X.nbytes)


def _part_size(session) -> int:
    block = _hold_training_part(session)
    return 0 if block is None else _nbytes(block)


def join_forests(parts: list[tuple[dict, dict]], classes: np.ndarray) -> TreeEnsembleModel:
    """One forest from the hosts' forests; leaf values are mapped onto the classes of all hosts."""
    nodes = {k: [] for k in ("left", "right", "feature", "split_threshold", "value", "roots")}
    offset = 0
    for arrays, meta in parts:
        left, right = arrays["left"], arrays["right"]
        nodes["left"].append(np.where(left < 0, -1, left + offset))
        nodes["right"].append(np.where(right < 0, -1, right + offset))
        nodes["feature"].append(arrays["feature"])
        nodes["split_threshold"].append(arrays["split_threshold"])
        value = arrays["value"]
        if meta["predictor_type"] == "classifier":
            wide = np.zeros((len(value), len(classes)))
            wide[:, np.searchsorted(classes, arrays["classes"])] = value
            value = wide
        nodes["value"].append(value)
        nodes["roots"].append(arrays["roots"] + offset)
        offset += len(left)
    arrays, meta = parts[0]
    joined = {k: np.concatenate(v) for k, v in nodes.items()}
    return TreeEnsembleModel(meta["name"], meta["predictor_type"], joined["left"], joined["right"], joined["feature"],
                             joined["split_threshold"], joined["value"], joined["roots"], classes, meta["selection"],
                             meta["n_features"])


def fit_forest(hosts, algo: RandomForestAlgorithm) -> TreeEnsembleModel:
    labels = hosts.call(_classes, what="reading its data")
    epoch_done(hosts, algo.ctx, 0, 1)
    classes = np.unique(np.concatenate(labels)) if algo.hp["predictor_type"] == "classifier" else np.zeros(0)
    n, total = len(hosts), algo.hp["n_estimators"]
    shares = [total // n + (i < total % n) for i in range(n)]
    log.info("random-forest: %s trees per host (%s)", "+".join(map(str, shares)), ", ".join(hosts.names))
    parts = [p for p in hosts.call(_grow, each=[(s,) for s in shares], what="growing its trees") if p is not None]
    if not parts:
        raise DataError("channel 'train' has no records on any host")
    return join_forests(parts, classes)


def _memory_limit() -> int:
    given = os.environ.get("TRAIN_GATHER_LIMIT_MB")
    if given:
        return int(float(given) * 1e6)
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    return available // MEMORY_SHARE


def fit_tree(hosts, algo: DecisionTreeAlgorithm) -> TreeEnsembleModel:
    sizes = hosts.call(_part_size, what="measuring its data")
    limit = _memory_limit()
    if sum(sizes) > limit:
        raise UserError(
            f"decision-tree trains one tree on all records in one place: the hosts' training data is "
            f"{sum(sizes) / 1e6:,.0f} MB ({', '.join(f'{h} {s / 1e6:,.0f} MB' for h, s in zip(hosts.names, sizes))}), "
            f"more than the {limit / 1e6:,.0f} MB the first host can hold (a third of its available memory, or "
            f"TRAIN_GATHER_LIMIT_MB); use algorithm=random-forest, which grows trees on every host, or fewer, larger instances"
        )
    log.info("decision-tree: gathering %.1f MB of training data on %s", sum(sizes) / 1e6, hosts.names[0])
    blocks = [b for b in hosts.call(_train_part, what="sending its training part") if b is not None]
    epoch_done(hosts, algo.ctx, 0, 1)
    if not blocks:
        raise DataError("channel 'train' has no records on any host")
    block = concat(blocks)
    return algo.fit(MemoryChannel("train", block, sum(sizes)), None)
