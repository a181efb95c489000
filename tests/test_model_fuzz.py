"""Crafted model artifacts, written as someone who edits a model would (the checksum recomputed): each one is
refused with a ModelFormatError, or predicts what a plain reference evaluator computes from the same arrays and
meta. No hang (a 60 s guard turns one into a failure), no crash, no other exception.

Values are mutated within +-1e6 and to NaN/infinity: how far finite numbers may go before float arithmetic
itself overflows is a numerical question, not a structural one. FUZZ_EXAMPLES sets the cases per model kind.
"""

from __future__ import annotations

import faulthandler
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoa import model_io
from byoa.algorithms import ALGORITHMS, model_from_artifacts
from conftest import MODELS, seal

# crafted values overflow on purpose (casts, products): the outcome is what is checked, not numpy's warnings
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::numpy.exceptions.ComplexWarning")
EXAMPLES = max(20, int(os.environ.get("FUZZ_EXAMPLES", "300")) // 2)
fuzz = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
DTYPES = ["float32", "float64", "float16", "int8", "int32", "int64", "uint16", "uint64", "bool", "complex64", "<U3", "<M8[s]"]


def _value(draw, a: np.ndarray, i: int):
    size = a.shape[0] if a.ndim else 1
    if a.dtype.kind in "iu":
        special = [-3, -2, -1, 0, 1, i, i - 1, i + 1, size - 1, size, size + 1, 2**31 - 1, -2**31, 2**62, -2**62]
        return draw(st.sampled_from(special) | st.integers(-3, size + 3))
    return draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e6, -1e6]) | st.floats(-1e6, 1e6))


@st.composite
def mutations(draw, arrays: dict, meta: dict, algorithm: str):
    """(algorithm, arrays, meta) with one to three changes of one kind each."""
    arrays = {k: v.copy() for k, v in arrays.items()}
    meta = json.loads(json.dumps(meta))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "value", "value", "shape", "dtype", "names", "meta", "meta", "algorithm"]))
        name = draw(st.sampled_from(sorted(arrays))) if arrays else None
        if kind == "value" and name and arrays[name].size and arrays[name].dtype.kind in "iuf":
            a = arrays[name]
            flat = draw(st.integers(0, a.size - 1))
            v = _value(draw, a, flat // max(1, a.size // max(1, a.shape[0])))
            try:
                a.reshape(-1)[flat] = v
            except (OverflowError, ValueError):
                a.reshape(-1)[flat] = 0
        elif kind == "shape" and name:
            a = arrays[name]
            how = draw(st.sampled_from(["drop", "add", "axis", "empty", "transpose"]))
            arrays[name] = {"drop": lambda: a[:-1], "add": lambda: np.concatenate([a, a[-1:]]) if a.size else a[None],
                            "axis": lambda: a[..., None], "empty": lambda: a[:0], "transpose": lambda: a.T}[how]()
        elif kind == "dtype" and name:
            try:
                arrays[name] = arrays[name].astype(draw(st.sampled_from(DTYPES)))
            except (ValueError, OverflowError, RuntimeError):  # text that is no number or date
                pass
        elif kind == "names":
            if name and draw(st.booleans()):
                del arrays[name]
            else:
                arrays[draw(st.sampled_from(["extra", "X", "centers", "left", "W"]))] = np.zeros(3)
        elif kind == "meta":
            nested = meta["selection"] if isinstance(meta.get("selection"), dict) else {}
            keys = sorted(meta) + [f"selection.{k}" for k in sorted(nested)]
            key = draw(st.sampled_from(keys)) if keys else "x"
            holder, key = (meta["selection"], key[10:]) if key.startswith("selection.") else (meta, key)
            if draw(st.integers(0, 5)) == 0:
                holder.pop(key, None)
            else:
                holder[key] = draw(JSON | st.sampled_from(["classifier", "regressor", "L2", "COSINE", "accuracy", 0.5, 1, 2**40]))
        elif kind == "algorithm":
            algorithm = draw(st.sampled_from(sorted(ALGORITHMS) + ["", "../x", "kmeans\n"]))
    return algorithm, arrays, meta


def _write(folder, algorithm, arrays, meta):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "model.npz", **arrays)
    seal(folder, {"format_version": model_io.FORMAT_VERSION, "algorithm": algorithm, "arrays": "model.npz", "meta": meta})


# ----------------------------------------------------------------------------- reference evaluators: plain formulas


