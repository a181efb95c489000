"""Model quality at default hyperparameters: every algorithm, with only its required hyperparameters, against
scikit-learn's reference estimator fitted in the same run on the same split.

Data: the sets that ship inside scikit-learn (breast cancer, wine, digits, diabetes, iris) and seeded
make_classification / make_regression / make_blobs sets, among them one of 50k x 50 and a 95/5 imbalanced
binary set. 80/20 split, the 20% given as the `test` channel. Sets with under 1,000 test rows are split
5 times (seeds 0-4) and each figure is averaged.

The 50k set runs a second time in RecordIO-protobuf (rows "... recordio"), SageMaker's binary format: the
fit phase includes reading the data, and parsing 24 MB of CSV alone takes longer than some references' fits.

Targets (issue 12), one-sided (ours may be better): accuracy, and ROC AUC for models with scores, at most
0.01 below the reference; R2 at most 0.02 below; k-means mean squared distance <= 1.05x KMeans(n_init=10)'s;
PCA explained variance at most 0.01 below; our fit phase (as the log times it) <= 3x the reference's fit on
the 50k set, on one host (k-NN exempt: its reference only stores the data). ``--hosts 2`` runs the binary
and regression rows with 2 hosts on loopback (FullyReplicated), against the same bounds.

    python bench/quality.py [--hosts N] [FILTER ...]     (FILTER: substrings of row names, e.g. digits linear)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "container"))
sys.path.insert(0, str(ROOT / "local_test"))

from train_cluster import cluster_env, host_names, write_config  # noqa: E402

TRAIN = ROOT / "container" / "train"
SPLITS = 5  # for sets with under 1,000 test rows
TIMED = "large"  # the 50k x 50 set: fit times compared


def datasets() -> dict:
    """name -> (X, y or None, task): task is binary, multiclass, regression or unsupervised (clusters, components)."""
    from sklearn import datasets as ds

    out = {}
    for name, loader, task in (("breast_cancer", ds.load_breast_cancer, "binary"), ("wine", ds.load_wine, "multiclass"),
                               ("digits", ds.load_digits, "multiclass"), ("diabetes", ds.load_diabetes, "regression"),
                               ("iris", ds.load_iris, "multiclass")):
        d = loader()
        out[name] = (d.data, d.target, task)
    out["classification"] = (*ds.make_classification(5000, 20, n_informative=8, random_state=0), "binary")
    out["regression"] = (*ds.make_regression(5000, 20, n_informative=10, noise=20.0, random_state=0), "regression")
    out["blobs"] = (*ds.make_blobs(5000, 10, centers=8, random_state=0), "multiclass")
    out[TIMED] = (*ds.make_classification(50_000, 50, n_informative=20, random_state=0), "binary")
    out["imbalanced"] = (*ds.make_classification(20_000, 20, n_informative=6, weights=[0.95], random_state=0), "binary")
    return out


# algorithm -> the data sets it runs on (by task)
TASKS = {
    "linear-learner": ("binary", "multiclass", "regression"),
    "knn": ("binary", "multiclass", "regression"),
    "decision-tree": ("binary", "multiclass", "regression"),
    "random-forest": ("binary", "multiclass", "regression"),
    "xgboost": ("binary", "multiclass", "regression"),
    "kmeans": ("clusters",),
    "pca": ("components",),
}
CLUSTERS = {"iris": 3, "digits": 10, "blobs": 8}
XGB_ROUNDS = 100
XGB_OBJECTIVES = {"binary": "binary:logistic", "multiclass": "multi:softprob", "regression": "reg:squarederror"}


def xgboost_reference(kind: str):
    """xgboost's scikit-learn estimator called directly with the parameters our job uses (checks our plumbing, not
    the library): the built-in's defaults, hist, the same rounds and seed."""
    import xgboost as xgb

    settings = {"n_estimators": XGB_ROUNDS, "learning_rate": 0.3, "max_depth": 6, "tree_method": "hist", "random_state": 0,
                "n_jobs": 2, "objective": XGB_OBJECTIVES[kind]}
    return xgb.XGBRegressor(**settings) if kind == "regression" else xgb.XGBClassifier(**settings)
