"""The linear learner: every loss's gradient, every loss trained through container/train, model selection among
``num_models``, and early stopping judged on one yardstick."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import CSV, csv_bytes, separable

from byoa.algorithms.linear_learner import ANY_LOSS, LOSSES, LinearLearnerAlgorithm, loss_and_gradient, make_grid
from byoa.hyperparameters import parse

PREDICTOR = {loss: kind for kind, losses in LOSSES.items() for loss in losses}


def defaults(**given) -> dict:
    raw = {"predictor_type": "regressor", **{k: str(v) for k, v in given.items()}}
    return parse(LinearLearnerAlgorithm.params, raw, "linear-learner").values


def labels_for(loss: str, rng, n: int, c: int) -> np.ndarray:
    kind = PREDICTOR[loss]
    if kind == "binary_classifier":
        return rng.integers(0, 2, n).astype(np.float64)
    if kind == "multiclass_classifier":
        return rng.integers(0, c, n).astype(np.float64)
    return rng.normal(size=n)


def test_there_are_nine_losses():
    assert len(ANY_LOSS) == 9


@pytest.mark.parametrize("loss", ANY_LOSS)
def test_the_gradient_of_every_loss_matches_finite_differences(loss):
    rng = np.random.default_rng(0)
    hp = defaults(margin=1.0, huber_delta=0.7, quantile=0.3, loss_insensitivity=0.2)
    n, m, c = 200, 4, 3 if loss == "softmax_loss" else 1
    y = labels_for(loss, rng, n, c)
    S = rng.normal(scale=2.0, size=(n, m, c))
    value, G = loss_and_gradient(loss, S.copy(), y, hp)
    assert value.shape == (n, m) and G.shape == (n, m, c)
    eps = 1e-6
    numeric = np.zeros_like(S)
    for j in range(c):
        step = np.zeros_like(S)
        step[:, :, j] = eps
        up, _ = loss_and_gradient(loss, S + step, y, hp)
        down, _ = loss_and_gradient(loss, S - step, y, hp)
        numeric[:, :, j] = (up - down) / (2 * eps)
    # piecewise losses: compare away from their kinks (|r| at 0, delta, eps; the hinge's margin)
    r = S[:, :, 0] - y[:, None]
    kinks = {"absolute_loss": [0.0], "huber_loss": [0.7, -0.7], "quantile_loss": [0.0], "eps_insensitive_squared_loss": [0.2, -0.2],
             "eps_insensitive_absolute_loss": [0.2, -0.2],
             "hinge_loss": None}
    smooth = np.ones((n, m), bool)
    if loss == "hinge_loss":
        smooth = np.abs(1.0 - (2 * y[:, None] - 1) * S[:, :, 0]) > 1e-3
    elif loss in kinks:
        for k in kinks[loss]:
            smooth &= np.abs(r - k) > 1e-3
    assert smooth.mean() > 0.9
    np.testing.assert_allclose(G[smooth], numeric[smooth], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("loss", ANY_LOSS)
def test_every_loss_trains_through_the_entrypoint(loss, make_job):
    kind = PREDICTOR[loss]
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 5)).astype(np.float32)
    score = X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5], np.float32)
    y = {"binary_classifier": (score > 0), "multiclass_classifier": np.digitize(score, [-1.0, 1.0]),
         "regressor": score * 3 + 10}[kind].astype(np.float32)
    hp = {"algorithm": "linear-learner", "predictor_type": kind, "loss": loss, "epochs": 4, "mini_batch_size": 60, "num_models": 4}
    if kind == "multiclass_classifier":
        hp["num_classes"] = 3
    job = make_job(loss)
    job.hyperparameters(hp).channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    name = {"binary_classifier": "binary_classification_accuracy", "multiclass_classifier": "multiclass_accuracy", "regressor": "r2"}[kind]
    assert result.metric("test", name) > 0.8, result.stdout


def test_the_grid_starts_with_the_given_settings_and_pins_what_is_given():
    grid = make_grid(defaults(), 32)
    assert grid.describe(0) == {"learning_rate": 0.01, "wd": 0.0, "l1": 0.0, "optimizer": "adam"}
    assert len({(grid.lr[m], grid.wd[m], grid.l1[m], grid.optimizer[m]) for m in range(32)}) == 32  # all different
    pinned = make_grid(defaults(learning_rate=0.05, optimizer="sgd"), 8)
    assert set(pinned.lr) == {0.05} and set(pinned.optimizer) == {"sgd"}
    assert len({(pinned.wd[m], pinned.l1[m]) for m in range(8)}) == 8


def test_the_model_kept_beats_the_worst_by_a_clear_margin_and_is_named(job):
    """One epoch of ten SGD steps on overlapping classes: learning rates 100x apart give clearly different models."""
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.5).astype(np.float32)
    X = (rng.normal(size=(1000, 10)) + 0.4 * y[:, None]).astype(np.float32)
    hp = {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 1, "num_models": 12, "mini_batch_size": 100,
          "optimizer": "sgd"}
    job.hyperparameters(hp).channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    chosen = json.loads((job.root / "output" / "data" / "evaluation.json").read_text())["model_selection"]
    assert chosen["num_models"] == 12 and chosen["settings"]["optimizer"] == "sgd"
    best, worst = (float(v) for v in re.search(r"best model's ([\d.]+); worst model ([\d.]+)", chosen["judged_by"]).groups())
    assert best - worst > 0.05, chosen["judged_by"]
    assert f"model {chosen['chosen'] + 1} of 12 kept" in result.stderr


def test_under_hyperparameter_tuning_num_models_auto_trains_one_model(job):
    X, y = separable(n=600, d=4)
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 1,
                         "_tuning_objective_metric": "test:binary_classification_accuracy"})
    job.channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    assert "num_models=auto -> 1 under hyperparameter tuning" in result.stderr and "1 model in parallel" in result.stderr


def test_early_stopping_compares_epochs_in_the_same_units_when_labels_are_large(job):
    """Labels in the thousands: every epoch is judged by the validation objective in the model's units, so the
    regressor keeps improving instead of stopping at the first epoch (which an epoch-0 training loss in
    normalised units against later validation MSEs in raw units would do)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 8)).astype(np.float32)
    y = (5000 + 2000 * (X @ rng.normal(size=8))).astype(np.float32)
    hp = {"algorithm": "linear-learner", "predictor_type": "regressor", "epochs": 12, "mini_batch_size": 500, "num_models": 1,
          "learning_rate": 0.005, "early_stopping_patience": 2}
    job.hyperparameters(hp).channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    lines = [line for line in result.stdout.splitlines() if ", epoch=" in line]
    assert all(", validation " in line for line in lines)  # one yardstick: validation, every epoch
    values = [float(line.rsplit("=", 1)[1]) for line in lines]
    assert len(values) == 12 and all(b < a for a, b in zip(values, values[1:]))  # never stopped: it kept improving
    assert result.metric("test", "r2") > 0.8


def test_a_training_round_streams_its_batches_instead_of_holding_them():
    """On one host a round is the whole pass: the partition must let each mini-batch go before it reads on."""
    import gc
    import weakref

    from byoa.algorithms.linear_learner import ScalerStats
    from byoa.data.blocks import Block

    hp = defaults(predictor_type="binary_classifier", num_models=2, feature_dim=4)
    leader, partition = LinearLearnerAlgorithm(hp), LinearLearnerAlgorithm(hp)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    leader._setup(ScalerStats.of(Block(X, y), 2))
    alive, most = [], 0

    def stream():
        nonlocal most
        for _ in range(60):
            gc.collect()
            most = max(most, sum(r() is not None for r in alive))
            block = Block(rng.normal(size=(1000, 4)).astype(np.float32), y.copy())
            alive.append(weakref.ref(block.X))
            yield block

    progress = partition.partial("train", leader.broadcast("train"), stream())
    assert progress.records == 60_000
    assert most <= 2, f"{most} earlier mini-batches were still held"
