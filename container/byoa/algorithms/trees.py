"""Decision tree and random forest (scikit-learn, in memory), stored as flat node arrays.

All trees' nodes are concatenated into one set of arrays, so a prediction walks
every tree at once, one level per numpy step, with no Python loop over trees.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ..cpus import available_cpus
from ..data.blocks import Block, concat, gather
from ..data.inputs import ChannelRule
from ..data.limits import MAX_FEATURES
from ..errors import ConfigError, DataError, UserError
from ..hyperparameters import AnyOf, Boolean, Integer, Mapping, Options, Param, Real, Tune
from ..model_io import ArraySpec, ModelFormatError
from ..stats import metrics as M
from ..stats import selection
from ..stats.samples import nbytes
from ..stats.selection import BinaryThreshold
from .base import COMMON, QUIET, WHOLE_PASS, Algorithm, Evaluator, Model, require_labels, test_channel
from .tree_walk import Walker, forest_problem

log = logging.getLogger("byoa.train")

NONE = Options(("none",))


class TreeEnsembleModel(BinaryThreshold, Model):
    """Nodes of all trees: children (-1 at leaves), split feature and threshold, leaf value rows.

    With two classes, ``predicted_label`` is the second class when its probability reaches
    the decision threshold chosen on validation data.
    """

    def __init__(self, name, predictor_type, left, right, feature, split_threshold, value, roots, classes, selection=None,
                 n_features=None):
        self.name = name
        self.predictor_type = predictor_type
        self.left, self.right = left.astype(np.int64), right.astype(np.int64)
        self.feature, self.split_threshold = feature.astype(np.int64), split_threshold.astype(np.float64)
        self.value = value.astype(np.float64)  # (nodes, classes) probabilities, or (nodes, 1) for regression
        self.roots = roots.astype(np.int64)
        self.classes = classes.astype(np.float64)
        self.n_features = int(n_features) if n_features is not None else int(self.feature.max()) + 1
        self.selection = dict(selection or {})
        self.criterion = self.selection.get("criterion", "accuracy")
        self.targets = {k: self.selection.get(k, 0.8) for k in ("target_recall", "target_precision")}
        self.beta = self.selection.get("f_beta", 1.0)
        self.threshold = self.selection.get("threshold", 0.5)
        self.walker = Walker(self.left, self.right, self.feature, self.split_threshold, self.roots, self.n_features)

    @property
    def is_binary(self) -> bool:
        return self.predictor_type == "classifier" and len(self.classes) == 2

    @property
    def task(self) -> str:
        return "regression" if self.predictor_type == "regressor" else ("binary" if self.is_binary else "multiclass")

    @property
    def positive_class(self) -> float | None:
        return float(self.classes[1]) if self.is_binary else None

    @property
    def metric_defs(self):
        if self.predictor_type == "regressor":
            return M.REGRESSION
        return M.BINARY if len(self.classes) == 2 else M.MULTICLASS

    def warm_up(self) -> None:
        if self.walker.compiles:
            self.walker.compiled_trees()

    def predict(self, X) -> dict:
        mean = self.walker.mean_value(X, self.value)
        if self.predictor_type == "regressor":
            return {"score": mean[:, 0].astype(np.float32)}
        chosen = (mean[:, 1] >= self.threshold).astype(np.int64) if self.is_binary else mean.argmax(axis=1)
        return {"score": mean.astype(np.float32), "predicted_label": self.classes[chosen].astype(np.float32)}

    def evaluator(self, role="test"):
        return _TreeEvaluator(self)

    def to_artifacts(self):
        arrays = {k: getattr(self, k) for k in ("left", "right", "feature", "split_threshold", "value", "roots", "classes")}
        selection = {**self.selection, "criterion": self.criterion, **self.targets, "f_beta": self.beta, "threshold": self.threshold}
        return arrays, {"predictor_type": self.predictor_type, "name": self.name, "selection": selection, "n_features": self.n_features}

    artifact_arrays = {
        **{k: ArraySpec("i", [("nodes",)]) for k in ("left", "right", "feature")},
        "split_threshold": ArraySpec("f", [("nodes",)]),
        "value": ArraySpec("f", [("nodes", "outputs")]),
        "roots": ArraySpec("i", [("trees",)]),
        "classes": ArraySpec("f", [("classes",), (0,)]),  # none for a regressor
    }
    artifact_meta = {"name": Options(("decision-tree", "random-forest")), "predictor_type": Options(("classifier", "regressor")),
                     "n_features": Integer(1, MAX_FEATURES), "selection": Mapping(selection.SELECTION_META)}

    @classmethod
    def check(cls, arrays, meta, dims, owner):
        classes = arrays["classes"]
        if meta["predictor_type"] == "classifier":
            good = len(classes) == dims["outputs"] >= 1 and (np.diff(classes) > 0).all()
        else:
            good = len(classes) == 0 and dims["outputs"] == 1
        if not good:
            raise ModelFormatError(f"the {owner} model's classes {classes[:5].tolist()} and leaf values of width {dims['outputs']} do not "
                                   f"fit predictor_type={meta['predictor_type']} (classes: sorted, one value column each)")
        problem = forest_problem(arrays["left"], arrays["right"], arrays["feature"], arrays["roots"], meta["n_features"])
        if problem:
            raise ModelFormatError(f"the {owner} model's trees are not trees: {problem}")

    @classmethod
    def from_artifacts(cls, arrays, meta):
        nodes = (arrays[k] for k in ("left", "right", "feature", "split_threshold", "value", "roots", "classes"))
        return cls(meta["name"], meta["predictor_type"], *nodes, meta["selection"], meta["n_features"])


class _TreeEvaluator(Evaluator):
    def __init__(self, model: TreeEnsembleModel):
        self.model = model
        n = len(model.classes)
        if model.predictor_type == "regressor":
            self.acc = M.RegressionAccumulator()
        elif n == 2:
            self.acc = M.BinaryAccumulator()
        else:
            self.acc = M.MulticlassAccumulator(n + 1, 3)  # last class ("other"): labels never seen in training

    def add(self, block: Block) -> None:
        y = require_labels(block, self.channel)
        out = self.model.predict(block.X)
        classes = self.model.classes
        if isinstance(self.acc, M.RegressionAccumulator):
            self.acc.add(y, out["score"])
        elif isinstance(self.acc, M.BinaryAccumulator):
            self.acc.add((y == classes[1]).astype(np.float32), out["score"][:, 1])
        else:
            idx = M.class_index(classes, y)
            probs = np.hstack([out["score"], np.zeros((len(y), 1), np.float32)])
            self.acc.add(idx, probs)

    def result(self) -> dict:
        if isinstance(self.acc, M.RegressionAccumulator):
            return self.acc.result()
        classes = self.model.classes.tolist()
        if isinstance(self.acc, M.BinaryAccumulator):
            return self.acc.result(self.model.threshold, self.model.beta, classes[1], classes[0])
        return self.acc.result(self.model.beta, [*classes, "other"])


def _flatten(estimators, classifier: bool):
    lefts, rights, feats, thresholds, values, roots = [], [], [], [], [], []
    offset = 0
    for est in estimators:
        t = est.tree_
        roots.append(offset)
        leaf = t.children_left < 0
        lefts.append(np.where(leaf, -1, t.children_left + offset))
        rights.append(np.where(leaf, -1, t.children_right + offset))
        feats.append(np.where(leaf, -2, t.feature))
        thresholds.append(t.threshold)
        v = t.value[:, 0, :].astype(np.float64)
        if classifier:
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
        values.append(v)
        offset += t.node_count
    return [np.concatenate(a) for a in (lefts, rights, feats, thresholds, values)] + [np.array(roots)]


def join_forests(parts: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """One forest (as artifacts) from several, trees in the order given; leaf values are mapped onto the
    union of their classes. Joining is associative, so hosts' forests may be joined in any grouping."""
    arrays0, meta0 = parts[0]
    classifier = meta0["predictor_type"] == "classifier"
    classes = np.unique(np.concatenate([a["classes"] for a, _ in parts])) if classifier else np.zeros(0)
    nodes = {k: [] for k in ("left", "right", "feature", "split_threshold", "value", "roots")}
    offset = 0
    for arrays, meta in parts:
        left, right = arrays["left"], arrays["right"]
        nodes["left"].append(np.where(left < 0, -1, left + offset))
        nodes["right"].append(np.where(right < 0, -1, right + offset))
        nodes["feature"].append(arrays["feature"])
        nodes["split_threshold"].append(arrays["split_threshold"])
        value = arrays["value"]
        if classifier:
            wide = np.zeros((len(value), len(classes)))
            wide[:, np.searchsorted(classes, arrays["classes"])] = value
            value = wide
        nodes["value"].append(value)
        nodes["roots"].append(arrays["roots"] + offset)
        offset += len(left)
    joined = {k: np.concatenate(v) for k, v in nodes.items()}
    joined["classes"] = classes
    return joined, {**meta0, "n_features": max(meta["n_features"] for _, meta in parts)}  # libsvm: hosts' widths differ