COMPONENTS = {"digits": 10, "blobs": 5, "classification": 8, "large": 10}


def required_hyperparameters(algorithm: str, task: str, data: str, X, y) -> dict:
    """Only what the algorithm requires (the values a user must choose), nothing else."""
    d = X.shape[1]
    kind = {"binary": "binary_classifier", "multiclass": "multiclass_classifier", "regression": "regressor"}.get(task)
    if algorithm == "linear-learner":
        hp = {"predictor_type": kind}
        if task == "multiclass":
            hp["num_classes"] = int(y.max()) + 1
        return hp
    if algorithm == "knn":
        return {"k": 5, "feature_dim": d, "predictor_type": "regressor" if task == "regression" else "classifier", "sample_size": len(X)}
    if algorithm in ("decision-tree", "random-forest"):
        return {"predictor_type": "regressor"} if task == "regression" else {}
    if algorithm == "xgboost":  # num_round is required; the objective is how a user says the task
        hp = {"num_round": XGB_ROUNDS, "objective": XGB_OBJECTIVES[task]}
        if task == "multiclass":
            hp["num_class"] = int(y.max()) + 1
        return hp
    if algorithm == "kmeans":
        return {"k": CLUSTERS[data], "feature_dim": d}
    return {"feature_dim": d, "num_components": COMPONENTS[data], "mini_batch_size": 1000}


def reference(algorithm: str, kind: str, k: int | None = None):
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    regression = kind == "regression"
    return {
        "linear-learner": lambda: make_pipeline(StandardScaler(), Ridge() if regression else LogisticRegression(max_iter=2000)),
        "knn": lambda: (KNeighborsRegressor if regression else KNeighborsClassifier)(5),
        "decision-tree": lambda: (DecisionTreeRegressor if regression else DecisionTreeClassifier)(random_state=0),
        "random-forest": lambda: (RandomForestRegressor if regression else RandomForestClassifier)(random_state=0, n_jobs=1),
        "xgboost": lambda: xgboost_reference(kind),
        "kmeans": lambda: KMeans(k, n_init=10, random_state=0),
        "pca": lambda: PCA(k),
    }[algorithm]()


@dataclass
class Row:
    name: str
    algorithm: str
    data: str
    kind: str  # binary, multiclass, regression, clusters, components
    recordio: bool = False  # the channels in RecordIO-protobuf instead of CSV
    ours: dict = field(default_factory=dict)  # metric -> list over splits
    ref: dict = field(default_factory=dict)
    fit: list = field(default_factory=list)  # (ours, reference) seconds


def recordio_bytes(X, y=None) -> bytes:
    from byoa.data.protobuf_codec import encode_rows

    return encode_rows(np.asarray(X, np.float32), None if y is None else np.asarray(y, np.float32))


def csv_bytes(X, y=None) -> bytes:
    import io

    out = io.StringIO()
    np.savetxt(out, X if y is None else np.column_stack([y, X]), delimiter=",", fmt="%.9g")
    return out.getvalue().encode()


