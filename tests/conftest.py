"""Shared test helpers: a fake /opt/ml per job, data writers, Pipe-mode feeders, datasets."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
CONTAINER = ROOT / "container"
TRAIN = CONTAINER / "train"
FEEDER = ROOT / "local_test" / "pipe_feeder.py"
sys.path.insert(0, str(CONTAINER))
# matplotlib's font cache, built once for the whole session instead of once per training job
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="byoa-tests-matplotlib-"))
# Importing the SageMaker SDK builds a session whose credential lookup would ask the cloud metadata address
# (169.254.169.254): tests send traffic to loopback only.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from byoa import model_io  # noqa: E402
from byoa.algorithms import model_from_artifacts  # noqa: E402
from byoa.data.protobuf_codec import encode_rows  # noqa: E402

CSV = "text/csv"
CSV_NO_LABEL = "text/csv;label_size=0"
PROTOBUF = "application/x-recordio-protobuf"
LIBSVM = "text/libsvm"


# ----------------------------------------------------------------------------- data writers


def csv_bytes(X, y=None) -> bytes:
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    table = X if y is None else np.column_stack([y, X])
    out = io.StringIO()
    np.savetxt(out, table, delimiter=",", fmt="%.9g")
    return out.getvalue().encode()


def libsvm_bytes(X, y=None) -> bytes:
    """text/libsvm lines as scikit-learn writes them (with its header comments), 0-based; without ``y``, lines without
    a label, as a request may send them."""
    from sklearn.datasets import dump_svmlight_file

    X = sp.csr_matrix(X, dtype=np.float32)
    if y is None:
        return b"".join(b" ".join(b"%d:%.9g" % (j, v) for j, v in zip(X[i].indices, X[i].data)) + b"\n" for i in range(X.shape[0]))
    out = io.BytesIO()
    dump_svmlight_file(X, np.asarray(y), out, zero_based=True)
    return out.getvalue()


def sdk_recordio(X, y=None) -> bytes:
    """Bytes written by the SageMaker SDK's own writers."""
    from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor

    f = io.BytesIO()
    if sp.issparse(X):
        write_spmatrix_to_sparse_tensor(f, X, y)
    else:
        write_numpy_to_dense_tensor(f, X, y)
    return f.getvalue()


def encode(fmt: str, X, y=None) -> tuple[bytes, str, str]:
    """(bytes, content type, file suffix) of a dataset in one of: csv, dense, sparse, libsvm (labels 0 when none)."""
    if fmt == "csv":
        return csv_bytes(X, y), CSV if y is not None else CSV_NO_LABEL, ".csv"
    if fmt == "libsvm":
        return libsvm_bytes(X, np.zeros(X.shape[0]) if y is None else y), LIBSVM, ".libsvm"
    X = sp.csr_matrix(X, dtype=np.float32) if fmt == "sparse" else np.asarray(X, dtype=np.float32)
    return sdk_recordio(X, None if y is None else np.asarray(y, dtype=np.float32)), PROTOBUF, ".pbr"


# ----------------------------------------------------------------------------- jobs


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    failure: str | None
    model_files: list[str]

    @property
    def log(self) -> str:
        return self.stdout + self.stderr

    def metric(self, channel: str, name: str) -> float:
        for line in self.stdout.splitlines():
            if line.startswith(f"#quality_metric: host=algo-1, {channel} {name} <"):
                return float(line.rsplit("=", 1)[1])
        raise AssertionError(f"no {channel} {name} metric in:\n{self.stdout}")