class _TreeAlgorithm(Algorithm):
    in_memory = True
    width_costs = "scikit-learn's per-feature work arrays, one set per tree grown at once"

    @classmethod
    def working_bytes(cls, hp, n_features):
        return 32 * n_features * (available_cpus() if cls.name == "random-forest" else 1)
    metric_defs = M.BINARY + M.MULTICLASS + M.REGRESSION
    model_class = TreeEnsembleModel
    channels = [
        ChannelRule("train", "labelled records, read into memory in one pass (label first in CSV)", required=True),
        ChannelRule("validation", "a binary classifier's decision threshold is chosen on it; without it, on a held-out share "
                    "of train (threshold_fraction)"),
        test_channel(),
    ]
    objectives = {"binary": "validation:roc_auc_score", "multiclass": "test:multiclass_accuracy", "regression": "test:rmse"}
    example = {"predictor_type": "classifier"}
    common = [
        Param("predictor_type", Options(("classifier", "regressor")), "classifier"),
        Param("max_depth", AnyOf((NONE, Integer(1))), "none", "none: grow until leaves are pure or min_samples_* stop it",
              tune=Tune(2, 30)),
        Param("max_leaf_nodes", AnyOf((NONE, Integer(2))), "none"),
        Param("min_samples_split", Integer(2), 2, tune=Tune(2, 50)),
        Param("min_samples_leaf", Integer(1), 1, tune=Tune(1, 50)),
        Param("min_impurity_decrease", Real(0), 0.0, tune=Tune(0.0, 0.05)),
        Param("max_features", AnyOf((Options(("auto", "sqrt", "log2", "all")), Real(0, 1, low_open=True))), "auto",
              "features considered per split; auto: sqrt for a forest classifier, all otherwise",
              tune=Tune(values=("sqrt", "log2", "all"))),
        Param("criterion", Options(("auto", "gini", "entropy", "log_loss", "squared_error", "absolute_error", "friedman_mse", "poisson")), "auto",
              "auto: gini (classifier) or squared_error (regressor)"),
        Param("class_weight", Options(("none", "balanced")), "none", "classifier only"),
        Param("feature_dim", AnyOf((Options(("auto",)), Integer(1))), "auto"),
        *selection.PARAMS,
        *COMMON,
    ]

    def _options(self) -> dict:
        hp = self.hp
        classifier = hp["predictor_type"] == "classifier"
        criterion = hp["criterion"]
        if criterion == "auto":
            criterion = "gini" if classifier else "squared_error"
        allowed = ("gini", "entropy", "log_loss") if classifier else ("squared_error", "absolute_error", "friedman_mse", "poisson")
        if criterion not in allowed:
            raise ConfigError(f"criterion={criterion} does not fit predictor_type={hp['predictor_type']}; use one of: {', '.join(allowed)}")
        opts = {
            "criterion": criterion,
            "max_depth": None if hp["max_depth"] == "none" else hp["max_depth"],
            "max_leaf_nodes": None if hp["max_leaf_nodes"] == "none" else hp["max_leaf_nodes"],
            "min_samples_split": hp["min_samples_split"],
            "min_samples_leaf": hp["min_samples_leaf"],
            "min_impurity_decrease": hp["min_impurity_decrease"],
            "max_features": None if hp["max_features"] in ("all", "auto") else hp["max_features"],
            "random_state": hp["seed"],
        }
        if classifier:
            opts["class_weight"] = None if hp["class_weight"] == "none" else "balanced"
        return opts

    @classmethod
    def uses_validation(cls, hp: dict, labels=None) -> bool:
        """Binary classifiers choose their decision threshold on validation data."""
        binary = labels is None or len(np.unique(labels[~np.isnan(labels)])) == 2
        return hp["predictor_type"] == "classifier" and binary

    def estimator(self, n_trees: int, seed: int):
        raise NotImplementedError

    def grow(self, block: Block, n_trees: int, seed: int) -> tuple[dict, dict]:
        """Trees fitted on ``block`` (scikit-learn), as the artifacts of a TreeEnsembleModel."""
        y = require_labels(block, "train")
        if self.hp["predictor_type"] == "classifier" and (bad := y[y != np.round(y)]).size:
            raise DataError(f"channel 'train': predictor_type=classifier needs whole-number class labels; found {bad[0]:g} "
                            "(for a numeric target, use predictor_type=regressor)")
        log.info("%s: fitting %d tree%s on %d records x %d features in memory", self.name, n_trees, "s" * (n_trees > 1),
                 len(block), block.n_features)
        est = self.estimator(n_trees, seed)
        est.fit(block.X, y)
        trees = est.estimators_ if hasattr(est, "estimators_") else [est]
        classifier = self.hp["predictor_type"] == "classifier"
        left, right, feature, threshold, value, roots = _flatten(trees, classifier)
        classes = est.classes_ if classifier else np.zeros(0)
        choice = {k: self.hp[k] for k in ("target_recall", "target_precision", "f_beta")}
        choice["criterion"] = self.hp["binary_classifier_model_selection_criteria"]
        return TreeEnsembleModel(self.name, self.hp["predictor_type"], left, right, feature, threshold, value, roots,
                                 np.asarray(classes), choice, block.n_features).to_artifacts()


