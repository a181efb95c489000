"""Multi-host training: 2 and 3 real `container/train` processes on 127.0.0.x, one Dask cluster each.

Each test starts one cluster (CI's budget) and covers several things with it: an algorithm,
File or Pipe mode, ShardedByS3Key or FullyReplicated, the comparison with a single host
on the union of the data, the followers' exit, and (for k-means) serving the model.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from conftest import CSV, CSV_NO_LABEL, PROTOBUF, TRAIN, Job, Result, csv_bytes, encode, separable, wait_for
from serve_helpers import ServeProcess, free_port

SHARDED, REPLICATED = "ShardedByS3Key", "FullyReplicated"


class LocalCluster:
    """N hosts' fake /opt/ml folders and their train processes, on 127.0.0.1 .. 127.0.0.N."""

    def __init__(self, root: Path, n: int):
        self.n = n
        self.hosts = [f"algo-{i + 1}" for i in range(n)]
        self.jobs = [Job(root / h) for h in self.hosts]
        self.port = free_port()
        for job, host in zip(self.jobs, self.hosts):
            (job.config_dir / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": self.hosts}))

    def hyperparameters(self, hp: dict) -> "LocalCluster":
        for job in self.jobs:
            job.hyperparameters(hp)
        return self

    def channel(self, name: str, shares: list[bytes], content_type: str, distribution: str, mode: str = "File",
                epochs: int = 1) -> "LocalCluster":
        for job, data in zip(self.jobs, shares):
            job.channel(name, data, content_type, mode, epochs=epochs, S3DistributionType=distribution)
        return self

    def env(self, i: int, extra: dict | None = None) -> dict:
        addresses = {h: f"127.0.0.{k + 1}" for k, h in enumerate(self.hosts)}
        return {"TRAIN_HOST_ADDRESSES": json.dumps(addresses), "TRAIN_SCHEDULER_PORT": str(self.port),
                "TRAIN_JOIN_TIMEOUT": "60", **(extra or {})}

    def start(self, only=None, extra: dict | None = None) -> dict[int, subprocess.Popen]:
        """Followers first, the first host last: hosts start in any order."""
        procs = {}
        for i in reversed(range(self.n)):
            if only is None or i in only:
                job = self.jobs[i]
                out, err = open(job.root / "stdout.log", "w"), open(job.root / "stderr.log", "w")
                procs[i] = subprocess.Popen([str(TRAIN)], env=job.env(self.env(i, extra)), stdout=out, stderr=err, text=True)
        return procs

    def finish(self, procs: dict, timeout: float = 240) -> dict[int, Result]:
        results = {}
        try:
            for i, proc in procs.items():
                proc.wait(timeout)
        finally:
            for i, proc in procs.items():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for job in self.jobs:
                job.stop_feeders()
        for i in procs:
            job = self.jobs[i]
            failure, model = job.root / "output" / "failure", job.root / "model"
            results[i] = Result(procs[i].returncode, (job.root / "stdout.log").read_text(), (job.root / "stderr.log").read_text(),
                                failure.read_text() if failure.exists() else None,
                                sorted(p.name for p in model.iterdir()) if model.exists() else [])
        return results

    def run(self, extra: dict | None = None) -> dict[int, Result]:
        results = self.finish(self.start(extra=extra))
        leader = results[0]
        assert leader.rc == 0, leader.failure or leader.stderr[-3000:]
        for i, r in results.items():
            if i:
                assert r.rc == 0, r.failure or r.stderr[-3000:]
                assert r.model_files == [], f"{self.hosts[i]} wrote a model"
                assert "#quality_metric" not in r.stdout  # metric lines come from the first host only
        return results


def deal(X, y, n: int, fmt: str = "csv"):
    """Host i's records i, i+n, ... encoded (CSV with label first, or RecordIO-protobuf)."""
    return [encode(fmt, X[i::n], None if y is None else y[i::n])[0] for i in range(n)]


def single(job: Job, hp: dict, channels: dict) -> Result:
    job.hyperparameters(hp)
    for name, (data, content_type, mode, epochs) in channels.items():
        job.channel(name, data, content_type, mode, epochs=epochs)
    result = job.run()
    assert result.rc == 0, result.failure
    return result


def blobs(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [6, 6, 0, 0], [0, 6, 6, 6]], np.float32)
    label = rng.integers(0, 3, n)
    return (centres[label] + rng.normal(size=(n, 4))).astype(np.float32), label.astype(np.float32)


