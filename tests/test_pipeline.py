"""The seed's cascading algorithms as a SageMaker serial inference pipeline: PCA's response is k-means' request.

Trained as a user would: PCA on the features; its batch-transform output (CSV, through the real serve) is
k-means' training channel. Served as SageMaker serves a pipeline: two real servers on their own ports, PCA told
by SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT to answer text/csv, and local_test/pipeline.py passing each response on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import CSV_NO_LABEL, ROOT, Job, csv_bytes, encode_rows
from serve_helpers import ServeProcess

PIPELINE = ROOT / "local_test" / "pipeline.py"


@pytest.fixture(scope="module")
def cascade(tmp_path_factory, iris):
    """(PCA job, k-means job, features): k-means trained on PCA's batch-transform output of the features."""
    X, _ = iris
    pca = Job(tmp_path_factory.mktemp("pca") / "opt_ml")
    pca.hyperparameters({"algorithm": "pca", "num_components": 2, "feature_dim": 4, "mini_batch_size": 50})
    assert pca.channel("train", csv_bytes(X), CSV_NO_LABEL).run().rc == 0
    transform = ServeProcess(pca.root, {"SAGEMAKER_BATCH": "true", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}).start()
    try:
        reply = transform.invoke(csv_bytes(X), "text/csv")
    finally:
        assert transform.stop() == 0
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/csv")
    assert reply.body.count(b"\n") == len(X)  # batch transform: one output line per input line
    kmeans = Job(tmp_path_factory.mktemp("kmeans") / "opt_ml")
    kmeans.hyperparameters({"algorithm": "kmeans", "k": 3, "feature_dim": 2})
    assert kmeans.channel("train", reply.body, CSV_NO_LABEL).run().rc == 0
    return pca, kmeans, X


def _servers(pca: Job, kmeans: Job, runtime: str) -> list[ServeProcess]:
    """The two containers of the pipeline, started: PCA answers text/csv unless asked otherwise."""
    return [ServeProcess(pca.root, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv", "SERVE_RUNTIME_DIR": str(pca.root / runtime)}).start(),
            ServeProcess(kmeans.root, {"SERVE_RUNTIME_DIR": str(kmeans.root / runtime)}).start()]


def _pipeline(servers, body: bytes, content_type: str, accept: str, ok: bool = True) -> subprocess.CompletedProcess:
    urls = [f"http://127.0.0.1:{s.port}/invocations" for s in servers]
    done = subprocess.run([sys.executable, str(PIPELINE), content_type, accept, *urls], input=body, capture_output=True, timeout=60)
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


@pytest.mark.parametrize("content_type, accept", [("text/csv", "application/json"), ("application/json", "text/csv"),
                                                  ("application/x-recordio-protobuf", "application/jsonlines")])
def test_pca_then_kmeans_through_two_servers_equals_the_models_composed(cascade, content_type, accept):
    pca, kmeans, X = cascade
    rows = X[::10]
    servers = _servers(pca, kmeans, "rt-pipe")
    try:
        body = {"text/csv": lambda: csv_bytes(rows), "application/x-recordio-protobuf": lambda: encode_rows(rows),
                "application/json": lambda: json.dumps({"instances": [{"features": r} for r in rows.tolist()]}).encode()}[content_type]()
        out = _pipeline(servers, body, content_type, accept).stdout
    finally:
        assert all(s.stop() == 0 for s in servers)
    projected = pca.model()[1].predict(rows)["projection"]
    expected = kmeans.model()[1].predict(projected.astype(np.float32))
    if accept == "application/json":
        got = [p["closest_cluster"] for p in json.loads(out)["predictions"]]
    elif accept == "text/csv":
        got = [float(line.split(",")[0]) for line in out.decode().splitlines()]
    else:
        got = [json.loads(line)["closest_cluster"] for line in out.decode().splitlines()]
    assert got == expected["closest_cluster"].tolist()
    assert len(set(got)) > 1  # the clusters are really told apart


def test_a_refusal_in_the_middle_is_what_the_client_gets(cascade):
    pca, kmeans, _ = cascade
    servers = _servers(pca, kmeans, "rt-bad")
    try:
        done = _pipeline(servers, b"1,2,3\n", "text/csv", "application/json", ok=False)
    finally:
        assert all(s.stop() == 0 for s in servers)
    assert done.returncode == 1
    assert "each record needs 4 features" in json.loads(done.stdout)["message"]


def test_the_cascade_demo_script_trains_and_serves_the_pipeline():
    """local_test/cascade.sh as a user runs it: the three payloads give the same three different clusters."""
    from serve_helpers import free_port

    env = {**os.environ, "PCA_PORT": str(free_port()), "KMEANS_PORT": str(free_port())}
    done = subprocess.run(["bash", str(ROOT / "local_test" / "cascade.sh")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip().startswith('{"predictions"')]
    assert len(answers) == 3 and answers[0] == answers[1] == answers[2]
    assert len({p["closest_cluster"] for p in answers[0]["predictions"]}) == 3
