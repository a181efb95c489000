"""Evaluation: splits, k-fold, threshold selection on validation only, baselines, the report and its pictures."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from byoa.data.blocks import Block
from byoa.evaluation import plots
from byoa.evaluation.evaluate import verdict
from byoa.stats.split import (
    TEST,
    TRAIN,
    VALIDATION,
    HashPositions,
    fold_roles,
    holdout_roles,
    label_order_warning,
    ordered_positions,
)
from conftest import CSV, CSV_NO_LABEL, csv_bytes, encode, separable


def report_of(job) -> dict:
    return json.loads((job.root / "output" / "data" / "evaluation.json").read_text())


# ----------------------------------------------------------------------------- split strategies (units)


@pytest.mark.parametrize("strategy", ["random", "stratified"])
def test_random_and_stratified_splits_are_reproducible_and_disjoint(strategy):
    y = np.repeat([0.0, 1.0, 2.0], [500, 300, 200]).astype(np.float32)
    roles = lambda seed: holdout_roles(ordered_positions(y, strategy, seed), 0.2, 0.1)  # noqa: E731
    a, b, other = roles(7), roles(7), roles(8)
    np.testing.assert_array_equal(a, b)
    assert (a != other).any()
    # every record has exactly one role; the shares are exact
    assert set(np.unique(a)) == {TRAIN, VALIDATION, TEST}
    assert (a == TEST).sum() == 200 and (a == VALIDATION).sum() == 80 and (a == TRAIN).sum() == 720
    if strategy == "stratified":
        for cls, count in ((0, 500), (1, 300), (2, 200)):
            assert ((a == TEST) & (y == cls)).sum() == count // 5


def test_sequential_holds_out_exactly_the_last_rows():
    y = np.zeros(1000, np.float32)
    roles = holdout_roles(ordered_positions(y, "sequential", 0), 0.2, 0.1)
    np.testing.assert_array_equal(np.flatnonzero(roles == TEST), np.arange(800, 1000))
    np.testing.assert_array_equal(np.flatnonzero(roles == VALIDATION), np.arange(720, 800))
    assert (roles[:720] == TRAIN).all()


def test_forward_chaining_folds_train_on_earlier_rows_and_test_on_the_next_block():
    u = ordered_positions(np.zeros(600, np.float32), "sequential", 0)
    for fold in range(5):
        roles = fold_roles(u, 0.0, 0.0, 5, fold, forward=True)
        test_rows, train_rows = np.flatnonzero(roles == TEST), np.flatnonzero(roles == TRAIN)
        assert train_rows.max() < test_rows.min()
        np.testing.assert_array_equal(test_rows, np.arange(100 * (fold + 1), 100 * (fold + 2)))
        np.testing.assert_array_equal(train_rows, np.arange(0, 100 * (fold + 1)))


def test_shuffled_folds_partition_the_non_test_records():
    u = ordered_positions(np.zeros(1000, np.float32), "random", 3)
    tested = np.zeros(1000, int)
    for fold in range(4):
        roles = fold_roles(u, 0.2, 0.0, 4, fold, forward=False)
        assert not (roles[u < 0.2] != 3).any()  # the final test part is never used by k-fold
        tested += roles == TEST
    assert (tested[u >= 0.2] == 1).all() and (tested[u < 0.2] == 0).all()


def test_label_order_warning():
    assert label_order_warning(np.repeat([0.0, 1.0], 50).astype(np.float32))
    assert label_order_warning(np.arange(100, dtype=np.float32))
    rng = np.random.default_rng(0)
    assert label_order_warning(rng.integers(0, 2, 100).astype(np.float32)) is None
    assert label_order_warning(rng.normal(size=100).astype(np.float32)) is None


rows = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.lists(st.floats(-1e6, 1e6, width=32), min_size=3, max_size=3), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n),
        st.permutations(range(n)),
        st.lists(st.integers(1, n), min_size=1, max_size=4),
    )
)


@settings(max_examples=60, deadline=None)
@given(rows, st.booleans())
def test_hash_positions_do_not_depend_on_order_or_batching(data, sparse):
    """A record keeps its role when the stream is reshuffled and cut into other batches."""
    values, labels, order, cuts = data
    X, y = np.array(values, np.float32), np.array(labels, np.float32)
    to_x = (lambda a: sp.csr_matrix(a)) if sparse else (lambda a: a)  # noqa: E731
    positions = HashPositions(5)
    whole = positions(Block(to_x(X), y), 0)
    order = np.array(order)
    bounds = sorted(set([0, *cuts, len(y)]))
    parts = [positions(Block(to_x(X[order[a:b]]), y[order[a:b]]), a) for a, b in zip(bounds, bounds[1:])]
    np.testing.assert_array_equal(np.concatenate(parts), whole[order])
    assert ((whole >= 0) & (whole < 1)).all()


def test_hash_roles_have_the_requested_shares_and_keep_duplicates_together():
    X = np.random.default_rng(0).normal(size=(20000, 5)).astype(np.float32)
    X[10000:] = X[:10000]  # every record twice
    roles = holdout_roles(HashPositions(0)(Block(X, None), 0), 0.2, 0.1)
    np.testing.assert_array_equal(roles[:10000], roles[10000:])
    share = (roles[:10000] == TEST).mean()
    assert abs(share - 0.2) < 0.015  # binomial sd is 0.004
    assert abs((roles[:10000] == VALIDATION).mean() - 0.08) < 0.015


def test_verdict_uses_the_absolute_tolerance():
    folds = [{"fold": i + 1, "metric": "error", "value": v} for i, v in enumerate([0.1, 0.12, 0.11, 0.31, 0.1])]
    v = verdict(folds, 0.05)
    assert v["verdict"].startswith("inconsistent: fold 4 error 0.31 vs mean 0.15; the data may be ordered or too small")
    assert verdict(folds, 0.2)["verdict"] == "consistent"
    failed = [*folds[:2], {"fold": 3, "failed": "DataError: one class"}]
    assert "fold 3 could not be fitted (DataError: one class)" in verdict(failed, 0.5)["verdict"]


# ----------------------------------------------------------------------------- jobs


def test_precision_at_target_recall_is_met_on_validation_and_reported_on_test(job):
    X, y = separable(n=6000, imbalance=0.1)
    hp = {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 3,
          "binary_classifier_model_selection_criteria": "precision_at_target_recall", "target_recall": 0.95}
    job.hyperparameters(hp).channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    report = report_of(job)
    chosen = report["threshold"]
    assert chosen["criterion"] == "precision_at_target_recall" and chosen["target_reached"]
    assert chosen["validation_recall"] >= 0.95
    assert chosen["test_recall"] == pytest.approx(result.metric("test", "recall"), abs=1e-5)
    # Recompute on the validation rows ourselves (the same seeded hash decides roles): recall >= 0.95 there.
    _, model = job.model()
    roles = holdout_roles(HashPositions(0)(Block(X, y), 0), 0.2, 0.1)
    val = roles == VALIDATION
    predicted = model.predict(X[val])["predicted_label"]
    assert predicted[y[val] == 1].mean() >= 0.95
    assert model.threshold == pytest.approx(chosen["threshold"])
    # the test figures are the shipped model's, at the threshold chosen on validation
    test = roles == TEST
    assert (model.predict(X[test])["predicted_label"][y[test] == 1]).mean() == pytest.approx(chosen["test_recall"], abs=1e-6)


def test_kfold_on_shuffled_data_is_consistent(job):
    X, y = separable(n=3000)
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 2, "k_fold": 5})
    job.channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    kfold = report_of(job)["k_fold"]
    assert kfold["verdict"] == "consistent", kfold
    assert len(kfold["folds"]) == 5 and all(f["metric"] == "error" for f in kfold["folds"])
    assert kfold["mean"] < 0.2 and "k-fold verdict: consistent" in result.stderr


def test_kfold_on_label_sorted_data_with_sequential_split_is_inconsistent(job):
    X, y = separable(n=3000)
    order = np.argsort(y, kind="stable")
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 2, "k_fold": 5,
                         "split_strategy": "sequential"})
    job.channel("train", csv_bytes(X[order], y[order]), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    report = report_of(job)
    assert report["k_fold"]["verdict"].startswith("inconsistent: fold ")
    assert report["k_fold"]["scheme"] == "forward chaining (time series)"
    assert "the label looks sorted" in result.stderr and any("looks sorted" in w for w in report["warnings"])


def test_a_fold_that_cannot_be_fitted_is_reported_and_the_job_goes_on(job):
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    job.hyperparameters({"algorithm": "kmeans", "k": 30, "feature_dim": 3, "k_fold": 2})
    job.channel("train", csv_bytes(X), CSV_NO_LABEL)
    result = job.run()
    assert result.rc == 0, result.log
    kfold = report_of(job)["k_fold"]
    assert all("k=30 but the training data has only" in f.get("failed", "") for f in kfold["folds"]), kfold
    assert kfold["verdict"].startswith("not available")


def test_report_files_match_the_log_and_the_pictures_are_drawn_from_them(job, iris):
    X, y = iris
    job.hyperparameters({"algorithm": "random-forest", "n_estimators": 20, "split_strategy": "stratified", "seed": 3})
    job.channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    out = job.root / "output" / "data"
    report = report_of(job)
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png", "evaluation.json", "precision_recall.png"]
    assert report["split"]["sizes"] == {"train": 120, "test": 30}  # stratified, exact; multi-class trees need no validation
    logged = 0
    for role, metrics in report["metrics"].items():
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert result.metric(role, name) == pytest.approx(value, rel=1e-5, abs=1e-6), (role, name)
                logged += 1
    assert logged == 12  # six multi-class metrics for each of train and test
    test = report["metrics"]["test"]
    assert np.array(test["confusion_matrix"]).sum() == 30
    assert report["baseline"]["test"]["accuracy"] == pytest.approx(1 / 3)
    assert report["baseline"]["test"]["beats_baseline"]
    from PIL import Image

    for name in ("confusion_matrix.png", "precision_recall.png"):
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] >= 300
    # the log ends with the human summary: confusion matrix table, headline, lift
    tail = result.stderr.splitlines()[-12:]
    assert any("evaluation summary" in t for t in tail) and any("predicted 2" in t for t in tail)
    assert any("vs baseline" in t for t in tail)


def test_confusion_pictures_name_the_classes_and_differ_with_the_numbers(tmp_path):
    result = {"confusion": {"tp": 3, "fp": 2, "fn": 1, "tn": 4, "positive_class": "cat", "negative_class": "dog"}}
    fig = plots.confusion_figure(result, "cats")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "3", "4"]
    paths = []
    for i, counts in enumerate(((3, 2, 1, 4), (4, 1, 0, 5))):
        r = {"confusion": dict(zip(("tp", "fp", "fn", "tn"), counts), positive_class="cat", negative_class="dog")}
        f = plots.confusion_figure(r, "same title")
        paths.append(tmp_path / f"{i}.png")
        f.savefig(paths[-1])
    assert paths[0].read_bytes() != paths[1].read_bytes()


def test_binary_report_has_roc_and_a_threshold_section(job, cancer):
    X_train, X_test, y_train, y_test = cancer
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 5})
    job.channel("train", csv_bytes(X_train, y_train), CSV).channel("test", csv_bytes(X_test, y_test), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    report = report_of(job)
    assert (job.root / "output" / "data" / "roc.png").stat().st_size > 1000
    assert report["split"]["test"] == "channel 'test'" and report["split"]["sizes"]["test"] == len(y_test)
    c = report["metrics"]["test"]["confusion"]
    assert c["tp"] + c["fn"] == int(y_test.sum()) and c["positive_class"] == 1.0
    curve = report["metrics"]["test"]["curve"]
    assert len(curve["threshold"]) == 102 and curve["recall"][0] == 1.0 and curve["recall"][-1] == 0.0
    assert curve["false_positive_rate"][0] == 1.0 and curve["false_positive_rate"][-1] == 0.0
    assert "not refitted" in report["split"]["model"]


def test_a_model_that_does_not_beat_its_baseline_is_called_out(job):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(3000, 20)).astype(np.float32), rng.normal(size=3000).astype(np.float32)
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "regressor", "epochs": 2})
    job.channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    base = report_of(job)["baseline"]["test"]
    assert base["heuristic"].startswith("always predict the training mean") and not base["beats_baseline"]
    assert "WARNING: the model does not beat its baseline on test data" in result.stderr


def test_kmeans_and_pca_reports_compare_with_one_cluster(job, iris):
    X, _ = iris
    job.hyperparameters({"algorithm": "kmeans", "k": 3, "feature_dim": 4})
    job.channel("train", csv_bytes(X), CSV_NO_LABEL)
    assert job.run().rc == 0
    report = report_of(job)
    base = report["baseline"]["test"]
    assert base["heuristic"] == "one cluster at the training mean" and base["lift"] > 0.5
    assert not (job.root / "output" / "data" / "confusion_matrix.png").exists()


@pytest.mark.parametrize("hp, message", [
    ({"split_strategy": "sequential"}, "split_strategy=sequential needs File mode"),
    ({"split_strategy": "stratified"}, "split_strategy=stratified needs File mode"),
    ({"k_fold": 3}, "k_fold=3 needs File mode"),
])
def test_pipe_mode_rejects_what_a_stream_cannot_do(job, hp, message):
    X, y = separable(n=200)
    data, content_type, _ = encode("dense", X, y)
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", **hp})
    job.channel("train", data, content_type, mode="Pipe")
    result = job.run()
    assert result.rc == 1 and message in result.failure and result.model_files == []


def test_stratified_needs_a_classifier(job):
    X, y = separable(n=200)
    job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "regressor", "split_strategy": "stratified"})
    job.channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 1 and "split_strategy=stratified keeps class proportions" in result.failure


def test_pipe_mode_split_is_the_same_hash_split_as_file_mode(make_job):
    """Streaming algorithms decide roles by hash in both modes: the same records are held out."""
    X, y = separable(n=1500)
    sizes = {}
    for mode in ("File", "Pipe"):
        job = make_job(mode)
        data, content_type, _ = encode("dense", X, y)
        job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 2})
        job.channel("train", data, content_type, mode=mode, epochs=3)
        result = job.run()
        assert result.rc == 0, result.log
        sizes[mode] = report_of(job)["split"]["sizes"]
        assert report_of(job)["split"]["assignment"].startswith("seeded hash")
    assert sizes["File"] == sizes["Pipe"]


def test_evaluation_needs_no_network_and_writes_only_under_opt_ml_and_tmp(job, tmp_path, cancer):
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rn", "true"]).returncode != 0:
        pytest.skip("unshare -rn (a private network namespace) is not available here")
    X_train, _, y_train, _ = cancer
    home, cwd, tmp = tmp_path / "home", tmp_path / "cwd", tmp_path / "tmp"
    for d in (home, cwd, tmp):
        d.mkdir()
    job.hyperparameters({"algorithm": "random-forest", "n_estimators": 10})
    job.channel("train", csv_bytes(X_train, y_train), CSV)
    env = job.env({"HOME": str(home), "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(home / ".cache")})
    env.pop("MPLCONFIGDIR", None)
    from conftest import TRAIN

    proc = subprocess.run(["unshare", "-rn", str(TRAIN)], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert (job.root / "output" / "data" / "roc.png").exists()
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []
    assert list(tmp.iterdir()) == []  # the temporary matplotlib cache is removed at exit


def test_past_the_evaluation_budget_a_uniform_sample_is_scored_and_the_report_says_how_many(make_job):
    X, y = separable(n=20000, d=8)
    jobs = {}
    for name, budget in (("full", "256"), ("sampled", "0.2")):  # 200 kB: 50 kB for validation and for train, 100 kB for test
        jobs[name] = job = make_job(name)
        job.hyperparameters({"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 1, "num_models": 1})
        job.channel("train", csv_bytes(X, y), CSV)
        result = job.run(env={"TRAIN_EVAL_BUFFER_MB": budget})
    full, job = report_of(jobs["full"]), jobs["sampled"]
    assert result.rc == 0, result.log
    split = report_of(job)["split"]
    assert split["sizes"]["test"] > 3500 and split["sizes"]["train"] > 12000  # every record still has its role
    for role, budget in (("test", 100_000), ("validation", 50_000), ("train", 50_000)):
        assert 0 < split["scored"][role] <= budget / 36  # 36 bytes a record (8 float32 features and a label)
        assert split["scored"][role] < split["sizes"][role]
    assert "scored a uniform sample (TRAIN_EVAL_BUFFER_MB): train " in result.stderr
    assert full["split"]["scored"] == full["split"]["sizes"] == split["sizes"]
    sampled = report_of(job)["metrics"]["test"]["binary_classification_accuracy"]
    assert abs(sampled - full["metrics"]["test"]["binary_classification_accuracy"]) < 0.03  # a sample still measures the model


def test_knn_train_metrics_leave_each_record_out_of_its_own_vote(job):
    """k=1 on noisy labels: a record that were its own neighbour would always be right (train accuracy 1.0);
    left out, it is predicted as a test record is. At most 5,000 training records are scored (no quadratic cost)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12000, 4)).astype(np.float32)
    y = ((X[:, 0] + rng.normal(scale=1.0, size=12000)) > 0).astype(np.float32)
    job.hyperparameters({"algorithm": "knn", "k": 1, "feature_dim": 4, "predictor_type": "classifier", "sample_size": 12000})
    job.channel("train", csv_bytes(X, y), CSV)
    result = job.run()
    assert result.rc == 0, result.log
    train, test = result.metric("train", "accuracy"), result.metric("test", "accuracy")
    assert train < 0.8 and abs(train - test) < 0.04, (train, test)
    split = report_of(job)["split"]
    assert split["scored"]["train"] == 5000 < split["sizes"]["train"]