class DecisionTreeAlgorithm(_TreeAlgorithm):
    """One tree needs every training record in one place: the partitions send their training part to the
    leader if it fits in the leader's memory; the job fails otherwise, recommending random-forest."""

    name = "decision-tree"
    params = _TreeAlgorithm.common
    # test, not validation: whether records are held out for a threshold depends on the tuned limits (uses_validation)
    objectives = {**_TreeAlgorithm.objectives, "binary": "test:roc_auc_score"}

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        self.block: Block | None = None  # partition side: its training part; leader: all of them

    @classmethod
    def uses_validation(cls, hp: dict, labels=None) -> bool:
        """A tree grown until its leaves are pure predicts probabilities 0 or 1: there is no threshold to choose, so
        no records are held out for one. Limits that leave impure leaves make the threshold matter again."""
        pure = (hp["max_depth"] == "none" and hp["max_leaf_nodes"] == "none" and hp["min_samples_leaf"] == 1
                and hp["min_samples_split"] == 2 and hp["min_impurity_decrease"] == 0)
        return not pure and super().uses_validation(hp, labels)

    def estimator(self, n_trees, seed):
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        cls = DecisionTreeClassifier if self.hp["predictor_type"] == "classifier" else DecisionTreeRegressor
        return cls(**self._options())

    # --- the reduction: one pass; the leader gathers the records (after checking that they fit, with several hosts)
    def round(self):
        return ("size" if self.count > 1 else "gather"), WHOLE_PASS

    def partial(self, phase, shared, batches):
        if self.block is None:
            self.block = gather(batches)
        if self.block is None:
            return None
        return (nbytes(self.block),) if phase == "size" else self.block

    def merge(self, phase, a, b):
        return (a[0] + b[0],) if phase == "size" else concat([a, b])

    def update(self, phase, merged):
        if phase == "gather":
            self.block = merged
            return None
        limit = gather_limit()
        if merged[0] > limit:
            raise UserError(
                f"decision-tree trains one tree on all records in one place: the hosts' training data is "
                f"{merged[0] / 1e6:,.0f} MB, more than the {limit / 1e6:,.0f} MB the first host can hold (a third of its "
                f"available memory, or TRAIN_GATHER_LIMIT_MB); use algorithm=random-forest, which grows trees on every "
                f"host, or fewer, larger instances"
            )
        log.info("decision-tree: gathering %.1f MB of training data on the first host", merged[0] / 1e6)
        return "gather"

    def finish(self, validate):
        if self.block is None:
            raise DataError("channel 'train' has no records")
        return TreeEnsembleModel.from_artifacts(*self.grow(self.block, 1, self.hp["seed"]))


