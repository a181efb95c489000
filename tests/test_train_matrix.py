"""Every algorithm x {CSV, RecordIO dense, RecordIO sparse, libsvm} x {File, Pipe (2 epochs, real FIFOs)},
through container/train on a fake /opt/ml.

The same data must give the same model whatever the format or mode (the data
path must not change what the algorithm sees), and a sensible one.
"""

from __future__ import annotations

import errno
import os
import time

import numpy as np
import pytest
from conftest import encode

EPOCHS = 2

# algorithm -> (dataset, supervised, hyperparameters, quality check on the train metrics)
CASES = {
    "kmeans": ("iris", False, {"k": 3, "feature_dim": 4, "mini_batch_size": 40, "epochs": EPOCHS, "eval_metrics": '["msd","ssd"]'},
               lambda r: r.metric("train", "msd") < 0.9),  # 0.77 is optimal with the zero row
    "knn": ("iris", True, {"k": 5, "feature_dim": 4, "predictor_type": "classifier", "sample_size": 120, "mini_batch_size": 40},
            lambda r: r.metric("train", "accuracy") > 0.9),
    "linear-learner": ("iris_binary", True, {"predictor_type": "binary_classifier", "mini_batch_size": 25, "epochs": EPOCHS},
                       lambda r: r.metric("train", "binary_classification_accuracy") > 0.9),
    "pca": ("iris", False, {"feature_dim": 4, "num_components": 2, "mini_batch_size": 40},
            lambda r: r.metric("train", "explained_variance_ratio") > 0.95),
    "decision-tree": ("iris", True, {"max_depth": 4}, lambda r: r.metric("train", "multiclass_accuracy") > 0.95),
    "random-forest": ("iris", True, {"n_estimators": 10, "max_leaf_nodes": 8}, lambda r: r.metric("train", "multiclass_accuracy") > 0.9),
    "factorization-machines": ("iris_binary", True, {"predictor_type": "binary_classifier", "feature_dim": 4, "num_factors": 2,
                                                     "mini_batch_size": 5, "epochs": EPOCHS, "linear_lr": 0.1, "factors_lr": 0.01},
                               lambda r: r.metric("train", "binary_classification_accuracy") > 0.9),
    "xgboost": ("iris", True, {"objective": "multi:softprob", "num_class": 3, "num_round": 10},
                lambda r: r.metric("train", "multiclass_accuracy") > 0.95),
}
# Pipe-mode passes each algorithm reads: exactly its epochs (one for those that make one pass); never one more for metrics.
PIPE_PASSES = {"kmeans": EPOCHS, "knn": 1, "linear-learner": EPOCHS, "pca": 1, "decision-tree": 1, "random-forest": 1,
               "factorization-machines": EPOCHS, "xgboost": 1}


def dataset(name, iris):
    X, y = iris
    X = np.vstack([X, np.zeros((1, X.shape[1]), np.float32)])  # an all-zero row: a sparse record with no values
    y = np.append(y, 0).astype(np.float32)
    if name == "iris_binary":
        y = (y == 0).astype(np.float32)
    return X, y


def outputs(job, X):
    manifest, model = job.model()
    return manifest, model.predict(X)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, iris):
    """Per algorithm: predictions of the model trained from CSV in File mode, the reference for the others."""
    return {}


@pytest.mark.parametrize("algorithm", list(CASES))
@pytest.mark.parametrize("fmt", ["csv", "dense", "sparse", "libsvm"])
@pytest.mark.parametrize("mode", ["File", "Pipe"])
def test_every_algorithm_format_and_mode(algorithm, fmt, mode, make_job, iris, reference):
    data_name, supervised, hp, good = CASES[algorithm]
    X, y = dataset(data_name, iris)
    data, content_type, suffix = encode(fmt, X, y if supervised else None)
    job = make_job(f"{algorithm}-{fmt}-{mode}")
    if fmt == "libsvm" and algorithm == "linear-learner":
        hp = {**hp, "feature_dim": 4}  # libsvm lines carry no width: a streaming algorithm needs it declared
    job.hyperparameters({"algorithm": algorithm, **hp})
    job.channel("train", data, content_type, mode=mode, filename=f"part-0{suffix}", epochs=PIPE_PASSES[algorithm])
    result = job.run()
    assert result.rc == 0, result.log
    assert result.model_files == ["manifest.json", "model.npz"]
    assert good(result), result.stdout
    assert f"mode={mode}" in result.stderr
    if mode == "Pipe" and algorithm in ("kmeans", "linear-learner"):
        assert result.stdout.count("#progress_metric") == EPOCHS
    manifest, predicted = outputs(job, X)
    assert manifest["algorithm"] == algorithm and manifest["format_version"] == 1
    key = (algorithm, "sparse" if fmt in ("sparse", "libsvm") else "dense")
    if key in reference:
        # Same values in another format or mode: the same model (sparse: the same up to float rounding,
        # except linear-learner, which scales sparse data without centring it, as the built-in does).
        for name, value in predicted.items():
            np.testing.assert_allclose(value, reference[key][name], rtol=1e-4, atol=1e-4, err_msg=name)
    else:
        reference[key] = predicted