class Job:
    """A fake /opt/ml for one training job, run through the real container/train."""

    def __init__(self, root: Path):
        self.root = root
        self.config_dir = root / "input" / "config"
        self.data_dir = root / "input" / "data"
        self.config_dir.mkdir(parents=True)
        self.data_dir.mkdir(parents=True)
        self.channels: dict = {}
        self.feeders: list[subprocess.Popen] = []
        self.result: Result | None = None  # the last run's
        self.hyperparameters({})

    def hyperparameters(self, hp: dict) -> "Job":
        (self.config_dir / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hp.items()}))
        return self

    def channel(self, name: str, data: bytes | None = None, content_type: str | None = None, mode: str = "File",
                filename: str = "part-0", epochs: int = 1, **extra) -> "Job":
        spec = {"TrainingInputMode": mode, "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None", **extra}
        if content_type:
            spec["ContentType"] = content_type
        self.channels[name] = spec
        (self.config_dir / "inputdataconfig.json").write_text(json.dumps(self.channels))
        if data is not None:
            if mode == "File":
                (self.data_dir / name).mkdir(exist_ok=True)
                (self.data_dir / name / filename).write_bytes(data)
            else:
                self.feed(name, data, epochs)
        return self

    def feed(self, name: str, data: bytes, epochs: int, wait: float = 30.0) -> None:
        """A real writer process streams ``data`` into FIFOs <name>_0 .. <name>_<epochs-1>."""
        source = self.root / f".{name}.feed"
        source.write_bytes(data)
        self.feeders.append(
            subprocess.Popen([sys.executable, str(FEEDER), str(self.data_dir), name, str(source), "--epochs", str(epochs), "--wait", str(wait)])
        )

    def env(self, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        env["SAGEMAKER_BASE_DIR"] = str(self.root)
        env.setdefault("TRAIN_PIPE_TIMEOUT", "20")
        env.pop("SAGEMAKER_ALGORITHM", None)
        env.update(extra or {})
        return env

    def start(self, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([str(TRAIN)], env=self.env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, proc: subprocess.Popen, timeout: float = 180) -> Result:
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            self.stop_feeders()
        failure = self.root / "output" / "failure"
        model = self.root / "model"
        self.result = Result(
            proc.returncode, out, err, failure.read_text() if failure.exists() else None,
            sorted(p.name for p in model.iterdir()) if model.exists() else [],
        )
        return self.result

    def run(self, env: dict | None = None, timeout: float = 180) -> Result:
        return self.finish(self.start(env), timeout)

    def stop_feeders(self) -> None:
        for p in self.feeders:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    def model(self):
        manifest, arrays = model_io.load(self.root / "model")
        return manifest, model_from_artifacts(manifest["algorithm"], arrays, manifest["meta"])


def seal(folder: Path, manifest: dict) -> None:
    """Writes ``manifest`` with the checksum of the model.npz now in ``folder``, as whoever edits a model would."""
    manifest = {**manifest, "arrays_sha256": hashlib.sha256((folder / "model.npz").read_bytes()).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def job(tmp_path):
    j = Job(tmp_path / "opt_ml")
    yield j
    j.stop_feeders()


@pytest.fixture
def make_job(tmp_path):
    jobs = []

    def make(name: str = "job") -> Job:
        j = Job(tmp_path / name)
        jobs.append(j)
        return j

    yield make
    for j in jobs:
        j.stop_feeders()


# ----------------------------------------------------------------------------- datasets


def _stratified(X, y, seed=0):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)


@pytest.fixture(scope="session")
def iris():
    from sklearn.datasets import load_iris

    d = load_iris()
    return d.data.astype(np.float32), d.target.astype(np.float32)


@pytest.fixture(scope="session")
def cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    d = load_breast_cancer()
    X = StandardScaler().fit_transform(d.data).astype(np.float32)
    return _stratified(X, d.target.astype(np.float32))


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(np.float32)


# ----------------------------------------------------------------------------- one trained model per kind, shared


MODELS = {
    "kmeans": ("iris", {"algorithm": "kmeans", "k": 3, "feature_dim": 4}),
    "knn": ("iris", {"algorithm": "knn", "k": 5, "feature_dim": 4, "predictor_type": "classifier", "sample_size": 120}),
    "ll-binary": ("cancer", {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "epochs": 3}),
    "ll-multiclass": ("iris", {"algorithm": "linear-learner", "predictor_type": "multiclass_classifier", "num_classes": 3,
                               "mini_batch_size": 16, "epochs": 5}),
    "ll-regressor": ("iris", {"algorithm": "linear-learner", "predictor_type": "regressor", "mini_batch_size": 16}),
    "pca": ("iris", {"algorithm": "pca", "num_components": 2, "feature_dim": 4, "mini_batch_size": 50}),
    "decision-tree": ("iris", {"algorithm": "decision-tree", "max_depth": 4}),
    "random-forest": ("cancer", {"algorithm": "random-forest", "n_estimators": 10}),
    "xgb-binary": ("cancer", {"algorithm": "xgboost", "objective": "binary:logistic", "num_round": 20, "max_depth": 3}),
    "xgb-multiclass": ("iris", {"algorithm": "xgboost", "objective": "multi:softmax", "num_class": 3, "num_round": 10}),
    "fm-binary": ("cancer", {"algorithm": "factorization-machines", "predictor_type": "binary_classifier", "feature_dim": 30, "num_factors": 4,
                   "epochs": 10, "linear_lr": 0.01, "factors_lr": 0.01}),
}

def data_of(name, iris, cancer):
    if name == "iris":
        return iris
    X_train, _, y_train, _ = cancer
    return X_train, y_train


@pytest.fixture(scope="session")
def trained(tmp_path_factory, iris, cancer):
    """One trained model per case (MODELS), shared by the serving and model-fuzzing tests."""
    out = {}

    def get(case: str):
        if case not in out:
            data, hp = MODELS[case]
            X, y = data_of(data, iris, cancer)
            job = Job(tmp_path_factory.mktemp(case) / "opt_ml")
            supervised = hp["algorithm"] not in ("kmeans", "pca")
            job.hyperparameters(hp).channel("train", csv_bytes(X, y if supervised else None), CSV if supervised else CSV_NO_LABEL)
            result = job.run()
            assert result.rc == 0, result.log
            out[case] = (job, X)
        return out[case]

    return get


def separable(n=2000, d=8, seed=1, imbalance=0.5):
    """Two overlapping Gaussian classes; ``imbalance`` is the share of positives."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < imbalance).astype(np.float32)
    X = rng.normal(size=(n, d)).astype(np.float32) + 1.2 * y[:, None]
    return X, y


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


__all__ = ["Job", "Result", "encode", "csv_bytes", "sdk_recordio", "encode_rows", "separable", "wait_for", "CSV", "PROTOBUF", "CSV_NO_LABEL"]