class RandomForestAlgorithm(_TreeAlgorithm):
    """Each partition grows its share of ``n_estimators`` on every training record it holds (seeded per partition),
    and the forests join into one: with FullyReplicated data, trees like the single host's; with ShardedByS3Key,
    each host's trees see its own files."""

    name = "random-forest"
    deals_training = False
    params = [
        Param("n_estimators", Integer(1, 10000), 100, "number of trees", tune=Tune(10, 500, "Logarithmic")),
        Param("bootstrap", Boolean(), True),
        Param("max_samples", AnyOf((NONE, Real(0, 1, low_open=True))), "none", "fraction of records per tree when bootstrap",
              tune=Tune(0.1, 1.0)),
        *_TreeAlgorithm.common,
    ]

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        self.forest: tuple[dict, dict] | None = None

    def estimator(self, n_trees, seed):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        opts = {**self._options(), "random_state": seed}
        if self.hp["max_features"] == "auto" and self.hp["predictor_type"] == "classifier":
            opts["max_features"] = "sqrt"
        cls = RandomForestClassifier if self.hp["predictor_type"] == "classifier" else RandomForestRegressor
        return cls(
            n_estimators=n_trees,
            bootstrap=self.hp["bootstrap"],
            max_samples=None if self.hp["max_samples"] == "none" else self.hp["max_samples"],
            n_jobs=available_cpus(),
            **opts,
        )

    def shares(self) -> list[int]:
        total, n = self.hp["n_estimators"], self.count
        return [total // n + (i < total % n) for i in range(n)]

    # --- the reduction: one pass; each partition grows its trees, the forests join
    def round(self):
        if self.count > 1 and self.forest is None:
            log.info("random-forest: %s trees per host", "+".join(map(str, self.shares())))
        return "grow", WHOLE_PASS

    def partial(self, phase, shared, batches):
        block = gather(batches)
        n_trees = self.shares()[self.index]
        if block is None or n_trees == 0:
            return None
        return self.grow(block, n_trees, (self.hp["seed"] + 7919 * self.index) % 2**32)

    def merge(self, phase, a, b):
        return join_forests([a, b])

    def update(self, phase, merged):
        self.forest = merged
        return None

    def finish(self, validate):
        if self.forest is None:
            raise DataError("channel 'train' has no records")
        return TreeEnsembleModel.from_artifacts(*self.forest)


MEMORY_SHARE = 3  # a gathered decision tree may use a third of the leader's available memory


def gather_limit() -> int:
    """Most bytes of training records the leader gathers for one decision tree."""
    given = os.environ.get("TRAIN_GATHER_LIMIT_MB")
    if given:
        return int(float(given) * 1e6)
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    return available // MEMORY_SHARE