def test_kmeans_two_hosts_sharded_equal_single_host_and_serve(tmp_path, make_job):
    X, _ = blobs()
    hp = {"algorithm": "kmeans", "k": 3, "feature_dim": 4, "mini_batch_size": 10000, "epochs": 1, "seed": 7}
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters(hp)
    cluster.channel("train", deal(X, None, 2), CSV_NO_LABEL, SHARDED)
    results = cluster.run()
    assert "2 hosts joined" in results[0].stderr and "algo-2=127.0.0.2" in results[0].stderr
    ref_job = make_job("single")
    ref = single(ref_job, hp, {"train": (csv_bytes(X), CSV_NO_LABEL, "File", 1)})

    _, multi = cluster.jobs[0].model()
    _, one = ref_job.model()
    np.testing.assert_allclose(np.sort(multi.centers, axis=0), np.sort(one.centers, axis=0), atol=1e-4)
    assert abs(results[0].metric("test", "msd") - ref.metric("test", "msd")) < 1e-4

    runtime = tempfile.mkdtemp(prefix="byoa-serve-")  # a unix socket path must be short
    server = ServeProcess(cluster.jobs[0].root, env={"SERVE_RUNTIME_DIR": runtime}).start()
    try:
        reply = server.invoke(csv_bytes(X[:50]), CSV, "application/json")
        assert reply.status == 200
        served = [p["closest_cluster"] for p in reply.json()["predictions"]]
        assert served == multi.predict(X[:50])["closest_cluster"].astype(int).tolist()
    finally:
        server.stop()


def test_kmeans_three_hosts_pipe_replicated_equal_single_host(tmp_path, make_job):
    X, _ = blobs(seed=5)
    data, _, _ = encode("dense", X)
    hp = {"algorithm": "kmeans", "k": 3, "feature_dim": 4, "mini_batch_size": 5000, "epochs": 2, "seed": 1}
    cluster = LocalCluster(tmp_path / "cluster", 3).hyperparameters(hp)
    cluster.channel("train", [data] * 3, PROTOBUF, REPLICATED, mode="Pipe", epochs=3)
    results = cluster.run()
    assert "3 hosts joined" in results[0].stderr
    assert "this host keeps records i with i % 3 == 2" in results[0].stderr
    ref_job = make_job("single")
    ref = single(ref_job, hp, {"train": (data, PROTOBUF, "Pipe", 3)})
    (_, multi), (_, one) = cluster.jobs[0].model(), ref_job.model()
    np.testing.assert_allclose(np.sort(multi.centers, axis=0), np.sort(one.centers, axis=0), atol=1e-4)
    assert abs(results[0].metric("test", "msd") - ref.metric("test", "msd")) < 1e-4


def test_pca_three_hosts_pipe_sharded_equal_single_host(tmp_path, make_job):
    X, _ = blobs(n=1500, seed=2)
    X = np.hstack([X, X @ np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)])
    hp = {"algorithm": "pca", "feature_dim": 8, "num_components": 3, "mini_batch_size": 100, "seed": 0}
    cluster = LocalCluster(tmp_path / "cluster", 3).hyperparameters(hp)
    cluster.channel("train", deal(X, None, 3, "dense"), PROTOBUF, SHARDED, mode="Pipe", epochs=2)
    results = cluster.run()
    ref_job = make_job("single")
    ref = single(ref_job, hp, {"train": (encode("dense", X)[0], PROTOBUF, "Pipe", 2)})
    (_, multi), (_, one) = cluster.jobs[0].model(), ref_job.model()
    np.testing.assert_allclose(np.abs(multi.components @ one.components.T), np.eye(3), atol=1e-4)
    np.testing.assert_allclose(multi.explained_variance, one.explained_variance, rtol=1e-4)
    for role in ("train", "test"):
        assert abs(results[0].metric(role, "explained_variance_ratio") - ref.metric(role, "explained_variance_ratio")) < 1e-4