@pytest.mark.parametrize("mode", ["File", "Pipe"])
def test_record_wrapper_recordio_unwraps_each_object(mode, make_job, iris, reference):
    """RecordWrapperType=RecordIO: each S3 object arrives as one RecordIO record (here: two CSV objects)."""
    from byoa.data import recordio

    X, y = dataset("iris", iris)
    text = encode("csv", X, y)[0]
    lines = text.splitlines(keepends=True)
    wrapped = recordio.encode(b"".join(lines[:70])) + recordio.encode(b"".join(lines[70:]).rstrip(b"\n"))
    job = make_job(f"wrapped-{mode}")
    job.hyperparameters({"algorithm": "decision-tree", "max_depth": 4})
    job.channel("train", wrapped, "text/csv", mode=mode, RecordWrapperType="RecordIO")
    result = job.run()
    assert result.rc == 0, result.log
    _, model = job.model()
    assert (model.predict(X)["predicted_label"] == y).mean() > 0.95
    assert result.metric("train", "multiclass_accuracy") > 0.95


class CountingFeeder:
    """Writes ``data`` into FIFOs <channel>_0 .. <channel>_<offered-1>, each as soon as a reader opens it, and
    records which ones were opened."""

    def __init__(self, folder, channel: str, data: bytes, offered: int):
        import threading

        self.opened: list[int] = []
        self.stop = threading.Event()
        self.threads = []
        for epoch in range(offered):
            path = folder / f"{channel}_{epoch}"
            os.mkfifo(path)
            thread = threading.Thread(target=self._feed, args=(path, epoch, data), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _feed(self, path, epoch, data):
        while not self.stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                time.sleep(0.01)
                continue
            self.opened.append(epoch)
            os.set_blocking(fd, True)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            except BrokenPipeError:
                pass
            return

    def close(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


@pytest.mark.parametrize("algorithm", list(CASES))
def test_pipe_mode_opens_each_channel_only_as_often_as_it_must(algorithm, make_job, iris):
    """train: once per epoch (once for one-pass algorithms), never again for metrics; validation and test: once."""
    from byoa.algorithms import ALGORITHMS
    from byoa.hyperparameters import parse

    data_name, supervised, hp, _ = CASES[algorithm]
    X, y = dataset(data_name, iris)
    encoded = {name: encode("dense", X[part], y[part] if supervised else None)[0]
               for name, part in (("train", slice(0, 100)), ("validation", slice(100, 125)), ("test", slice(125, None)))}
    job = make_job(f"passes-{algorithm}")
    job.hyperparameters({"algorithm": algorithm, **hp})
    for name in encoded:
        job.channel(name, None, "application/x-recordio-protobuf", mode="Pipe")
    expected = ALGORITHMS[algorithm](parse(ALGORITHMS[algorithm].params, {k: str(v) for k, v in hp.items()}, algorithm).values).epochs
    feeders = {name: CountingFeeder(job.data_dir, name, data, expected + 1 if name == "train" else 2) for name, data in encoded.items()}
    try:
        result = job.run()
    finally:
        for feeder in feeders.values():
            feeder.close()
    assert result.rc == 0, result.log
    assert sorted(feeders["train"].opened) == list(range(expected))
    assert feeders["validation"].opened == [0] and feeders["test"].opened == [0]
