"""container/serve end to end: real nginx + gunicorn on loopback, every algorithm, content type and error."""

from __future__ import annotations

import io
import json
import signal
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp

from byoa.data.byoa_record_pb2 import Record
from byoa.data import recordio
from conftest import CSV, CSV_NO_LABEL, Job, csv_bytes, encode_rows
from serve_helpers import ServeProcess

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
}
EXPECTED_OUTPUTS = {
    "kmeans": ["closest_cluster", "distance_to_cluster"],
    "knn": ["predicted_label"],
    "ll-binary": ["score", "predicted_label"],
    "ll-multiclass": ["score", "predicted_label"],
    "ll-regressor": ["score"],
    "pca": ["projection"],
    "decision-tree": ["score", "predicted_label"],
    "random-forest": ["score", "predicted_label"],
}


def data_of(name, iris, cancer):
    if name == "iris":
        return iris
    X_train, _, y_train, _ = cancer
    return X_train, y_train


@pytest.fixture(scope="session")
def trained(tmp_path_factory, iris, cancer):
    """One trained model per case, shared by every serving test."""
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


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, trained):
    job, X = trained(request.param)
    server = ServeProcess(job.root).start()
    yield request.param, server, job.model()[1], X[:7]
    assert server.stop() == 0


# ----------------------------------------------------------------------------- request encoders (the client side)


def requests_for(X: np.ndarray) -> dict[str, tuple[bytes, str]]:
    X = X.astype(np.float32)
    sparse = sp.csr_matrix(X)
    forms = []
    for i, row in enumerate(X.tolist()):  # the three JSON instance forms, mixed
        nz = [j for j, v in enumerate(row) if v != 0]
        forms.append([{"features": row}, {"data": {"features": {"values": row}}},
                      {"data": {"features": {"keys": nz, "shape": [len(row)], "values": [row[j] for j in nz]}}}][i % 3])
    npy = io.BytesIO()
    np.save(npy, X)
    return {
        "csv": (csv_bytes(X), "text/csv"),
        "csv-params": (csv_bytes(X), "Text/CSV; charset=utf-8; label_size=0"),
        "json": (json.dumps({"instances": forms}).encode(), "application/json"),
        "jsonlines": ("\n".join(json.dumps(f) for f in forms).encode(), "application/jsonlines"),
        "protobuf-dense": (encode_rows(X), "application/x-recordio-protobuf"),
        "protobuf-sparse": (encode_rows(sparse), "application/x-recordio-protobuf"),
        "npy": (npy.getvalue(), "application/x-npy"),
    }


def parse_response(body: bytes, accept: str, names: list[str]) -> dict[str, np.ndarray]:
    """Response body -> name -> array, whatever the response type."""
    if accept == "application/json":
        rows = json.loads(body)["predictions"]
    elif accept == "application/jsonlines":
        rows = [json.loads(line) for line in body.decode().splitlines()]
    elif accept == "application/x-recordio-protobuf":
        rows = []
        for payload in recordio.iter_payloads(body, "response"):
            r = Record()
            r.ParseFromString(payload)
            rows.append({k: list(v.float32_tensor.values) for k, v in r.label.items()})
            rows[-1] = {k: (v[0] if len(v) == 1 else v) for k, v in rows[-1].items()}
    else:
        return {"csv": np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)}
    assert all(list(r) == names or sorted(r) == sorted(names) for r in rows), rows[0]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in names}


ACCEPTS = ["application/json", "application/jsonlines", "text/csv", "application/x-recordio-protobuf"]


def test_every_content_type_and_accept_gives_the_models_predictions(served):
    case, server, model, X = served
    expected = model.predict(X)
    names = EXPECTED_OUTPUTS[case]
    for kind, (body, content_type) in requests_for(X).items():
        for accept in ACCEPTS:
            reply = server.invoke(body, content_type, accept)
            assert reply.status == 200, (kind, accept, reply.body[:300])
            assert reply.headers["content-type"].startswith(accept)
            got = parse_response(reply.body, accept, names)
            if "csv" in got:
                want = np.hstack([np.asarray(expected[n], np.float64).reshape(len(X), -1) for n in names])
                np.testing.assert_allclose(got["csv"], want, rtol=1e-4, atol=1e-4, err_msg=f"{kind} -> csv")
                continue
            for name in names:
                np.testing.assert_allclose(got[name], np.asarray(expected[name], np.float64), rtol=1e-4, atol=1e-4,
                                           err_msg=f"{case}: {kind} -> {accept}: {name}")


def test_default_accept_and_wildcards(served):
    case, server, model, X = served
    body, ct = requests_for(X)["csv"]
    for accept in (None, "*/*", "application/*", "text/html;q=0.9, */*;q=0.1"):
        reply = server.invoke(body, ct, accept)
        assert reply.status == 200 and reply.headers["content-type"].startswith("application/json"), accept
    reply = server.invoke(body, ct, "text/html, text/csv;q=0.5")
    assert reply.headers["content-type"].startswith("text/csv")


def test_execution_parameters_and_unknown_routes(served):
    _, server, _, _ = served
    assert server.request("GET", "/execution-parameters").json() == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    for method, path in (("GET", "/nope"), ("POST", "/ping"), ("GET", "/invocations")):
        reply = server.request(method, path)
        assert reply.status in (404, 405) and reply.headers["content-type"] == "application/json"
        assert set(reply.json()) == {"error", "message"}