def test_linear_learner_two_hosts_pipe_replicated_matches_single_host(tmp_path, make_job):
    X, y = separable(n=4000, d=8, seed=4)
    data, _, _ = encode("dense", X, y)
    hp = {"algorithm": "linear-learner", "predictor_type": "binary_classifier", "feature_dim": 8, "mini_batch_size": 200,
          "epochs": 4, "seed": 0, "binary_classifier_model_selection_criteria": "precision_at_target_recall", "target_recall": 0.9}
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters(hp)
    cluster.channel("train", [data] * 2, PROTOBUF, REPLICATED, mode="Pipe", epochs=5)
    results = cluster.run()
    ref_job = make_job("single")
    ref = single(ref_job, hp, {"train": (data, PROTOBUF, "Pipe", 5)})
    for name in ("binary_classification_accuracy", "roc_auc_score"):
        assert abs(results[0].metric("test", name) - ref.metric("test", name)) < 0.02, name
    assert results[0].metric("validation", "recall") >= 0.9  # the threshold was chosen on the hosts' validation rows
    (_, multi), (_, one) = cluster.jobs[0].model(), ref_job.model()
    assert 0 < multi.threshold < 1 and abs(multi.threshold - one.threshold) < 0.1


def test_knn_three_hosts_file_replicated_matches_single_host(tmp_path, make_job):
    X, y = separable(n=3000, d=6, seed=6)
    data = csv_bytes(X, y)
    hp = {"algorithm": "knn", "predictor_type": "classifier", "k": 10, "feature_dim": 6, "sample_size": 1200, "seed": 0}
    cluster = LocalCluster(tmp_path / "cluster", 3).hyperparameters(hp)
    cluster.channel("train", [data] * 3, CSV, REPLICATED)
    results = cluster.run()
    ref = single(make_job("single"), hp, {"train": (data, CSV, "File", 1)})
    _, model = cluster.jobs[0].model()
    assert len(model.X) == 1200  # one sample of sample_size from all hosts together
    assert abs(results[0].metric("test", "accuracy") - ref.metric("test", "accuracy")) < 0.03


def test_random_forest_two_hosts_file_sharded_matches_single_host(tmp_path, make_job):
    X, y = separable(n=3000, d=8, seed=8)
    hp = {"algorithm": "random-forest", "n_estimators": 30, "max_depth": 8, "seed": 0}
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters(hp)
    cluster.channel("train", deal(X, y, 2), CSV, SHARDED)
    results = cluster.run()
    assert "15+15 trees per host" in results[0].stderr
    ref = single(make_job("single"), hp, {"train": (csv_bytes(X, y), CSV, "File", 1)})
    _, model = cluster.jobs[0].model()
    assert len(model.roots) == 30
    for name in ("binary_classification_accuracy", "roc_auc_score"):
        assert abs(results[0].metric("test", name) - ref.metric("test", name)) < 0.03, name


