"""Factorization machines: the quality target on data drawn from a known FM, what the model computes, bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import PROTOBUF, ROOT, CSV, csv_bytes, sdk_recordio

sys.path.insert(0, str(ROOT / "local_test"))
from synthetic import factorization_machine_data  # noqa: E402

from byoa.algorithms.factorization_machines import FactorizationMachinesModel  # noqa: E402

FM = {"algorithm": "factorization-machines", "feature_dim": 1000, "num_factors": 4, "predictor_type": "binary_classifier",
      "epochs": 5, "linear_lr": 0.01, "factors_lr": 0.01}


@pytest.fixture(scope="module")
def fm_data():
    X, y, p = factorization_machine_data()
    cut = int(0.8 * len(y))
    return X[:cut], y[:cut], X[cut:], y[cut:], p[cut:]


def test_auc_within_0_03_of_the_generating_model_and_well_above_the_linear_learner(fm_data, make_job):
    from sklearn.metrics import roc_auc_score

    X, y, Xt, yt, pt = fm_data
    generating = roc_auc_score(yt, pt)
    aucs = {}
    for name, hp in (("fm", FM), ("linear", {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 5,
                                              "num_models": 1})):
        job = make_job(name)
        job.hyperparameters(hp).channel("train", sdk_recordio(X, y), PROTOBUF).channel("test", sdk_recordio(Xt, yt), PROTOBUF)
        result = job.run(timeout=300)
        assert result.rc == 0, result.log
        aucs[name] = result.metric("test", "roc_auc_score")
    assert aucs["fm"] >= generating - 0.03, (aucs, generating)
    assert aucs["fm"] >= aucs["linear"] + 0.15, (aucs, generating)


def test_the_pair_term_is_every_pair_of_features(iris):
    """The model's identity against the definition, sparse and dense alike."""
    rng = np.random.default_rng(3)
    X = iris[0]
    w0, w, V = 0.3, rng.normal(size=4), rng.normal(size=(4, 3))
    model = FactorizationMachinesModel("regressor", w0, w, V)
    expected = w0 + X @ w + np.array([sum(V[i] @ V[j] * x[i] * x[j] for i in range(4) for j in range(i + 1, 4)) for x in X])
    np.testing.assert_allclose(model.predict(X)["score"], expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(sp.csr_matrix(X))["score"], expected, rtol=1e-5)


@pytest.mark.parametrize("hp, labels, message", [
    ({"factors_init_method": "uniform"}, None, r"factors_init_method=uniform needs factors_init_scale"),
    ({"bias_init_method": "constant"}, None, r"bias_init_method=constant needs bias_init_value"),
    ({"num_factors": 1001}, None, r"invalid value for hyperparameter num_factors: '1001'; allowed: integer in \[1, 1000\]"),
    ({}, 2.0, r"channel 'train': predictor_type=binary_classifier needs labels 0 or 1; got 2"),
    ({"feature_dim": 5}, None, r"records from 0 on have 4 features, but feature_dim=5"),
])
def test_bad_settings_and_labels_fail_with_one_line(hp, labels, message, job, iris):
    from test_train_failures import failed

    X, y = iris
    y = (y == 0).astype(np.float32) if labels is None else np.full(len(y), labels, np.float32)
    settings = {"algorithm": "factorization-machines", "feature_dim": 4, "num_factors": 2, "predictor_type": "binary_classifier", **hp}
    job.hyperparameters(settings).channel("train", csv_bytes(X, y), CSV)
    failed(job.run(), message)
