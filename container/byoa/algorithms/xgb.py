"""XGBoost: the real library (the CPU wheel, ``xgboost-cpu``) with the built-in XGBoost's hyperparameters,
per-round log lines and answers.

Training is xgboost's own. The reduction has two phases:
* ``gather``: every partition reads its training records into memory and says what it holds;
* ``boost``: one call runs ``xgb.train`` on every partition at once.

With several hosts, xgboost's collective synchronises the trees. The leader starts a ``RabitTracker`` and each
partition trains inside ``collective.CommunicatorContext`` on its own records, with its partition index as rank,
so the leader's partition is rank 0. This is what ``xgboost.dask`` does inside, without its dask.dataframe
import. One host trains the same way without a tracker.

The model is xgboost's JSON inside this image's artifacts: ``check`` validates its trees in Python before
xgboost's C++ parser sees it.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from ..cpus import available_cpus
from ..data.blocks import Block, gather, widened
from ..data.inputs import ChannelRule
from ..errors import ConfigError, DataError
from ..hyperparameters import Integer, ListOf, Options, Param, Real, Tune
from ..model_io import ArraySpec, ModelFormatError
from ..stats import metrics as M
from ..stats.links import softmax
from .base import COMMON, QUIET, WHOLE_PASS, Algorithm, Model, ScoreEvaluator, require_labels, test_channel

log = logging.getLogger("byoa.train")

OBJECTIVES = ("binary:logistic", "multi:softprob", "multi:softmax", "reg:squarederror", "reg:logistic", "count:poisson")
EVAL_METRICS = tuple(d.name for d in M.XGBOOST_ROUND)
TREE_METHODS = ("auto", "hist", "approx", "exact")
TRACKER_TIMEOUT = 300  # seconds the hosts have to reach the tracker


def task_of(objective: str) -> str:
    return "binary" if objective == "binary:logistic" else "multiclass" if objective.startswith("multi:") else "regression"


class XGBoostModel(Model):
    name = "xgboost"
    threshold = 0.5  # binary:logistic: predicted_label = 1 when score >= 0.5

    def __init__(self, model_json: bytes, objective: str, num_class: int, n_features: int, rounds: int):
        import xgboost as xgb

        self.model_json, self.objective, self.num_class = bytes(model_json), objective, num_class
        self.n_features, self.rounds = n_features, rounds
        self.booster = xgb.Booster()
        try:
            self.booster.load_model(bytearray(self.model_json))
        except xgb.core.XGBoostError as exc:  # ``check`` refuses what we know of; xgboost has the last word
            raise ModelFormatError(f"xgboost cannot load the model: {str(exc).splitlines()[0][:300]}") from None
        self.booster.set_param({"nthread": 1})  # a serving worker predicts on one core; gunicorn runs one per core

    @property
    def task(self) -> str:
        return task_of(self.objective)

    @property
    def positive_class(self) -> float | None:
        return 1.0 if self.task == "binary" else None

    @property
    def integer_outputs(self) -> tuple:
        return ("predicted_label",) if self.task != "regression" else ()

    @property
    def csv_outputs(self) -> tuple:
        """CSV answers are bare, as the built-in's: the probabilities, the class (multi:softmax), or the value."""
        return ("predicted_label",) if self.objective == "multi:softmax" else ("score",)

    @property
    def metric_defs(self):
        return M.XGBOOST

    def predict(self, X) -> dict:
        X = X if not isinstance(X, np.ndarray) else X.astype(np.float32, copy=False)
        rounds = (0, self.rounds)
        if self.task == "multiclass":
            margins = self.booster.inplace_predict(X, predict_type="margin", iteration_range=rounds)
            P = softmax(np.asarray(margins, np.float64).reshape(len(margins), -1))
            return {"score": P.astype(np.float32), "predicted_label": P.argmax(axis=1).astype(np.float32)}
        s = np.asarray(self.booster.inplace_predict(X, iteration_range=rounds), np.float32).reshape(-1)
        if self.task == "binary":
            return {"score": s, "predicted_label": (s >= self.threshold).astype(np.float32)}
        return {"score": s}

    def evaluator(self, role="test"):
        return ScoreEvaluator(self, self.num_class)

    def check_labels(self, y: np.ndarray, channel: str) -> None:
        check_labels(self.objective, self.num_class, y, channel)

    def to_artifacts(self):
        arrays = {"model": np.frombuffer(self.model_json, np.uint8)}
        return arrays, {"objective": self.objective, "num_class": self.num_class, "n_features": self.n_features,
                        "rounds": self.rounds}

    artifact_arrays = {"model": ArraySpec("u", [("bytes",)])}
    artifact_meta = {"objective": Options(OBJECTIVES), "num_class": Integer(0, 100_000), "n_features": Integer(1),
                     "rounds": Integer(1)}

    @classmethod
    def check(cls, arrays, meta, dims, owner):
        if arrays["model"].dtype != np.uint8:
            raise ModelFormatError(f"the {owner} model's array 'model' has dtype {arrays['model'].dtype}, not the bytes uint8")
        check_trees(bytes(arrays["model"]), meta, owner)

    @classmethod
    def from_artifacts(cls, arrays, meta):
        return cls(bytes(arrays["model"]), meta["objective"], meta["num_class"], meta["n_features"], meta["rounds"])