def test_decision_tree_gathers_on_the_first_host_or_recommends_random_forest(tmp_path, make_job):
    X, y = separable(n=3000, d=8, seed=9)
    data, test = csv_bytes(X[:2000], y[:2000]), csv_bytes(X[2000:], y[2000:])
    hp = {"algorithm": "decision-tree", "max_depth": 5, "seed": 0}
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters(hp)
    cluster.channel("train", [data] * 2, CSV, REPLICATED).channel("test", [test] * 2, CSV, REPLICATED)
    results = cluster.run()
    assert "decision-tree: gathering" in results[0].stderr
    ref = single(make_job("single"), hp, {"train": (data, CSV, "File", 1), "test": (test, CSV, "File", 1)})
    assert abs(results[0].metric("test", "binary_classification_accuracy") - ref.metric("test", "binary_classification_accuracy")) < 0.03

    small = LocalCluster(tmp_path / "small", 2).hyperparameters(hp)
    small.channel("train", [data] * 2, CSV, REPLICATED)
    small.port = free_port()
    results = small.finish(small.start(extra={"TRAIN_GATHER_LIMIT_MB": "0.01"}))
    assert results[0].rc == 1
    assert "algorithm=random-forest" in results[0].failure and "TRAIN_GATHER_LIMIT_MB" in results[0].failure
    assert results[0].model_files == [] and results[1].model_files == []


def test_a_host_that_never_starts_fails_the_job_naming_it(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters({"algorithm": "kmeans", "k": 2, "feature_dim": 4})
    cluster.channel("train", deal(*blobs(n=100), 2), CSV, SHARDED)
    started = time.monotonic()
    results = cluster.finish(cluster.start(only={0}, extra={"TRAIN_JOIN_TIMEOUT": "4"}))
    assert results[0].rc == 1 and time.monotonic() - started < 30
    assert "hosts ['algo-2'] never joined the training cluster within 4 s (TRAIN_JOIN_TIMEOUT)" in results[0].failure
    assert results[0].model_files == []
    assert not _listening(cluster.port), "the scheduler outlived the job"

    results = cluster.finish(cluster.start(only={1}, extra={"TRAIN_JOIN_TIMEOUT": "2"}))
    assert results[1].rc == 1
    assert "the first host algo-1 (127.0.0.1:" in results[1].failure and "never started the training cluster" in results[1].failure


def test_a_worker_killed_mid_training_fails_the_job_naming_the_host_and_leaves_no_process(tmp_path):
    X, _ = blobs(n=4000)
    hp = {"algorithm": "kmeans", "k": 3, "feature_dim": 4, "mini_batch_size": 20, "epochs": 500, "seed": 0}
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters(hp)
    cluster.channel("train", deal(X, None, 2), CSV_NO_LABEL, SHARDED)
    procs = cluster.start()
    leader_log = cluster.jobs[0].root / "stderr.log"
    assert wait_for(lambda: "epoch 1/500" in leader_log.read_text(), timeout=60), leader_log.read_text()
    family = [p for proc in procs.values() for p in psutil.Process(proc.pid).children(recursive=True)]
    victim = next(p for p in psutil.Process(procs[1].pid).children(recursive=True) if "dask_worker" in " ".join(p.cmdline()))
    victim.send_signal(signal.SIGKILL)
    results = cluster.finish(procs, timeout=60)
    assert results[0].rc == 1
    assert "host algo-2 left the training cluster" in results[0].failure
    assert results[0].model_files == []
    assert results[1].rc == 1 and "Dask worker of host algo-2 stopped" in results[1].failure
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"


def test_k_fold_with_several_hosts_is_refused_before_any_cluster_starts(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters({"algorithm": "kmeans", "k": 2, "feature_dim": 4, "k_fold": 3})
    cluster.channel("train", deal(*blobs(n=100), 2), CSV, SHARDED)
    results = cluster.finish(cluster.start())
    for r in results.values():
        assert r.rc == 1 and "k_fold=3 runs on one instance" in r.failure


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_first_host_takes_its_scheduler_and_worker_with_it(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", 2).hyperparameters({"algorithm": "kmeans", "k": 2, "feature_dim": 4})
    cluster.channel("train", deal(*blobs(n=100), 2), CSV, SHARDED)
    procs = cluster.start(only={0})
    assert wait_for(lambda: _listening(cluster.port), timeout=30)
    family = psutil.Process(procs[0].pid).children(recursive=True)
    assert len(family) == 2  # the scheduler and the first host's worker
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    gone, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"