def run_job(work: Path, algorithm: str, hp: dict, train: bytes, test: bytes, labelled: bool, hosts: int,
            recordio: bool = False) -> tuple[dict, float]:
    """(test metrics, fit seconds) of one job through container/train (on ``hosts`` hosts on loopback)."""
    content = "application/x-recordio-protobuf" if recordio else "text/csv" if labelled else "text/csv;label_size=0"
    channels = {c: {"ContentType": content, "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for c in ("train", "test")}
    names = host_names(hosts)
    bases = []
    for name in names:
        base = work / name
        for channel, data in (("train", train), ("test", test)):
            (base / "input" / "data" / channel).mkdir(parents=True)
            (base / "input" / "data" / channel / ("part.pbr" if recordio else "part.csv")).write_bytes(data)
        write_config(base, names, name, {"algorithm": algorithm, **hp}, channels)
        bases.append(base)
    port = 20000 + (abs(hash(str(work))) % 20000)
    procs = [subprocess.Popen([sys.executable, str(TRAIN)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=cluster_env(base, hosts, port) if hosts > 1 else {**os.environ, "SAGEMAKER_BASE_DIR": str(base)})
             for base in reversed(bases)]
    out, err = procs[-1].communicate(timeout=1800)
    for p in procs[:-1]:
        p.communicate(timeout=120)
    if procs[-1].returncode:
        raise SystemExit(f"{algorithm} failed:\n{err[-3000:]}")
    metrics = {m.group(1): float(m.group(2)) for m in re.finditer(r"#quality_metric: host=\S+, test (\S+) <\w+>=(\S+)", out)}
    timings = json.loads(re.search(r"timings (\{.*\})", err).group(1).replace("'", '"'))
    return metrics, timings["fit"]


def score_reference(row: Row, est, X_train, y_train, X_test, y_test) -> tuple[dict, float]:
    from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

    started = time.perf_counter()
    est.fit(X_train, y_train) if row.kind not in ("clusters", "components") else est.fit(X_train)
    seconds = time.perf_counter() - started
    if row.kind == "clusters":
        d = ((X_test[:, None, :] - est.cluster_centers_[None]) ** 2).sum(axis=2).min(axis=1)
        return {"msd": float(d.mean())}, seconds
    if row.kind == "components":
        centred = X_test - est.mean_
        kept = ((centred @ est.components_.T) ** 2).sum()
        return {"explained_variance_ratio": float(kept / (centred**2).sum())}, seconds
    predicted = est.predict(X_test)
    if row.kind == "regression":
        return {"r2": float(r2_score(y_test, predicted))}, seconds
    out = {"accuracy": float(accuracy_score(y_test, predicted))}
    if row.kind == "binary" and row.algorithm != "knn":
        out["auc"] = float(roc_auc_score(y_test, est.predict_proba(X_test)[:, 1]))
    return out, seconds


def ours(metrics: dict, row: Row) -> dict:
    if row.kind == "clusters":
        return {"msd": metrics["msd"]}
    if row.kind == "components":
        return {"explained_variance_ratio": metrics["explained_variance_ratio"]}
    if row.kind == "regression":
        return {"r2": metrics["r2"]}
    accuracy = next(metrics[k] for k in ("binary_classification_accuracy", "multiclass_accuracy", "accuracy") if k in metrics)
    out = {"accuracy": accuracy}
    if row.kind == "binary" and row.algorithm != "knn":
        out["auc"] = metrics["roc_auc_score"]
    return out


def plan_rows(data: dict) -> list[Row]:
    rows = []
    for algorithm, tasks in TASKS.items():
        for name, (X, y, task) in data.items():
            if "clusters" in tasks and name in CLUSTERS:
                rows.append(Row(f"{name} {algorithm}", algorithm, name, "clusters"))
            elif "components" in tasks and name in COMPONENTS:
                rows.append(Row(f"{name} {algorithm}", algorithm, name, "components"))
            elif task in tasks and name != "blobs":
                rows.append(Row(f"{name} {algorithm}", algorithm, name, task))
    return rows + [Row(f"{r.name} recordio", r.algorithm, r.data, r.kind, recordio=True) for r in rows if r.data == TIMED]


def run_row(row: Row, data: dict, work: Path, hosts: int) -> Row:
    from sklearn.model_selection import train_test_split

    X, y, task = data[row.data]
    X = X.astype(np.float32)
    splits = SPLITS if len(X) * 0.2 < 1000 else 1
    for seed in range(splits):
        stratify = y if row.kind in ("binary", "multiclass") else None
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=stratify)
        labelled = row.kind not in ("clusters", "components")
        hp = required_hyperparameters(row.algorithm, row.kind, row.data, X_train, y_train)
        encoded = recordio_bytes if row.recordio else csv_bytes
        metrics, fit = run_job(work / f"{row.name.replace(' ', '-')}-{seed}", row.algorithm, hp,
                               encoded(X_train, y_train if labelled else None), encoded(X_test, y_test if labelled else None),
                               labelled, hosts, row.recordio)
        k = hp.get("k") if row.algorithm == "kmeans" else hp.get("num_components")
        ref, ref_fit = score_reference(row, reference(row.algorithm, row.kind, k), X_train, y_train, X_test, y_test)
        for key, value in ours(metrics, row).items():
            row.ours.setdefault(key, []).append(value)
        for key, value in ref.items():
            row.ref.setdefault(key, []).append(value)
        row.fit.append((fit, ref_fit))
    return row


BOUNDS = {"accuracy": -0.01, "auc": -0.01, "r2": -0.02, "explained_variance_ratio": -0.01}


def verdicts(row: Row, hosts: int) -> list[str]:
    out = []
    for key in row.ours:
        a, b = float(np.mean(row.ours[key])), float(np.mean(row.ref[key]))
        if key == "msd":
            ok = a <= 1.05 * b
            out.append(f"msd {a:.4g} vs {b:.4g} ({a / b:.3f}x; <= 1.05x: {'met' if ok else 'NOT met'})")
        else:
            ok = a - b >= BOUNDS[key]
            out.append(f"{key} {a:.4f} vs {b:.4f} ({a - b:+.4f}; >= {BOUNDS[key]}: {'met' if ok else 'NOT met'})")
    if row.data == TIMED and row.algorithm != "knn":
        ours_fit, ref_fit = (float(np.mean(v)) for v in zip(*row.fit))
        if hosts == 1:
            ok = ours_fit <= 3 * ref_fit
            out.append(f"fit {ours_fit:.2f} s vs {ref_fit:.2f} s ({ours_fit / ref_fit:.2f}x; <= 3x: {'met' if ok else 'NOT met'})")
        else:  # the fit-time bound is one host's: on several, a 40k-record fit is mostly per-round latency
            out.append(f"fit {ours_fit:.2f} s on {hosts} hosts")
    return out


def main() -> int:
    args = sys.argv[1:]
    hosts = 1
    if args[:1] == ["--hosts"]:
        hosts, args = int(args[1]), args[2:]
    data = datasets()
    rows = [r for r in plan_rows(data) if not args or any(a in r.name for a in args)]
    if hosts > 1:  # the multi-host rows: binary and regression
        rows = [r for r in rows if r.kind in ("binary", "regression")]
    work = Path(tempfile.mkdtemp(prefix="byoa-bench-quality-"))
    try:
        timed = [r for r in rows if r.data == TIMED]
        with ThreadPoolExecutor(1 if hosts > 1 else 2) as pool:  # two jobs at a time, but the timed set alone
            done = list(pool.map(lambda r: run_row(r, data, work, hosts), [r for r in rows if r.data != TIMED]))
        done += [run_row(r, data, work, hosts) for r in timed]
        missed = 0
        print(f"quality at default hyperparameters, {hosts} host{'s' * (hosts > 1)} (ours vs scikit-learn's reference; "
              f"sets under 1,000 test rows: mean of {SPLITS} splits)")
        for row in sorted(done, key=lambda r: (r.algorithm, r.data)):
            parts = verdicts(row, hosts)
            missed += sum("NOT met" in p for p in parts)
            print(f"  {row.name:34s} " + "; ".join(parts))
        print(f"{missed} figure{'s' * (missed != 1)} miss{'es' * (missed == 1)} the target")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