def check_trees(model_json: bytes, meta: dict, owner: str) -> None:
    """xgboost's JSON model as this image writes it: gbtree with numeric splits and scalar leaves; every tree a tree
    over the declared features, its arrays as long as its nodes, its parents and children agreeing; the tree
    counts, class assignments and round boundaries consistent. A crafted file is refused here, before xgboost's
    C++ parser reads it."""
    def bad(why: str):
        raise ModelFormatError(f"the {owner} model's xgboost trees are not valid: {why}")

    try:
        learner = json.loads(model_json.decode("utf-8"))["learner"]
        booster, params = learner["gradient_booster"], learner["learner_model_param"]
        model = booster["model"]
        trees, n_features, num_class = model["trees"], int(params["num_feature"]), int(params["num_class"])
        tree_info = np.asarray(model["tree_info"], np.int64)
        indptr = np.asarray(model["iteration_indptr"], np.int64)
        counts = (int(model["gbtree_model_param"]["num_trees"]), int(model["gbtree_model_param"]["num_parallel_tree"]))
        objective = learner["objective"]["name"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        bad("not xgboost's JSON model format")
    if booster.get("name") != "gbtree" or objective != meta["objective"]:
        bad(f"booster {booster.get('name')!r} with objective {objective!r}, expected gbtree with {meta['objective']}")
    if n_features != meta["n_features"] or num_class != meta["num_class"]:
        bad(f"{n_features} features and {num_class} classes, but the manifest says {meta['n_features']} and {meta['num_class']}")
    if not isinstance(trees, list) or counts != (len(trees), 1) or len(tree_info) != len(trees):
        bad("its tree counts disagree")
    per_round = max(num_class, 1)
    if ((tree_info < 0) | (tree_info >= per_round)).any() or len(indptr) < 2 or indptr[0] != 0 or indptr[-1] != len(trees) \
            or (np.diff(indptr) < 0).any() or len(indptr) - 1 < meta["rounds"]:
        bad(f"its trees do not make {meta['rounds']} rounds of {per_round}")
    for t, tree in enumerate(trees):
        _check_tree(tree, t, n_features, bad)


def _check_tree(tree, t: int, n_features: int, bad) -> None:
    try:
        n = int(tree["tree_param"]["num_nodes"])
        leaf_size, tree_features = tree["tree_param"]["size_leaf_vector"], int(tree["tree_param"]["num_feature"])
        left, right = np.asarray(tree["left_children"], np.int64), np.asarray(tree["right_children"], np.int64)
        parents, feature = np.asarray(tree["parents"], np.int64), np.asarray(tree["split_indices"], np.int64)
        values = np.asarray(tree["split_conditions"], np.float64)
        columns = [np.asarray(tree[k]) for k in ("base_weights", "default_left", "split_type", "loss_changes", "sum_hessian")]
        categorical = any(len(tree[k]) for k in ("categories", "categories_nodes", "categories_segments", "categories_sizes"))
    except (KeyError, TypeError, ValueError):
        bad(f"tree {t} lacks its node arrays")
    if n < 1 or any(len(a) != n or a.ndim != 1 for a in (left, right, parents, feature, values, *columns)):
        bad(f"tree {t}: node arrays of different lengths")
    if tree.get("id") != t or tree_features != n_features or leaf_size not in ("0", "1"):
        bad(f"tree {t}: its id, feature count or leaf size is not this model's")
    if categorical or (columns[2] != 0).any():
        bad(f"tree {t} has categorical splits, which this image does not train")
    inner = left != -1
    nodes = np.arange(n)
    if (inner != (right != -1)).any():
        bad(f"tree {t}: a node with one child")
    children = np.concatenate([left[inner], right[inner]])
    if (children <= np.concatenate([nodes[inner], nodes[inner]])).any() or (children >= n).any() \
            or not np.array_equal(np.sort(children), np.arange(1, n)):
        bad(f"tree {t}: not every node below the root is a later node with exactly one parent")
    if (parents[left[inner]] != nodes[inner]).any() or (parents[right[inner]] != nodes[inner]).any():
        bad(f"tree {t}: its parents disagree with its children")
    if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        bad(f"tree {t} splits on a feature beyond its {n_features}")
    if not np.isfinite(values).all():
        bad(f"tree {t} has a split or leaf value that is not finite")


def check_labels(objective: str, num_class: int, y: np.ndarray, channel: str) -> None:
    """The labels each objective takes, refused with one line before xgboost's C++ would say it its own way."""
    if objective.startswith("multi:"):
        bad = (y != np.round(y)) | (y < 0) | (y >= num_class)
        rule = f"class indices 0 to {num_class - 1} (num_class={num_class})"
    elif objective in ("binary:logistic", "reg:logistic"):
        bad, rule = (y < 0) | (y > 1), "labels in [0, 1]"
    elif objective == "count:poisson":
        bad, rule = y < 0, "labels >= 0"
    else:
        return
    if bad.any():
        raise DataError(f"channel '{channel}': objective={objective} needs {rule}; got {float(y[bad][0]):g}")


@dataclass
class Held:
    """What a partition holds after reading its training records."""

    records: int
    width: int  # of its widest training or validation record: the model's (text/libsvm records carry no width)
    validation: int

    def merge(self, other: "Held") -> "Held":
        return Held(self.records + other.records, max(self.width, other.width), self.validation + other.validation)


@dataclass
class Boosted:
    """The trained model, from rank 0 (every rank holds the same trees)."""

    model_json: bytes | None
    rounds: int
    n_features: int

    def merge(self, other: "Boosted") -> "Boosted":
        return self if self.model_json is not None else other


class XGBoostAlgorithm(Algorithm):
    name = "xgboost"
    in_memory = True
    collective = True
    metric_defs = M.XGBOOST
    model_class = XGBoostModel
    width_costs = "xgboost's per-feature histograms and column statistics"
    channels = [
        ChannelRule("train", "labelled records, read into memory in one pass (label first in CSV)", required=True),
        ChannelRule("validation", "scored after every round (validation-<metric> in the round lines) and used by "
                    "early_stopping_rounds"),
        test_channel(),
    ]
    objectives = {"binary": "test:roc_auc_score", "multiclass": "test:multiclass_accuracy", "regression": "test:rmse"}
    example = {"num_round": "10", "objective": "multi:softprob", "num_class": "3"}
    params = [
        Param("num_round", Integer(1, 100_000), help="boosting rounds", tune=Tune(10, 1000, "Logarithmic")),
        Param("objective", Options(OBJECTIVES), "reg:squarederror"),
        Param("num_class", Integer(2, 100_000), None, "classes, required for multi:softprob and multi:softmax"),
        Param("eta", Real(0, 1), 0.3, "step size shrinkage", tune=Tune(0.01, 0.5, "Logarithmic")),
        Param("max_depth", Integer(0, 64), 6, "deepest tree; 0: no limit (hist only)", tune=Tune(2, 12)),
        Param("min_child_weight", Real(0), 1.0, tune=Tune(0.1, 50.0, "Logarithmic")),
        Param("subsample", Real(0, 1, low_open=True), 1.0, tune=Tune(0.5, 1.0)),
        Param("colsample_bytree", Real(0, 1, low_open=True), 1.0, tune=Tune(0.3, 1.0)),
        Param("lambda", Real(0), 1.0, "L2 regularization", tune=Tune(0.001, 100.0, "Logarithmic")),
        Param("alpha", Real(0), 0.0, "L1 regularization", tune=Tune(0.001, 100.0, "Logarithmic")),
        Param("gamma", Real(0), 0.0, "minimum loss reduction of a split", tune=Tune(0.0, 5.0)),
        Param("scale_pos_weight", Real(0, low_open=True), 1.0, "weight of positive examples (binary)"),
        Param("tree_method", Options(TREE_METHODS), "auto", "auto: hist; exact runs on one host only"),
        Param("max_bin", Integer(2, 65_536), 256, "histogram bins per feature (hist, approx)"),
        Param("eval_metric", ListOf(Options(EVAL_METRICS)), None, "metrics printed each round; not set: the objective's"),
        Param("early_stopping_rounds", Integer(1), None, "stop when the validation channel's last metric has not improved "
              "for this many rounds (needs a validation channel)"),
        *COMMON,
    ]

    @classmethod
    def supervision(cls, hp):
        return "regressor" if task_of(hp["objective"]) == "regression" else "classifier"

    @classmethod
    def working_bytes(cls, hp, n_features):
        return 64 * n_features * max(hp["max_bin"], 16)

    def __init__(self, hp, ctx=QUIET, count=1, index=0):
        super().__init__(hp, ctx, count, index)
        objective = hp["objective"]
        if objective.startswith("multi:") and hp["num_class"] is None:
            raise ConfigError(f"objective={objective} needs num_class")
        if not objective.startswith("multi:") and hp["num_class"] is not None:
            raise ConfigError(f"num_class is for the multi:* objectives; objective={objective}")
        if hp["tree_method"] == "exact" and count > 1:
            raise ConfigError("tree_method=exact runs on one host (xgboost's distributed training uses hist or approx); "
                              "use tree_method=hist, or instance_count=1")
        self.held: Held | None = None  # leader: what the partitions hold
        self.boosted: Boosted | None = None
        self.block: Block | None = None  # partition side: its training records
        self.tracker = None

    @property
    def num_class(self) -> int:
        return self.hp["num_class"] or 0

    def round(self):
        return "gather", WHOLE_PASS  # then "boost" on the same records; the next round finds none and ends the job

    def broadcast(self, phase):
        if phase == "gather":
            return None
        return self._booster_params(), self.held.width, self._tracker_args()

    def _tracker_args(self) -> dict:
        """Several hosts: start xgboost's tracker on this host; its address is the one the other hosts reach."""
        if self.count == 1:
            return {}
        from xgboost.tracker import RabitTracker

        self.tracker = RabitTracker(n_workers=self.count, host_ip=self.ctx.address, sortby="task", timeout=TRACKER_TIMEOUT)
        self.tracker.start()
        return self.tracker.worker_args()

    def _booster_params(self) -> dict:
        hp = self.hp
        params = {k: hp[k] for k in ("objective", "eta", "max_depth", "min_child_weight", "subsample", "colsample_bytree",
                                     "lambda", "alpha", "gamma", "scale_pos_weight", "max_bin")}
        params.update(seed=hp["seed"], nthread=available_cpus(), verbosity=1,
                      tree_method="hist" if hp["tree_method"] == "auto" else hp["tree_method"])
        if self.num_class:
            params["num_class"] = self.num_class
        if hp["eval_metric"]:
            params["eval_metric"] = list(hp["eval_metric"])
        return params

    def partial(self, phase, shared, batches):
        if phase == "gather":
            self.block = gather(batches)
            if self.block is not None:
                check_labels(self.hp["objective"], self.num_class, require_labels(self.block, "train"), "train")
            validation = self.validation_records()
            width = max([b.n_features for b in validation] + [0 if self.block is None else self.block.n_features])
            return Held(0 if self.block is None else len(self.block), width, sum(len(b) for b in validation))
        return self._boost(*shared)

    def merge(self, phase, a, b):
        return a.merge(b)

    def update(self, phase, merged):
        if phase == "gather":
            if self.hp["early_stopping_rounds"] and not merged.validation:
                raise ConfigError("early_stopping_rounds needs a validation channel: it stops on the validation records' metric")
            self.held = merged
            return "boost"
        self.boosted = merged
        if self.tracker is not None:
            self.tracker.wait_for(TRACKER_TIMEOUT)
        return None

    def finish(self, validate) -> XGBoostModel:
        if self.boosted is None or self.boosted.model_json is None:
            raise DataError("channel 'train' has no records")
        b = self.boosted
        return XGBoostModel(b.model_json, self.hp["objective"], self.num_class, b.n_features, b.rounds)

    # --- partition side
    def _boost(self, params: dict, width: int, tracker: dict) -> Boosted:
        import xgboost as xgb

        X, y = self._records(width)
        validation = gather(self.validation_records())
        if validation is not None:
            check_labels(self.hp["objective"], self.num_class, require_labels(validation, "validation"), "validation")
        context = xgb.collective.CommunicatorContext(**tracker, dmlc_task_id=str(self.index)) if tracker else nullcontext()
        with context:  # the matrices too: building one is already collective (its width and sketches are agreed)
            train = xgb.DMatrix(X, label=y, nthread=params["nthread"])
            evals = [(train, "train")]
            if validation is not None:
                evals.append((xgb.DMatrix(_widened(validation.X, width), label=validation.y, nthread=params["nthread"]), "validation"))
            booster = xgb.train(params, train, num_boost_round=self.hp["num_round"], evals=evals,
                                early_stopping_rounds=self.hp["early_stopping_rounds"], verbose_eval=False,
                                callbacks=[round_lines()] if self.index == 0 else None)
        rounds = booster.best_iteration + 1 if self.hp["early_stopping_rounds"] else self.hp["num_round"]
        return Boosted(bytes(booster.save_raw("json")) if self.index == 0 else None, rounds, width)

    def _records(self, width: int):
        """This partition's records, as wide as the widest partition's (a partition may hold none)."""
        if self.block is None:
            return np.zeros((0, width), np.float32), np.zeros(0, np.float32)
        return _widened(self.block.X, width), self.block.y


def _widened(X, width: int):
    """Records as wide as the widest a partition holds (text/libsvm records carry no width)."""
    try:
        return widened(X, width)
    except ValueError:
        raise DataError(f"records have {X.shape[1]} features where other records have {width}") from None


def round_lines():
    """A callback printing each round's evaluation as xgboost does, with real tabs ("[3]\\ttrain-auc:0.91\\t
    validation-auc:0.88"): users' metric definitions for the built-in XGBoost parse these lines. Rank 0's process
    only, to its stdout (xgboost's own printer would go through the tracker)."""
    import xgboost as xgb

    class RoundLines(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            parts = (f"\t{data}-{metric}:{values[-1]:.5f}" for data, metrics in evals_log.items() for metric, values in metrics.items())
            print(f"[{epoch}]{''.join(parts)}", flush=True)
            return False

    return RoundLines()
