"""XGBoost: xgboost's own round lines (real tabs), the plumbing against xgboost called directly, early stopping,
bare CSV answers, and bad settings or labels."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import CSV, csv_bytes
from test_train_failures import failed

from byoa.training.metric_definitions import definitions

BINARY = {"algorithm": "xgboost", "objective": "binary:logistic", "num_round": 30, "max_depth": 3}


def test_round_lines_reach_stdout_with_real_tabs_and_match_the_built_ins_definitions(job, cancer):
    X, Xt, y, yt = cancer
    job.hyperparameters({**BINARY, "eval_metric": '["logloss","auc"]'})
    job.channel("train", csv_bytes(X, y), CSV).channel("validation", csv_bytes(Xt, yt), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    rounds = [line for line in result.stdout.splitlines() if re.match(r"\[\d+\]\t", line)]
    assert len(rounds) == 30 and rounds[0].startswith("[0]\ttrain-logloss:")
    assert rounds[-1].split("\t")[1:] == [f"{d}-{m}:{rounds[-1].split(f'{d}-{m}:')[1].split(chr(9))[0]}"
                                           for d in ("train", "validation") for m in ("logloss", "auc")]
    regex = {d["Name"]: d["Regex"] for d in definitions(["xgboost"])}["validation:auc"]
    as_cloudwatch_shows_it = result.stdout.replace("\t", "#011")
    for text in (result.stdout, as_cloudwatch_shows_it):
        values = [float(v) for v in re.findall(regex, text)]
        assert len(values) == 30 and values[-1] > 0.95


def test_within_0_01_of_xgboost_called_directly_with_the_same_parameters(job, cancer):
    import xgboost as xgb
    from sklearn.metrics import accuracy_score, roc_auc_score

    X, Xt, y, yt = cancer
    job.hyperparameters(BINARY).channel("train", csv_bytes(X, y), CSV).channel("test", csv_bytes(Xt, yt), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    direct = xgb.XGBClassifier(n_estimators=30, max_depth=3, learning_rate=0.3, tree_method="hist", random_state=0).fit(X, y)
    p = direct.predict_proba(Xt)[:, 1]
    assert abs(result.metric("test", "roc_auc_score") - roc_auc_score(yt, p)) <= 0.01
    assert abs(result.metric("test", "binary_classification_accuracy") - accuracy_score(yt, p >= 0.5)) <= 0.01


def test_early_stopping_keeps_the_best_rounds(job, cancer):
    X, Xt, y, yt = cancer
    job.hyperparameters({**BINARY, "num_round": 500, "eta": 0.5, "early_stopping_rounds": 5})
    job.channel("train", csv_bytes(X, y), CSV).channel("validation", csv_bytes(Xt, yt), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    manifest, model = job.model()
    printed = len(re.findall(r"^\[\d+\]\t", result.stdout, re.M))
    assert model.rounds < printed < 500 and printed == model.rounds + 5


@pytest.mark.parametrize("hp, labels, channels, message", [
    ({"objective": "multi:softprob"}, None, ("train",), r"objective=multi:softprob needs num_class"),
    ({"objective": "binary:logistic", "num_class": 3}, None, ("train",), r"num_class is for the multi:\* objectives"),
    ({"objective": "multi:softmax", "num_class": 2}, None, ("train",),
     r"channel 'train': objective=multi:softmax needs class indices 0 to 1 \(num_class=2\); got 2"),
    ({"objective": "binary:logistic"}, None, ("train",), r"objective=binary:logistic needs labels in \[0, 1\]; got 2"),
    ({"early_stopping_rounds": 5}, None, ("train",), r"early_stopping_rounds needs a validation channel"),
    ({"tree_method": "gpu_hist"}, None, ("train",), r"invalid value for hyperparameter tree_method"),
])
def test_bad_settings_and_labels_fail_with_one_line(hp, labels, channels, message, job, iris):
    X, y = iris
    job.hyperparameters({"algorithm": "xgboost", "num_round": 5, **hp})
    for channel in channels:
        job.channel(channel, csv_bytes(X, y), CSV)
    failed(job.run(), message)


def test_csv_answers_are_bare_as_the_built_ins(trained):
    from serve_helpers import ServeProcess

    for case, columns in (("xgb-binary", 1), ("xgb-multiclass", 1)):
        job, X = trained(case)
        server = ServeProcess(job.root).start()
        try:
            reply = server.invoke(csv_bytes(X[:4]), "text/csv", "text/csv")
            rows = [line.split(",") for line in reply.body.decode().splitlines()]
            assert reply.status == 200 and len(rows) == 4 and {len(r) for r in rows} == {columns}, reply.body
            if case == "xgb-multiclass":  # multi:softmax answers the class, as the built-in
                assert {float(r[0]) for r in rows} <= {0.0, 1.0, 2.0}
        finally:
            assert server.stop() == 0