def _sigmoid(z):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def _reference_linear(arrays, meta, X):
    S = ((X.astype(np.float64) - arrays["mean"]) / arrays["scale"]) @ arrays["W"].astype(np.float64) + arrays["b"]
    kind = meta["predictor_type"]
    if kind == "binary_classifier":
        score = _sigmoid(S[:, 0])
        return {"score": score, "predicted_label": (score >= meta["threshold"]) * 1.0}, np.abs(score - meta["threshold"]) > 1e-6
    if kind == "multiclass_classifier":
        E = np.exp(S - S.max(axis=1, keepdims=True))
        P = E / E.sum(axis=1, keepdims=True)
        top = np.sort(P, axis=1)
        return {"score": P, "predicted_label": P.argmax(axis=1) * 1.0}, top[:, -1] - top[:, -2] > 1e-6
    return {"score": S[:, 0] * meta["label_scale"] + meta["label_mean"]}, None


def _reference_trees(arrays, meta, X):
    left, right, feature, threshold = arrays["left"], arrays["right"], arrays["feature"], arrays["split_threshold"]
    total = np.zeros((len(X), arrays["value"].shape[1]))
    for r, x in enumerate(X):
        for root in arrays["roots"]:
            node = int(root)
            while feature[node] >= 0:
                node = int(left[node] if x[feature[node]] <= threshold[node] else right[node])
            total[r] += arrays["value"][node]
    mean = total / len(arrays["roots"])
    if meta["predictor_type"] == "regressor":
        return {"score": mean[:, 0]}, None
    classes = arrays["classes"]
    if len(classes) == 2:
        t = meta["selection"].get("threshold", 0.5)
        return {"score": mean, "predicted_label": classes[(mean[:, 1] >= t) * 1]}, np.abs(mean[:, 1] - t) > 1e-9
    top = np.sort(mean, axis=1)
    return {"score": mean, "predicted_label": classes[mean.argmax(axis=1)]}, top[:, -1] - top[:, -2] > 1e-9 if mean.shape[1] > 1 else None


def _reference_kmeans(arrays, meta, X):
    d = ((X[:, None, :].astype(np.float64) - arrays["centers"][None]) ** 2).sum(axis=2)
    top = np.sort(d, axis=1)
    clear = top[:, 1] - top[:, 0] > 1e-3 * (1 + top[:, 0]) if d.shape[1] > 1 else None
    return {"closest_cluster": d.argmin(axis=1) * 1.0, "distance_to_cluster": np.sqrt(d.min(axis=1))}, clear


def _reference_pca(arrays, meta, X):
    return {"projection": (X.astype(np.float64) - arrays["mean"]) @ arrays["components"].T.astype(np.float64)}, None


def _reference_fm(arrays, meta, X):
    """The pair term written as its definition, every pair i < j, not as the identity the model uses."""
    X, V = X.astype(np.float64), arrays["V"].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        pairs = np.triu(V @ V.T, 1)
        S = arrays["w0"][0] + X @ arrays["w"].astype(np.float64) + np.einsum("ri,ij,rj->r", X, pairs, X)
    if meta["predictor_type"] == "regressor":
        return {"score": S}, None
    score = _sigmoid(S)
    return {"score": score, "predicted_label": (score >= 0.5) * 1.0}, np.abs(score - 0.5) > 1e-6


