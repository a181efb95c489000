"""SIGTERM and checkpoints, quality bars on known data, and metric definitions that match real logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CSV, CSV_NO_LABEL, PROTOBUF, TRAIN, csv_bytes, sdk_recordio, wait_for

from byoa.algorithms import ALGORITHMS
from byoa.training.metric_definitions import ranked


def test_sigterm_stops_within_10s_and_the_next_run_resumes_from_the_checkpoint(job):
    X = np.random.default_rng(1).random((60000, 20)).astype(np.float32)
    hp = {"algorithm": "kmeans", "k": 5, "feature_dim": 20, "mini_batch_size": 500, "epochs": 40}
    job.hyperparameters(hp).channel("train", sdk_recordio(X), PROTOBUF)
    checkpoints = job.root / "checkpoints"
    checkpoints.mkdir()
    proc = job.start()
    assert wait_for(lambda: (checkpoints / "manifest.json").exists(), timeout=60), "no checkpoint written"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    result = job.finish(proc, timeout=30)
    assert time.monotonic() - stopped_at < 10
    assert result.rc == 143
    assert result.failure.startswith("training stopped by SIGTERM")
    assert result.model_files == []
    saved_epoch = json.loads((checkpoints / "manifest.json").read_text())["meta"]["epoch"]
    assert 0 <= saved_epoch < 39

    again = job.run()
    assert again.rc == 0, again.log
    assert re.search(r"resumed from the checkpoint of epoch \d+", again.stderr)
    resumed = int(re.search(r"resumed from the checkpoint of epoch (\d+)", again.stderr).group(1))
    assert resumed >= saved_epoch
    assert again.stderr.count("epoch ") and f"epoch {resumed + 2}/40" in again.stderr
    assert f"epoch {resumed + 1}/40:" not in again.stderr  # epochs already done are not run again
    assert again.model_files == ["manifest.json", "model.npz"]


def test_checkpoint_of_other_hyperparameters_is_not_used(job):
    X = np.random.default_rng(2).random((500, 4)).astype(np.float32)
    job.hyperparameters({"algorithm": "kmeans", "k": 3, "feature_dim": 4, "epochs": 2}).channel("train", csv_bytes(X), CSV_NO_LABEL)
    (job.root / "checkpoints").mkdir()
    assert job.run().rc == 0
    job.hyperparameters({"algorithm": "kmeans", "k": 4, "feature_dim": 4, "epochs": 2})
    result = job.run()
    assert result.rc == 0 and "ignoring the checkpoint" in result.stderr and "resumed from the checkpoint" not in result.stderr


# ----------------------------------------------------------------------------- quality, fixed and failable


def test_linear_learner_breast_cancer_accuracy(job, cancer):
    X_train, X_test, y_train, y_test = cancer
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "mini_batch_size": 32, "epochs": 15})
    job.channel("train", csv_bytes(X_train, y_train), CSV).channel("test", csv_bytes(X_test, y_test), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    assert result.metric("test", "binary_classification_accuracy") >= 0.95
    _, model = job.model()
    assert (model.predict(X_test)["predicted_label"] == y_test).mean() >= 0.95


def test_random_forest_iris_accuracy(job, iris):
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(*iris, test_size=0.2, stratify=iris[1], random_state=0)
    job.hyperparameters({"algorithm": "random-forest", "n_estimators": 50})
    job.channel("train", sdk_recordio(X_train, y_train), PROTOBUF).channel("test", sdk_recordio(X_test, y_test), PROTOBUF)
    result = job.run()
    assert result.rc == 0, result.log
    assert result.metric("test", "multiclass_accuracy") >= 0.90


def test_kmeans_iris_adjusted_rand_index(job, iris):
    from sklearn.metrics import adjusted_rand_score

    X, y = iris
    job.hyperparameters({"algorithm": "kmeans", "k": 3, "feature_dim": 4, "mini_batch_size": 50, "epochs": 5})
    job.channel("train", csv_bytes(X), CSV_NO_LABEL)
    assert job.run().rc == 0
    _, model = job.model()
    assert adjusted_rand_score(y, model.predict(X)["closest_cluster"]) >= 0.6


def test_decision_tree_binary_classifier_breast_cancer(job, cancer):
    X_train, X_test, y_train, y_test = cancer
    # loss_function keeps the probability threshold at 0.5 (a lone tree's leaf frequencies are coarse)
    job.hyperparameters({"algorithm": "decision-tree", "max_depth": 4, "binary_classifier_model_selection_criteria": "loss_function"})
    job.channel("train", csv_bytes(X_train, y_train), CSV).channel("test", csv_bytes(X_test, y_test), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    assert result.metric("test", "binary_classification_accuracy") >= 0.9
    assert result.metric("test", "roc_auc_score") >= 0.9
    report = json.loads((job.root / "output" / "data" / "evaluation.json").read_text())
    assert report["positive_class"] == 1.0 and report["metrics"]["test"]["confusion"]["positive_class"] == 1.0


@pytest.mark.parametrize("mode", ["regular", "randomized"])
def test_pca_digits_explained_variance(job, digits, mode):
    X, _ = digits
    job.hyperparameters({"algorithm": "pca", "feature_dim": 64, "num_components": 10, "mini_batch_size": 200, "algorithm_mode": mode})
    job.channel("train", sdk_recordio(X), PROTOBUF)
    result = job.run()
    assert result.rc == 0, result.log
    assert result.metric("train", "explained_variance_ratio") >= 0.7
    from sklearn.decomposition import PCA

    expected = PCA(10).fit(X).explained_variance_ratio_.sum()
    assert result.metric("train", "explained_variance_ratio") == pytest.approx(expected, abs=0.01 if mode == "regular" else 0.03)


# ----------------------------------------------------------------------------- metric definitions


def test_metric_definitions_command_prints_estimator_json():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run([str(TRAIN), "--metric-definitions", "kmeans"], capture_output=True, text=True, check=True, env=env).stdout
    defs = json.loads(out)
    assert {"Name": "test:msd", "Regex": r"#quality_metric: host=\S+, test msd <loss>=(\S+)"} in defs


def test_every_declared_regex_matches_a_line_a_real_job_printed(make_job, iris, cancer):
    X, y = iris
    Xc, Xt, yc, yt = cancer
    jobs = {
        "kmeans": ({"k": 3, "feature_dim": 4, "eval_metrics": '["msd","ssd"]'}, X, None),
        "knn": ({"k": 3, "feature_dim": 4, "predictor_type": "classifier", "sample_size": 100}, X, y),
        "pca": ({"feature_dim": 4, "num_components": 2, "mini_batch_size": 30}, X, None),
        "binary": ({"algorithm": "linear-learner", "predictor_type": "binary_classifier"}, Xc, yc),
        "multiclass": ({"algorithm": "linear-learner", "predictor_type": "multiclass_classifier", "num_classes": 3}, X, y),
        "regressor": ({"algorithm": "linear-learner", "predictor_type": "regressor"}, X[:, 1:], X[:, 0]),
        "knn-regressor": ({"algorithm": "knn", "k": 3, "feature_dim": 3, "predictor_type": "regressor", "sample_size": 100}, X[:, 1:], X[:, 0]),
        "factorization-machines": ({"feature_dim": 30, "num_factors": 4, "predictor_type": "binary_classifier"}, Xc, yc),
        # xgboost prints its per-round metrics itself: every name the listing defines, on train and validation
        "xgboost": ({"objective": "binary:logistic", "num_round": 3, "eval_metric": '["logloss","error","auc","aucpr"]'}, Xc, yc),
        "xgb-multiclass": ({"algorithm": "xgboost", "objective": "multi:softmax", "num_class": 3, "num_round": 3,
                            "eval_metric": '["merror","mlogloss"]'}, X, y),
        "xgb-regression": ({"algorithm": "xgboost", "num_round": 3, "eval_metric": '["rmse","mae"]'}, X[:, 1:], X[:, 0]),
        "xgb-poisson": ({"algorithm": "xgboost", "objective": "count:poisson", "num_round": 3, "eval_metric": '["poisson-nloglik"]'},
                        X[:, 1:], X[:, 0]),
    }
    printed = ""
    for name, (hp, data, labels) in jobs.items():
        j = make_job(name)
        hp = {"algorithm": name, **hp}
        content = csv_bytes(data, labels) if labels is not None else csv_bytes(data)
        ct = CSV if labels is not None else CSV_NO_LABEL
        j.hyperparameters(hp)
        for channel in ("train", "validation", "test"):
            j.channel(channel, content, ct)
        result = j.run()
        assert result.rc == 0, result.log
        printed += result.stdout
    for algorithm in ALGORITHMS:
        for d in ranked([algorithm]):
            if algorithm in ("decision-tree", "random-forest"):
                continue  # same metric names as linear-learner's, checked there
            assert re.search(d["Regex"], printed), f"{algorithm}: {d['Name']} never printed"