def _reference_xgboost(arrays, meta, X):
    """Every tree walked from the JSON as written (numeric splits: x < threshold goes left; missing: default_left),
    leaf values summed per class onto the base margin."""
    learner = json.loads(bytes(arrays["model"]))["learner"]
    model = learner["gradient_booster"]["model"]
    base = np.atleast_1d(np.asarray(json.loads(learner["learner_model_param"]["base_score"]), np.float64))
    classes = max(meta["num_class"], 1)
    logistic = meta["objective"] in ("binary:logistic", "reg:logistic")
    margin = np.tile(np.log(base / (1 - base)) if logistic else np.log(base) if meta["objective"] == "count:poisson" else base,
                     (len(X), 1))[:, :classes]
    for tree, k in zip(model["trees"][: model["iteration_indptr"][meta["rounds"]]], model["tree_info"]):
        left, right, feature, value = tree["left_children"], tree["right_children"], tree["split_indices"], tree["split_conditions"]
        for r, x in enumerate(X):
            node = 0
            while left[node] != -1:
                v = x[feature[node]]
                node = (left[node] if tree["default_left"][node] else right[node]) if np.isnan(v) else (
                    left[node] if v < value[node] else right[node])
            margin[r, k] += value[node]
    if meta["objective"].startswith("multi:"):
        P = np.exp(margin - margin.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        top = np.sort(P, axis=1)
        return {"score": P, "predicted_label": P.argmax(axis=1) * 1.0}, top[:, -1] - top[:, -2] > 1e-6
    if meta["objective"] == "binary:logistic":
        score = _sigmoid(margin[:, 0])
        return {"score": score, "predicted_label": (score >= 0.5) * 1.0}, np.abs(score - 0.5) > 1e-6
    return {"score": _sigmoid(margin[:, 0]) if logistic else np.exp(margin[:, 0]) if meta["objective"] == "count:poisson"
            else margin[:, 0]}, None


REFERENCES = {"xgboost": _reference_xgboost, "linear-learner": _reference_linear, "decision-tree": _reference_trees, "random-forest": _reference_trees,
              "kmeans": _reference_kmeans, "pca": _reference_pca, "knn": None, "factorization-machines": _reference_fm}


def _compare(model, algorithm, arrays, meta, X):
    got = model.predict(X)
    rows = len(X)
    for name, values in got.items():
        assert len(values) == rows, name
    reference = REFERENCES[algorithm]
    if reference is None:  # k-NN: its outputs are sample labels and distances, checked for shape and finiteness
        assert np.isin(got["predicted_label"], np.unique(arrays["y"])).all() or meta["predictor_type"] == "regressor"
        assert np.isfinite(got["distances"]).all() or meta["metric"] != "L2"
        return
    want, clear = reference(arrays, meta, X)
    assert set(want) <= set(got), (set(want), set(got))
    for name, expected in want.items():
        mask = clear if name in ("predicted_label", "closest_cluster") and clear is not None else slice(None)
        with np.errstate(invalid="ignore", over="ignore"):  # outputs are float32 by contract: so is the reference
            actual, expected = np.asarray(got[name], np.float64)[mask], np.asarray(expected, np.float32).astype(np.float64)[mask]
            scale = np.maximum(1.0, np.abs(expected))
            close = (np.abs(actual - expected) <= 1e-3 * scale) | (np.isnan(actual) & np.isnan(expected)) | (actual == expected)
        assert close.all(), (name, actual[~close][:3], expected[~close][:3])


@pytest.mark.parametrize("case", sorted(MODELS))
def test_a_crafted_model_is_refused_or_predicts_like_the_reference(case, trained, tmp_path):
    job, X = trained(case)
    manifest, arrays = model_io.load(job.root / "model")
    rng = np.random.default_rng(0)
    counter = iter(range(10**9))
    seen = {"refused": 0, "loaded": 0}

    @fuzz
    @given(mutations(arrays, manifest["meta"], manifest["algorithm"]))
    def check(mutated):
        algorithm, new_arrays, meta = mutated
        folder = tmp_path / f"m{next(counter)}"
        _write(folder, algorithm, new_arrays, meta)
        faulthandler.dump_traceback_later(60, exit=True)
        try:
            try:
                loaded_manifest, loaded = model_io.load(folder)
                model = model_from_artifacts(loaded_manifest["algorithm"], loaded, loaded_manifest["meta"])
            except model_io.ModelFormatError as exc:
                assert str(exc) and "\n" not in str(exc)
                seen["refused"] += 1
                return
            seen["loaded"] += 1
            width = model.n_features
            Q = X[:600] if X.shape[1] == width else rng.normal(size=(600, width)).astype(np.float32)
            Q = np.concatenate([Q, Q * 3, rng.normal(size=Q.shape).astype(np.float32)])[:600]
            if hasattr(model, "warm_up"):
                model.warm_up()
            checked = {**meta, **model_io.check_meta(type(model).artifact_meta, meta, algorithm)}
            _compare(model, algorithm, loaded, checked, Q)
        finally:
            faulthandler.cancel_dump_traceback_later()
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()

    check()
    assert seen["refused"] and seen["loaded"], seen  # the strategies reach both outcomes


def test_every_algorithm_declares_its_artifacts_and_is_fuzzed():
    """A new algorithm's model must say what its artifacts are (serve refuses anything else), and have a MODELS case."""
    fuzzed = {hp["algorithm"] for _, hp in MODELS.values()}
    for name, algorithm in ALGORITHMS.items():
        assert algorithm.model_class.artifact_arrays, name
        assert name in fuzzed, f"add a {name} case to MODELS in tests/conftest.py"
        assert name in REFERENCES, f"add a reference evaluator for {name} (or None) to REFERENCES"

